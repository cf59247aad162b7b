from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gpu_steward.notify.messages import (
    NoticeContext,
    event_for,
    note_event,
    slack_date,
    slack_message,
    warning_closed,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def ctx(**kw):
    base = dict(
        stage="warning",
        kind="Notebook",
        name="nb-ada",
        namespace="ml",
        now=NOW,
        owner="ada",
        idle_since=NOW - timedelta(minutes=45),
        gpus=2,
        gpu_model="NVIDIA-A100-SXM4-80GB",
        util_percent=0.4,
        threshold_percent=5,
        cost_so_far=Decimal("37.5"),
        cost_per_hour=Decimal("5"),
        suspend_at=NOW + timedelta(minutes=30),
        max_snooze=timedelta(hours=4),
        policy="ml/idle-notebooks",
    )
    base.update(kw)
    return NoticeContext(**base)


def flat(msg):
    return json.dumps(msg)


def test_warning_says_what_when_cost_and_how_to_snooze_and_resume():
    msg = slack_message(ctx())
    text = flat(msg)
    assert msg["text"] == "Notebook ml/nb-ada is idle and will be suspended at 2026-03-02T10:30:00Z"
    for needle in (
        "2 x NVIDIA-A100-SXM4-80GB",
        "37.50 USD",
        "5.00 USD",
        "|2026-03-02T09:15:00Z> (45m)",
        "(in 30m)",
        "kubectl annotate notebooks.kubeflow.org/nb-ada -n ml gpusteward.dev/snooze-until=2026-03-02T14:00:00Z",
        "at most 4h",
        "ml/idle-notebooks",
    ):
        assert needle in text, needle
    kinds = [b["type"] for b in msg["blocks"]]
    assert kinds[0] == "header" and "context" in kinds
    assert all(len(b["text"]["text"]) <= 150 for b in msg["blocks"] if b["type"] == "header")
    assert all(len(b.get("fields", [])) <= 10 for b in msg["blocks"])


def test_suspended_tells_how_to_resume():
    text = flat(slack_message(ctx(stage="suspended", kind="Job", name="train")))
    assert "gpu-steward resume job/train -n ml" in text
    assert "kubectl annotate job/train -n ml gpusteward.dev/resume=true --overwrite" in text
    assert "Nothing was deleted" in text


def test_dry_run_is_marked_everywhere():
    msg = slack_message(ctx(stage="suspended", dry_run=True))
    assert msg["text"].startswith("[dry-run] would suspend Notebook ml/nb-ada")
    assert msg["blocks"][0]["text"]["text"].endswith("[dry-run] Would suspend")
    ev = event_for(ctx(stage="suspended", dry_run=True))
    assert ev.reason == "IdleWouldSuspend" and ev.type == "Normal" and ev.message.startswith("[dry-run]")
    assert slack_message(ctx(dry_run=True))["text"].startswith("[dry-run] Notebook ml/nb-ada is idle and would be")


def test_notify_only_warning_promises_no_action():
    msg = slack_message(ctx(suspend_at=None))
    assert "no action will be taken" in msg["text"] and "Suspension at" not in flat(msg)


def test_events_per_stage():
    assert event_for(ctx()).reason == "IdleWarning" and event_for(ctx()).type == "Warning"
    assert "snooze-until=" in event_for(ctx()).message
    sus = event_for(ctx(stage="suspended"))
    assert sus.reason == "IdleSuspended" and "gpu-steward resume notebook/nb-ada -n ml" in sus.message
    res = event_for(ctx(stage="resumed", reason="resumed outside GPU Steward"))
    assert res.reason == "IdleResumed" and res.type == "Normal" and "outside GPU Steward" in res.message
    long = event_for(ctx(name="x" * 2000))
    assert len(long.message) <= 1024
    assert note_event("snooze cut").reason == "IdlePolicyNote"


def test_a_warning_says_what_suspension_loses_or_why_there_will_be_none():
    warn = ctx(stage="warning", suspend_at=NOW + timedelta(minutes=30))
    assert "in-memory state" in event_for(warn).message
    assert "in-memory state" in json.dumps(slack_message(warn))
    held = ctx(stage="warning", suspend_at=None, not_suspended_because="suspending it would delete its volumes")
    assert "will not be suspended: suspending it would delete its volumes" in event_for(held).message
    assert "would delete its volumes" in json.dumps(slack_message(held))


def test_times_in_blocks_are_slack_date_tokens_with_an_rfc3339_fallback():
    msg = slack_message(ctx())
    due = NOW + timedelta(minutes=30)
    token = f"<!date^{int(due.timestamp())}^{{date_short_pretty}} {{time}}|2026-03-02T10:30:00Z>"
    assert slack_date(due) == token
    blocks = json.dumps(msg["blocks"])
    assert json.dumps(token)[1:-1] in blocks  # headline and "Suspension at" fact
    assert "<!date^" not in msg["text"]  # the notification fallback stays plain
    assert "2026-03-02T10:30:00Z" in event_for(ctx()).message and "<!date" not in event_for(ctx()).message


def test_the_owner_is_mentioned_when_known_and_user_text_cannot_fake_a_mention():
    assert "<@U0ADA> (ada)" in flat(slack_message(ctx(owner_mention="<@U0ADA>")))
    text = flat(slack_message(ctx(owner="<@U0EVIL>")))
    assert "<@U0EVIL>" not in text and "&lt;@U0EVIL&gt;" in text


def test_a_closed_warning_has_no_buttons_and_points_to_the_thread():
    closed = warning_closed(ctx(stage="suspended", name="<b>"))
    assert not any(b["type"] == "actions" for b in closed["blocks"])
    assert closed["text"] == ("Notebook ml/&lt;b&gt;: suspended at 2026-03-02T10:00:00Z. "
                              "Details and how to resume are in the thread.")
    assert f"<!date^{int(NOW.timestamp())}^" in flat(closed)
