"""Attempt: smuggle Slack mrkdwn control sequences through text a user writes (an owner label, a lease
purpose, a workload or policy name, a node's GPU model, a reason): ``<!channel>`` pings everyone,
``<http://evil|click here>`` hides a link, ``<@U123>`` mentions someone.

Every user string of every Slack message is escaped (``&``, ``<``, ``>``), so none of them survives
as a control sequence; Event texts stay plain.

Attempt: use the Snooze / Resume buttons of a notice beyond what they were made for, against the real
operator endpoint (``cluster``): click someone else's button from the channel, replay a signed click
inside the signature window, click after the button expired, click a button for a workload that was
deleted and created again under the same name, forge or edit a button value. Each is refused with a
status and (where the clicker is the one asking) an ephemeral answer, and nothing changes."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.slack_buttons import (
    ADA,
    MALLORY,
    Buttons,
    buttons_endpoint,
    click_body,
    post,
    wait_events,
    wait_replies,
)
from gpu_steward.budgets.notifier import Notice, slack_blocks
from gpu_steward.notify.interactions import RESUME_ACTION, SNOOZE_ACTION, button_key, button_value, seal_value
from gpu_steward.notify.messages import NoticeContext, event_for, slack_escape, slack_message
from gpu_steward.workloads.model import RESUME_ANNOTATION, SNOOZE_ANNOTATION
from gpu_steward_testground.runner import ControlPlane

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
EVIL = ["<!channel>", "<!here>", "<http://evil.example|click here>", "<@U0123>", "<#C0123>", "a & <b>"]
# A Slack control sequence: anything between < and > (mrkdwn has no other way to make one).
CONTROL = re.compile(r"<[^<>]*>")
# The one control sequence GPU Steward writes itself: a Slack date token for a time it computed (digits and
# an RFC 3339 fallback only, so no user string can take this shape: its "<" would be escaped).
OWN_DATE = re.compile(r"<!date\^\d+\^\{date_short_pretty\} \{time\}\|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ>")


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
        text = OWN_DATE.sub("", text)
        assert not CONTROL.search(text), text
        # and no raw ampersand either: only the three entities Slack defines
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


def test_escape_follows_slacks_rules():
    assert slack_escape("a & <!channel> > b") == "a &amp; &lt;!channel&gt; &gt; b"
    assert slack_escape("&lt;") == "&amp;lt;"  # escaped once more: shows as typed


@pytest.mark.parametrize("evil", EVIL)
@pytest.mark.parametrize("stage", ["warning", "suspended", "resumed"])
@pytest.mark.redteam("slack")
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
@pytest.mark.redteam("slack")
def test_budget_and_lease_notices_escape_the_message_and_names(evil):
    lease = {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "ExperimentLease",
             "metadata": {"name": f"exp{evil}", "namespace": "ml"}}
    notice = Notice(subject=lease, reason="LeaseExpiring", message=f"lease for {evil} (purpose: {evil}) ends soon")
    assert_no_control(slack_blocks(notice, dry_run=False))
    assert_no_control(slack_blocks(notice, dry_run=True))


# ---- the buttons, against the operator's endpoint --------------------------------------------------
NS = "redteam-slack"
SECRET = "5e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b"


@pytest.fixture(scope="module")
def endpoint(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buttons]:
    with buttons_endpoint(cluster, tmp_path_factory.mktemp("redteam-slack"), NS, SECRET) as b:
        yield b


def _untouched(b: Buttons, name: str) -> None:
    ann = b.annotations(name)
    assert SNOOZE_ANNOTATION not in ann and RESUME_ANNOTATION not in ann, ann


@pytest.mark.cluster
@pytest.mark.parametrize("action", [SNOOZE_ACTION, RESUME_ACTION])
@pytest.mark.redteam("slack")
def test_someone_else_in_the_channel_cannot_click_the_owners_button(endpoint: Buttons, action: str) -> None:
    name = f"ada-{action.split('_')[1]}"
    ref = endpoint.job(name)
    response_url = endpoint.slack.add_response_url()
    value = endpoint.value(ref, snooze=None if action == RESUME_ACTION else dt.timedelta(hours=2))
    status, text = endpoint.click(click_body(action, value, MALLORY[0], response_url))
    assert status == 403 and "Only the owner" in text, text
    _untouched(endpoint, name)
    assert "Only the owner" in wait_replies(endpoint, response_url)[0]["text"]
    assert not endpoint.events(name, "SnoozedFromSlack") and not endpoint.events(name, "ResumeRequestedFromSlack")


@pytest.mark.cluster
@pytest.mark.redteam("slack")
def test_a_signed_click_replayed_inside_the_signature_window_acts_once(endpoint: Buttons) -> None:
    ref = endpoint.job("replayed")
    body = click_body(SNOOZE_ACTION, endpoint.value(ref), ADA[0], endpoint.slack.add_response_url())
    headers = endpoint.signed(body)  # captured once, sent again within the five minutes
    assert post(endpoint.url, body, headers)[0] == 200
    first = endpoint.annotations("replayed")[SNOOZE_ANNOTATION]
    endpoint.kube.patch("batch/v1", "Job", "replayed", NS, {"metadata": {"annotations": {SNOOZE_ANNOTATION: None}}},
                        dry_run=False)  # the owner ends the snooze; the replay must not bring it back
    for _ in range(2):
        status, text = post(endpoint.url, body, headers)
        assert status == 409 and "already handled" in text, text
    # Re-signed later, the same click (same trigger_id and action_ts) is still the same click.
    assert post(endpoint.url, body, endpoint.signed(body))[0] == 409
    assert SNOOZE_ANNOTATION not in endpoint.annotations("replayed") and first
    assert len(wait_events(endpoint, "replayed", "SnoozedFromSlack")) == 1


@pytest.mark.cluster
@pytest.mark.redteam("slack")
def test_an_expired_button_does_nothing(endpoint: Buttons) -> None:
    ref = endpoint.job("expired")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)  # the warning's stated suspension time has passed
    response_url = endpoint.slack.add_response_url()
    status, text = endpoint.click(click_body(SNOOZE_ACTION, endpoint.value(ref, expires=past), ADA[0], response_url))
    assert status == 410 and "expired" in text, text
    _untouched(endpoint, "expired")
    assert "expired" in wait_replies(endpoint, response_url)[0]["text"]


@pytest.mark.cluster
@pytest.mark.redteam("slack")
def test_a_button_for_a_deleted_and_recreated_workload_does_nothing(endpoint: Buttons) -> None:
    old = endpoint.job("reborn")
    value = endpoint.value(old, snooze=None)  # the Resume button of the old Job's suspension notice
    endpoint.kube.delete("batch/v1", "Job", "reborn", NS, dry_run=False)
    new = endpoint.job("reborn")  # someone else's run under the same name
    assert new.uid != old.uid
    response_url = endpoint.slack.add_response_url()
    status, text = endpoint.click(click_body(RESUME_ACTION, value, ADA[0], response_url))
    assert status == 409 and "deleted and created again" in text, text
    _untouched(endpoint, "reborn")
    assert "deleted and created again" in wait_replies(endpoint, response_url)[0]["text"]


@pytest.mark.cluster
@pytest.mark.parametrize("forge", ["owner edited", "uid edited", "expiry extended", "other key", "unsealed v1"])
@pytest.mark.redteam("slack")
def test_a_forged_or_edited_button_value_is_refused(endpoint: Buttons, forge: str) -> None:
    name = "forged-" + forge.split()[0]
    ref = endpoint.job(name, annotations={"gpusteward.dev/owner": "ada@example.com"})
    value = json.loads(endpoint.value(ref))
    if forge == "owner edited":  # mallory names herself the notice's owner
        value["owner"] = MALLORY[1]
    elif forge == "uid edited":
        value["uid"] = "another-uid"
    elif forge == "expiry extended":
        value["exp"] += 30 * 86400
    elif forge == "other key":  # a value sealed by another installation
        value = json.loads(seal_value(button_value(ref, expires=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
                                                   owner_email=MALLORY[1]), button_key("another-secret")))
    else:  # the format before values were sealed
        value = {"v": 1, "apiVersion": "batch/v1", "kind": "Job", "namespace": NS, "name": name}
    status, text = endpoint.click(click_body(SNOOZE_ACTION, json.dumps(value), MALLORY[0]))
    assert status == 400 and re.match(r"payload\.actions\[0\]\.value\.(mac|v):", text), text
    _untouched(endpoint, name)
