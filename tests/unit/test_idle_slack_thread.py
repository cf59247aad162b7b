"""With a bot token, an idle episode reads as one Slack conversation: the warning @mentions the owner, the
suspension notice is a reply in the warning's thread, and the warning loses its buttons; webhook-only
setups keep standalone messages. The real IdleController and SlackNotifier against the local receiver."""

from __future__ import annotations

import json

import pytest
from idle_world import World, job, policy

from fixtures.slack_receiver import SlackReceiver
from gpu_steward.notify.slack import SlackNotifier
from gpu_steward.settings import Settings

OWNER = {"annotations": {"gpusteward.dev/owner-email": "ada@example.com"}}


@pytest.fixture
def receiver():
    with SlackReceiver() as r:
        r.add_user("ada@example.com", "U0ADA")
        yield r


def _posted(r: SlackReceiver) -> list:
    return [m for m in r.messages if m.kind == "chat.postMessage"]


def test_the_suspension_replies_in_the_warnings_thread_and_closes_its_buttons(receiver):
    token = receiver.add_token()
    settings = Settings(metrics_port=0, slack_bot_token=token, slack_signing_secret="s3cret",
                        slack_api_url=receiver.api_url)
    w = World(policy(["Slack", "Event"]), slack=SlackNotifier.from_settings(settings), settings=settings)
    nb = w.run(job("train", **OWNER))
    w.passes(60, until=lambda: w.suspended(nb) and len(_posted(receiver)) >= 2)
    warning, suspended = _posted(receiver)[:2]
    assert warning.thread_ts is None and "*Owner*\\n<@U0ADA>" in json.dumps(warning.payload)
    assert "<!date^" in json.dumps(warning.payload["blocks"]) and "<!date^" not in warning.payload["text"]
    assert any(b["type"] == "actions" for b in warning.payload["blocks"])  # the snooze button, as posted
    assert suspended.thread_ts == warning.ts and suspended.channel == warning.channel
    assert "was suspended" in suspended.payload["text"]
    [update] = [m for m in receiver.messages if m.kind == "chat.update"]
    assert update.ts == warning.ts
    now = receiver.message(warning.channel, warning.ts).current
    assert not any(b["type"] == "actions" for b in now["blocks"]) and "in the thread" in now["text"]
    # the warning's place is in the operator's store (not on the workload) and survives a restart
    entry = next(iter(w.controller.store.entries().values()))
    assert (entry.warning.channel, entry.warning.ts) == (warning.channel, warning.ts)


def test_webhook_only_keeps_standalone_messages(receiver):
    settings = Settings(metrics_port=0, slack_webhook_url=receiver.add_webhook(), slack_api_url=receiver.api_url)
    w = World(policy(["Slack", "Event"]), slack=SlackNotifier.from_settings(settings), settings=settings)
    nb = w.run(job("train", **OWNER))
    w.passes(60, until=lambda: w.suspended(nb) and len(receiver.messages) >= 2)
    kinds = [m.kind for m in receiver.messages]
    assert kinds[:2] == ["webhook", "webhook"] and "chat.update" not in kinds
    assert all("thread_ts" not in m.payload for m in receiver.messages)
    assert "<@" not in json.dumps(receiver.messages[0].payload)


def test_the_warnings_place_round_trips_in_the_store_and_a_bad_one_is_dropped():
    from gpu_steward.policy.store_codec import Entry, EntryRef, WarningMessage, decode_entry, encode_entry

    entry = Entry(EntryRef("batch/v1", "Job", "ml", "train"), warning=WarningMessage(3, "D0ADA", "1767225600.000001"))
    assert decode_entry(encode_entry(entry))[0] == entry
    raw = json.loads(encode_entry(entry))
    raw["slack"] = {"episode": "3", "channel": "D0ADA"}
    back, problem = decode_entry(json.dumps(raw))
    assert problem is None and back is not None and back.warning is None
