"""Slack buttons: what the notice carries, how a click is verified and read, what it writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from fixtures.slack_receiver import sign_request
from gpu_steward.notify.interactions import (
    RESUME_ACTION,
    SNOOZE_ACTION,
    InteractionError,
    button_value,
    click_patch,
    click_summary,
    parse_click,
    verify,
)
from gpu_steward.notify.messages import NoticeContext, slack_message
from gpu_steward.workloads.model import RESUME_ANNOTATION, SNOOZE_ANNOTATION, WorkloadRef

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
JOB = WorkloadRef("batch/v1", "Job", "ml", "train")
WEEK = timedelta(days=7)


def sign(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    return sign_request(body, ts, secret)


def form(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def click_payload(action_id: str = SNOOZE_ACTION, value: str | None = None, **kw: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions", "user": {"id": "U123ABC", "username": "ada"},
        "response_url": "https://hooks.slack.com/actions/T1/2/abc",
        "actions": [{"action_id": action_id, "block_id": "gpusteward", "type": "button",
                     "value": value if value is not None else button_value(JOB, timedelta(hours=2))}],
    }
    payload.update(kw)
    return payload


# ---- signature -------------------------------------------------------------------------------------
def test_a_request_signed_with_the_secret_within_five_minutes_is_accepted() -> None:
    body = form(click_payload())
    ts = int(NOW.timestamp())
    assert verify(SECRET, body, sign(body, ts), NOW.timestamp())
    assert verify(SECRET, body, sign(body, ts - 299), NOW.timestamp())
    lower = {k.lower(): v for k, v in sign(body, ts).items()}  # header names are case-insensitive
    assert verify(SECRET, body, lower, NOW.timestamp())


@pytest.mark.parametrize("case", ["other secret", "tampered body", "stale", "no headers", "garbage timestamp"])
def test_anything_else_is_refused(case: str) -> None:
    body = form(click_payload())
    ts = int(NOW.timestamp())
    headers = sign(body, ts)
    if case == "other secret":
        headers = sign(body, ts, "not-the-secret")
    elif case == "tampered body":
        body = body.replace(b"train", b"other")
    elif case == "stale":
        headers = sign(body, ts - 301)
    elif case == "no headers":
        headers = {}
    else:
        headers = {**headers, "X-Slack-Request-Timestamp": "yesterday"}
    assert not verify(SECRET, body, headers, NOW.timestamp())


# ---- reading a click -------------------------------------------------------------------------------
def test_a_snooze_click_names_the_workload_the_length_and_who_clicked() -> None:
    click = parse_click(form(click_payload()), WEEK)
    assert (click.action, click.target, click.snooze) == ("snooze", JOB, timedelta(hours=2))
    assert click.user_id == "U123ABC" and click.who == "ada (U123ABC)"
    assert click.response_url == "https://hooks.slack.com/actions/T1/2/abc"
    assert click_patch(click, NOW) == {"metadata": {"annotations": {SNOOZE_ANNOTATION: "2026-11-26T14:00:00Z"}}}
    assert "until 2026-11-26T14:00:00Z" in click_summary(click, NOW) and "ada" in click_summary(click, NOW)


def test_a_snooze_is_bounded_even_if_the_button_asked_for_more() -> None:
    value = button_value(JOB, timedelta(days=30))
    assert parse_click(form(click_payload(value=value)), WEEK).snooze == WEEK


def test_a_resume_click_asks_for_the_resume_annotation() -> None:
    click = parse_click(form(click_payload(RESUME_ACTION, button_value(JOB))), WEEK)
    assert click.action == "resume"
    assert click_patch(click, NOW) == {"metadata": {"annotations": {RESUME_ANNOTATION: "true"}}}


def _value(**kw: Any) -> str:
    base = json.loads(button_value(JOB, timedelta(hours=1)))
    base.update(kw)
    return json.dumps({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(("body", "field"), [
    (b"payload=not-json", "payload"),
    (b"", "payload"),
    (form({**click_payload(), "type": "view_submission"}), "payload.type"),
    (form(click_payload(action_id="someone_elses_button")), "payload.actions"),
    (form(click_payload(value="{oops")), "payload.actions[0].value"),
    (form(click_payload(value=_value(v=99))), "payload.actions[0].value.v"),
    (form(click_payload(value=_value(name=None))), "payload.actions[0].value.name"),
    (form(click_payload(value=_value(namespace="Bad_NS"))), "payload.actions[0].value.namespace"),
    (form(click_payload(value=_value(kind="job; rm"))), "payload.actions[0].value.kind"),
    (form(click_payload(value=_value(apiVersion="batch"))), "payload.actions[0].value.apiVersion"),
    (form(click_payload(value=_value(seconds=-5))), "payload.actions[0].value.seconds"),
    (form(click_payload(RESUME_ACTION, value=button_value(WorkloadRef("v1", "Pod", "ml", "p")))),
     "payload.actions[0].value.kind"),
    (form(click_payload(user={})), "payload.user.id"),
])
def test_an_unusable_click_names_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InteractionError) as err:
        parse_click(body, WEEK)
    assert str(err.value).startswith(field + ":"), str(err.value)


# ---- buttons on notices ----------------------------------------------------------------------------
def _ctx(**kw: Any) -> NoticeContext:
    base: dict[str, Any] = {"stage": "warning", "kind": "Job", "name": "train", "namespace": "ml", "now": NOW,
                            "api_version": "batch/v1", "buttons": True, "max_snooze": timedelta(hours=4),
                            "suspend_at": NOW + timedelta(minutes=30)}
    base.update(kw)
    return NoticeContext(**base)


def _buttons(msg: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"]]


def test_a_warning_offers_a_snooze_of_the_policy_maximum_and_a_suspension_a_resume() -> None:
    (snooze,) = _buttons(slack_message(_ctx()))
    assert snooze["action_id"] == SNOOZE_ACTION and snooze["text"]["text"] == "Snooze 4h"
    click = parse_click(form(click_payload(value=snooze["value"])), WEEK)  # what Slack would send back
    assert click.target == JOB and click.snooze == timedelta(hours=4)
    (resume,) = _buttons(slack_message(_ctx(stage="suspended")))
    assert resume["action_id"] == RESUME_ACTION
    assert parse_click(form(click_payload(RESUME_ACTION, resume["value"])), WEEK).action == "resume"
    assert len(snooze["value"]) <= 2000  # Slack's limit for a button value


@pytest.mark.parametrize("kw", [{"buttons": False}, {"dry_run": True}, {"stage": "resumed"}, {"api_version": None}])
def test_no_buttons_without_interactivity_in_dry_run_or_after_a_resume(kw: dict[str, Any]) -> None:
    msg = slack_message(_ctx(**kw))
    assert _buttons(msg) == []
    assert msg["blocks"][-1]["type"] == "context"
