"""Budget and lease notices reach Slack (the local receiver speaks Slack's webhook / Web API contract)."""

from __future__ import annotations

import datetime as dt

from pydantic import SecretStr

from fixtures.slack_receiver import SlackReceiver
from gpu_steward.budgets.notifier import Notice, SlackBridge
from gpu_steward.settings import Settings

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
LEASE = {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "ExperimentLease",
         "metadata": {"name": "exp1", "namespace": "team-a"}}


def test_lease_notice_dms_the_owner_with_a_bot_token():
    with SlackReceiver() as slack:
        slack.add_user("alice@example.com", "U0ALICE")
        settings = Settings(slack_bot_token=SecretStr(slack.add_token()), slack_api_url=slack.api_url)
        bridge = SlackBridge(kube=None, settings=settings)
        bridge.send(Notice(LEASE, "LeaseExpiring", "lease expires at 13:00", "Warning",
                           owners=("alice", "alice@example.com")), now=NOW, dry_run=False)
        [msg] = slack.messages
        assert msg.kind == "chat.postMessage" and msg.channel == "D0ALICE"  # the DM channel of U0ALICE
        text = str(msg.payload)
        assert "LeaseExpiring" in text and "lease expires at 13:00" in text and "team-a/exp1" in text


def test_budget_notice_to_the_global_webhook_marks_dry_run():
    with SlackReceiver() as slack:
        settings = Settings(slack_webhook_url=SecretStr(slack.add_webhook()))
        SlackBridge(kube=None, settings=settings).send(
            Notice({**LEASE, "kind": "GPUBudget"}, "BudgetThreshold", "reached 80%"), now=NOW, dry_run=True)
        [msg] = slack.messages
        assert "[dry-run] BudgetThreshold" in str(msg.payload)


def test_unconfigured_slack_sends_nothing_and_does_not_raise():
    SlackBridge(kube=None, settings=Settings()).send(Notice(LEASE, "LeaseActive", "x"), now=NOW, dry_run=False)
