"""Slack buttons end to end: the operator process serves the interactivity endpoint; a click Slack
signed, on a button the operator sealed, by the workload's owner (users.info on the local Slack
receiver), snoozes or resumes the workload on the real apiserver, records an Event and answers the
clicker through the response_url; anything unsigned, unknown, not ours or already used changes nothing.
The attempts to get around the owner, replay, expiry and UID checks are in tests/redteam/test_redteam_slack.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from fixtures.slack_buttons import (
    ADA,
    LEAD,
    Buttons,
    buttons_endpoint,
    click_body,
    click_record,
    post,
    wait_events,
    wait_replies,
)
from gpu_steward.kube import Kube
from gpu_steward.notify.interactions import RESUME_ACTION, SNOOZE_ACTION
from gpu_steward.notify.interactions_server import InteractionServer
from gpu_steward.settings import Settings
from gpu_steward.workloads.model import RESUME_ANNOTATION, SNOOZE_ANNOTATION, WorkloadRef
from gpu_steward_testground.runner import ControlPlane

pytestmark = pytest.mark.cluster
NS = "slack-buttons"
SECRET = "b6c1d0e2f3a4959687a8b9c0d1e2f3a4"  # the Slack app's signing secret, as Slack shows it


@pytest.fixture(scope="module")
def endpoint(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buttons]:
    with buttons_endpoint(cluster, tmp_path_factory.mktemp("slack-buttons"), NS, SECRET,
                          budget_owners=(LEAD[1], "team-ml")) as b:
        yield b


def test_a_signed_snooze_click_snoozes_records_an_event_and_answers_in_slack(endpoint: Buttons) -> None:
    ref = endpoint.job("warned")
    response_url = endpoint.slack.add_response_url()
    before = datetime.now(UTC)
    status, text = endpoint.click(click_body(SNOOZE_ACTION, endpoint.value(ref), ADA[0], response_url))
    assert status == 200, text
    until = datetime.fromisoformat(endpoint.annotations("warned")[SNOOZE_ANNOTATION].replace("Z", "+00:00"))
    assert before + timedelta(hours=2) - timedelta(seconds=5) <= until <= datetime.now(UTC) + timedelta(hours=2)
    events = wait_events(endpoint, "warned", "SnoozedFromSlack")
    assert "u07ada (U07ADA)" in events[0]["message"] and SECRET not in events[0]["message"]
    reply = wait_replies(endpoint, response_url)
    assert reply[0]["response_type"] == "ephemeral" and reply[0]["replace_original"] is False
    assert "Snoozed job/warned" in reply[0]["text"]


def test_a_resume_click_asks_for_a_resume(endpoint: Buttons) -> None:
    ref = endpoint.job("suspended")
    status, text = endpoint.click(click_body(RESUME_ACTION, endpoint.value(ref, snooze=None)))
    assert status == 200, text
    assert endpoint.annotations("suspended")[RESUME_ANNOTATION] == "true"


def test_the_namespace_budgets_owner_may_click_too(endpoint: Buttons) -> None:
    ref = endpoint.job("team-job")
    status, text = endpoint.click(click_body(SNOOZE_ACTION, endpoint.value(ref), LEAD[0]))
    assert status == 200, text
    assert SNOOZE_ANNOTATION in endpoint.annotations("team-job")


def test_a_used_click_is_refused_by_a_new_leader_that_never_saw_it(cluster: ControlPlane, endpoint: Buttons) -> None:
    """The used click ids live in a ConfigMap of the operator's namespace, written before the click acts:
    a replica that takes over inside the signature window (no memory of its own) refuses the replay."""
    ref = endpoint.job("failover")
    body = click_body(SNOOZE_ACTION, endpoint.value(ref))
    headers = endpoint.signed(body)
    assert post(endpoint.url, body, headers)[0] == 200
    assert len(click_record(endpoint.kube)) >= 1
    endpoint.kube.patch("batch/v1", "Job", "failover", NS, {"metadata": {"annotations": {SNOOZE_ANNOTATION: None}}},
                        dry_run=False)
    settings = Settings(namespaces=(NS,), slack_signing_secret=SECRET, slack_bot_token=endpoint.slack.add_token(),
                        slack_api_url=endpoint.slack.api_url)

    async def as_the_new_leader() -> tuple[int, str]:
        server = InteractionServer(Kube(cluster.api_client()), settings)
        port = await server.start("127.0.0.1", 0)
        try:
            return await asyncio.to_thread(post, f"http://127.0.0.1:{port}/slack/interactions", body, headers)
        finally:
            await server.stop()

    status, text = asyncio.run(as_the_new_leader())
    assert status == 409 and "already handled" in text
    assert SNOOZE_ANNOTATION not in endpoint.annotations("failover")


def test_unsigned_unknown_or_foreign_clicks_change_nothing(endpoint: Buttons) -> None:
    ours = endpoint.job("ours")
    foreign = endpoint.job("foreign", noticed=False)
    snooze = click_body(SNOOZE_ACTION, endpoint.value(ours))
    assert post(endpoint.url, snooze, endpoint.signed(snooze, "guessed-secret"))[0] == 401
    assert post(endpoint.url, snooze, {})[0] == 401
    assert post(endpoint.url, snooze, endpoint.signed(snooze, ts=int(time.time()) - 600))[0] == 401
    assert SNOOZE_ANNOTATION not in endpoint.annotations("ours")

    status, text = endpoint.click(click_body(SNOOZE_ACTION, endpoint.value(foreign)))
    assert status == 409 and "never noticed" in text
    assert SNOOZE_ANNOTATION not in endpoint.annotations("foreign")

    gone = WorkloadRef("batch/v1", "Job", NS, "deleted-long-ago", "0000")
    assert endpoint.click(click_body(SNOOZE_ACTION, endpoint.value(gone)))[0] == 404

    bad = json.loads(endpoint.value(ours))
    del bad["name"]
    status, text = endpoint.click(click_body(SNOOZE_ACTION, json.dumps(bad)))
    assert status == 400 and text.startswith("payload.actions[0].value.mac"), text


