"""Slack buttons: what the notice carries, how a click is verified and read, what it writes, and who
may click, how often and until when (docs/security.md, "Slack buttons")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from fixtures.slack_receiver import sign_request
from gpu_steward.notify.interactions import (
    CLICK_TTL,
    MAX_CLICKS,
    RESUME_ACTION,
    RESUME_BUTTON_TTL,
    SIGNATURE_WINDOW,
    SNOOZE_ACTION,
    ClickRecord,
    InteractionError,
    budget_owner_emails,
    button_key,
    button_value,
    click_patch,
    click_summary,
    parse_click,
    refusal,
    seal,
    seal_value,
    verify,
    workload_owner_emails,
)
from gpu_steward.notify.messages import NoticeContext, slack_message
from gpu_steward.notify.slack import SlackNotifier
from gpu_steward.workloads.model import RESUME_ANNOTATION, SNOOZE_ANNOTATION, WorkloadRef

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
KEY = button_key(SECRET)
UID = "0b7e5b4e-1111-4c3a-9d2e-5f6a7b8c9d0e"
JOB = WorkloadRef("batch/v1", "Job", "ml", "train", UID)
WEEK = timedelta(days=7)
LATER = NOW + timedelta(minutes=30)


def sealed(ref: WorkloadRef = JOB, *, expires: datetime = LATER, snooze: timedelta | None = timedelta(hours=2),
           owner: str | None = "ada@example.com", key: bytes = KEY) -> str:
    return seal_value(button_value(ref, expires=expires, snooze=snooze, owner_email=owner), key)


def sign(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    return sign_request(body, ts, secret)


def form(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def click_payload(action_id: str = SNOOZE_ACTION, value: str | None = None, **kw: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions", "user": {"id": "U123ABC", "username": "ada"}, "trigger_id": "111.222.abc",
        "response_url": "https://hooks.slack.com/actions/T1/2/abc",
        "actions": [{"action_id": action_id, "block_id": "gpusteward", "type": "button",
                     "action_ts": "1795694400.000100", "value": value if value is not None else sealed()}],
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
    click = parse_click(form(click_payload()), WEEK, KEY)
    assert (click.action, click.target, click.snooze) == ("snooze", JOB, timedelta(hours=2))
    assert click.user_id == "U123ABC" and click.who == "ada (U123ABC)"
    assert click.response_url == "https://hooks.slack.com/actions/T1/2/abc"
    assert click_patch(click, NOW) == {"metadata": {"annotations": {SNOOZE_ANNOTATION: "2026-11-26T14:00:00Z"}}}
    assert "until 2026-11-26T14:00:00Z" in click_summary(click, NOW) and "ada" in click_summary(click, NOW)


def test_a_snooze_is_bounded_even_if_the_button_asked_for_more() -> None:
    value = sealed(snooze=timedelta(days=30))
    assert parse_click(form(click_payload(value=value)), WEEK, KEY).snooze == WEEK


def test_a_resume_click_asks_for_the_resume_annotation() -> None:
    click = parse_click(form(click_payload(RESUME_ACTION, sealed(snooze=None))), WEEK, KEY)
    assert click.action == "resume"
    assert click_patch(click, NOW) == {"metadata": {"annotations": {RESUME_ANNOTATION: "true"}}}


def _value(**kw: Any) -> str:
    """A sealed value with fields changed (None: removed), sealed again: only the field is wrong."""
    base = json.loads(button_value(JOB, expires=LATER, snooze=timedelta(hours=1)))
    base.update(kw)
    return seal_value(json.dumps({k: v for k, v in base.items() if v is not None}), KEY)


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
    (form(click_payload(RESUME_ACTION, value=sealed(WorkloadRef("v1", "Pod", "ml", "p", UID), snooze=None))),
     "payload.actions[0].value.kind"),
    (form(click_payload(user={})), "payload.user.id"),
    (form(click_payload(value=_value(uid=None))), "payload.actions[0].value.uid"),
    (form(click_payload(value=_value(exp=None))), "payload.actions[0].value.exp"),
    (form(click_payload(actions=[{"action_id": SNOOZE_ACTION, "value": sealed()}])), "payload.actions[0].action_ts"),
])
def test_an_unusable_click_names_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InteractionError) as err:
        parse_click(body, WEEK, KEY)
    assert str(err.value).startswith(field + ":"), str(err.value)


# ---- buttons on notices ----------------------------------------------------------------------------
def _ctx(**kw: Any) -> NoticeContext:
    base: dict[str, Any] = {"stage": "warning", "kind": "Job", "name": "train", "namespace": "ml", "now": NOW,
                            "api_version": "batch/v1", "buttons": True, "max_snooze": timedelta(hours=4),
                            "suspend_at": NOW + timedelta(minutes=30), "uid": UID, "owner_email": "ada@example.com"}
    base.update(kw)
    return NoticeContext(**base)


def _buttons(msg: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in msg["blocks"] if b["type"] == "actions" for e in b["elements"]]


def test_a_warning_offers_a_snooze_of_the_policy_maximum_and_a_suspension_a_resume() -> None:
    (snooze,) = _buttons(seal(slack_message(_ctx()), KEY))  # as notify.slack sends it
    assert snooze["action_id"] == SNOOZE_ACTION and snooze["text"]["text"] == "Snooze 4h"
    click = parse_click(form(click_payload(value=snooze["value"])), WEEK, KEY)  # what Slack would send back
    assert click.target == JOB and click.snooze == timedelta(hours=4)
    (resume,) = _buttons(seal(slack_message(_ctx(stage="suspended")), KEY))
    assert resume["action_id"] == RESUME_ACTION
    assert parse_click(form(click_payload(RESUME_ACTION, resume["value"])), WEEK, KEY).action == "resume"
    assert len(snooze["value"]) <= 2000  # Slack's limit for a button value


@pytest.mark.parametrize("kw", [{"buttons": False}, {"dry_run": True}, {"stage": "resumed"}, {"api_version": None},
                                {"uid": None}])
def test_no_buttons_without_interactivity_in_dry_run_or_after_a_resume(kw: dict[str, Any]) -> None:
    msg = slack_message(_ctx(**kw))
    assert _buttons(msg) == []
    assert msg["blocks"][-1]["type"] == "context"


# ---- rule 3: a button is for one object, until a time, and made by us -------------------------------
def test_buttons_carry_the_uid_and_expire_at_the_stated_suspension_or_after_a_bounded_time() -> None:
    (snooze,) = _buttons(seal(slack_message(_ctx()), KEY))
    click = parse_click(form(click_payload(value=snooze["value"])), WEEK, KEY)
    assert click.target.uid == UID and click.expires == NOW + timedelta(minutes=30)  # the notice's stated time
    assert click.notice_owner == "ada@example.com"
    (resume,) = _buttons(seal(slack_message(_ctx(stage="suspended")), KEY))
    resumed = parse_click(form(click_payload(RESUME_ACTION, resume["value"])), WEEK, KEY)
    assert resumed.expires == NOW + RESUME_BUTTON_TTL
    (notify_only,) = _buttons(seal(slack_message(_ctx(suspend_at=None)), KEY))
    assert parse_click(form(click_payload(value=notify_only["value"])), WEEK, KEY).expires == NOW + RESUME_BUTTON_TTL


def _obj(uid: str = UID, annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict:
    return {"metadata": {"name": "train", "namespace": "ml", "uid": uid, "annotations": annotations or {},
                         "labels": labels or {}}}


def test_an_expired_button_or_one_for_a_recreated_workload_is_refused() -> None:
    click = parse_click(form(click_payload()), WEEK, KEY)
    assert refusal(click, _obj(), NOW) is None
    assert "expired at 2026-11-26T12:30:00Z" in str(refusal(click, _obj(), LATER))
    assert "deleted and created again" in str(refusal(click, _obj(uid="another-uid"), NOW))
    assert "deleted and created again" in str(refusal(click, {"metadata": {}}, NOW))


@pytest.mark.parametrize("forge", ["other key", "edited uid", "edited expiry", "edited owner", "no mac", "old v1"])
def test_a_value_not_sealed_by_the_operator_is_refused(forge: str) -> None:
    value = json.loads(sealed())
    if forge == "other key":
        value = json.loads(sealed(key=button_key("another-app's-secret")))
    elif forge == "edited uid":
        value["uid"] = "recreated-uid"
    elif forge == "edited expiry":
        value["exp"] += 86400
    elif forge == "edited owner":
        value["owner"] = "mallory@example.com"
    elif forge == "no mac":
        del value["mac"]
    else:
        value = {"v": 1, "apiVersion": "batch/v1", "kind": "Job", "namespace": "ml", "name": "train"}
    with pytest.raises(InteractionError, match=r"payload\.actions\[0\]\.value\.(mac|v):"):
        parse_click(form(click_payload(value=json.dumps(value))), WEEK, KEY)


def test_unsealed_buttons_are_never_sent() -> None:
    msg = slack_message(_ctx())
    assert _buttons(seal(msg, None)) == []
    kept = [b["type"] for b in msg["blocks"] if b["type"] != "actions"]
    assert [b["type"] for b in seal(msg, None)["blocks"]] == kept
    # The notifier seals with a key derived from the signing secret, and only with a bot token.
    assert SlackNotifier(bot_token="xoxb-1", button_key=KEY)._button_key == KEY
    assert SlackNotifier(webhook_url="https://hooks.example/x", button_key=KEY)._button_key is None


# ---- rule 1: only owners ---------------------------------------------------------------------------
def test_the_creator_stamped_by_the_webhook_is_the_owner_when_webhooks_run() -> None:
    click = parse_click(form(click_payload(value=sealed(owner="notice@example.com"))), WEEK, KEY)
    obj = _obj(annotations={"gpusteward.dev/created-by": "Ada@Example.com"})
    assert workload_owner_emails(obj, click, "label@example.com", trust_creator=True) == {"ada@example.com"}
    # Without webhooks anyone can write created-by: it is ignored; the owner e-mail the operator uses counts.
    assert workload_owner_emails(obj, click, "label@example.com", trust_creator=False) == \
        {"label@example.com", "notice@example.com"}
    # A creator that is no e-mail address (a service account) cannot be matched: the owner e-mail counts.
    sa = _obj(annotations={"gpusteward.dev/created-by": "system:serviceaccount:ml:ci"})
    assert workload_owner_emails(sa, click, None, trust_creator=True) == {"notice@example.com"}


def test_budget_owners_with_an_e_mail_may_click_too() -> None:
    budgets = [{"spec": {"notify": {"owners": ["Lead@Example.com", "team-ml"]}}}, {"spec": {}}, {}]
    assert budget_owner_emails(budgets) == {"lead@example.com"}


def test_without_an_owner_e_mail_nobody_is_allowed() -> None:
    click = parse_click(form(click_payload(value=sealed(owner=None))), WEEK, KEY)
    obj = _obj(labels={"gpusteward.dev/owner": "ada"})
    assert workload_owner_emails(obj, click, "ada", trust_creator=True) == set()


# ---- rule 2: each click acts once ------------------------------------------------------------------
def test_a_click_id_is_the_same_for_a_replay_and_differs_for_another_click() -> None:
    first = parse_click(form(click_payload()), WEEK, KEY)
    assert parse_click(form(click_payload()), WEEK, KEY).click_id == first.click_id
    other = click_payload(trigger_id="333.444.def")
    assert parse_click(form(other), WEEK, KEY).click_id != first.click_id


def test_the_record_remembers_used_ids_longer_than_the_signature_window() -> None:
    assert CLICK_TTL > SIGNATURE_WINDOW
    record = ClickRecord.from_data(None, NOW)
    assert not record.seen("a")
    record.add("a", NOW)
    again = ClickRecord.from_data(record.to_data(), NOW + SIGNATURE_WINDOW + timedelta(seconds=1))
    assert again.seen("a")  # a request signed at NOW is still refused when its signature expires
    assert not ClickRecord.from_data(record.to_data(), NOW + CLICK_TTL + timedelta(seconds=2)).seen("a")  # pruned


def test_the_record_is_bounded_and_garbage_counts_as_full() -> None:
    record = ClickRecord.from_data({"clicks.json": json.dumps({str(i): 2**40 for i in range(MAX_CLICKS)})}, NOW)
    assert record.full()
    assert ClickRecord.from_data({"clicks.json": "{not json"}, NOW).full()
    assert not ClickRecord.from_data({"clicks.json": "{}"}, NOW).full()
