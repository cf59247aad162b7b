"""Attempt: smuggle Slack mrkdwn control sequences through text a user writes (an owner label, a lease
purpose, a workload or policy name, a node's GPU model, a reason): ``<!channel>`` pings everyone,
``<http://evil|click here>`` hides a link, ``<@U123>`` mentions someone.

Every user string of every Slack message is escaped (``&``, ``<``, ``>``), so none of them survives
as a control sequence; Event texts stay plain."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from gpu_steward.budgets.notifier import Notice, slack_blocks
from gpu_steward.notify.messages import NoticeContext, event_for, slack_escape, slack_message

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
EVIL = ["<!channel>", "<!here>", "<http://evil.example|click here>", "<@U0123>", "<#C0123>", "a & <b>"]
# A Slack control sequence: anything between < and > (mrkdwn has no other way to make one).
CONTROL = re.compile(r"<[^<>]*>")


def mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    """Every string Slack renders as mrkdwn: the top-level text, mrkdwn text objects and fields."""
    out = [payload["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(payload["blocks"])
    return out


def assert_no_control(payload: dict[str, Any]) -> None:
    for text in mrkdwn_texts(payload):
        assert not CONTROL.search(text), text
        # and no raw ampersand either: only the three entities Slack defines
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


def test_escape_follows_slacks_rules():
    assert slack_escape("a & <!channel> > b") == "a &amp; &lt;!channel&gt; &gt; b"
    assert slack_escape("&lt;") == "&amp;lt;"  # escaped once more: shows as typed


@pytest.mark.parametrize("evil", EVIL)
@pytest.mark.parametrize("stage", ["warning", "suspended", "resumed"])
def test_idle_notices_escape_every_user_string(evil, stage):
    ctx = NoticeContext(stage=stage, kind="Notebook", name=f"nb{evil}", namespace=f"ml{evil}", now=NOW,
                        owner=evil, idle_since=NOW - dt.timedelta(hours=1), gpus=1, gpu_model=evil,
                        util_percent=0.0, threshold_percent=5, suspend_at=NOW + dt.timedelta(minutes=30),
                        max_snooze=dt.timedelta(hours=2), policy=f"ml/{evil}", reason=evil, currency=evil,
                        api_version="kubeflow.org/v1", buttons=True)
    msg = slack_message(ctx)
    assert_no_control(msg)
    assert slack_escape(evil) in json.dumps(msg, ensure_ascii=False) or "&" in evil
    # The Event is plain text: it says what was written.
    assert evil in event_for(ctx).message or stage == "resumed"


def test_buttons_keep_the_raw_reference():
    ctx = NoticeContext(stage="warning", kind="Notebook", name="nb-a", namespace="ml", now=NOW, owner="<!channel>",
                        suspend_at=NOW + dt.timedelta(minutes=30), api_version="kubeflow.org/v1", buttons=True,
                        uid="u-1")
    [actions] = [b for b in slack_message(ctx)["blocks"] if b["type"] == "actions"]
    assert "nb-a" in actions["elements"][0]["value"]


@pytest.mark.parametrize("evil", EVIL)
def test_budget_and_lease_notices_escape_the_message_and_names(evil):
    lease = {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "ExperimentLease",
             "metadata": {"name": f"exp{evil}", "namespace": "ml"}}
    notice = Notice(subject=lease, reason="LeaseExpiring", message=f"lease for {evil} (purpose: {evil}) ends soon")
    assert_no_control(slack_blocks(notice, dry_run=False))
    assert_no_control(slack_blocks(notice, dry_run=True))
