"""SlackNotifier against the local Slack receiver: routing, fallbacks, errors as results, no secret leaks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from fixtures.slack_receiver import SlackReceiver
from gpu_steward.notify.messages import NoticeContext, slack_message
from gpu_steward.notify.slack import SlackNotifier
from gpu_steward.settings import Settings

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MESSAGE = slack_message(
    NoticeContext(
        stage="warning",
        kind="Notebook",
        name="nb-1",
        namespace="ml",
        now=NOW,
        idle_since=NOW - timedelta(minutes=45),
        suspend_at=NOW + timedelta(minutes=30),
        gpus=2,
    )
)


@pytest.fixture
def slack():
    with SlackReceiver() as receiver:
        receiver.add_user("ada@example.com", "U0ADA")
        receiver.add_channel("#gpu-alerts", "C0ALERTS")
        yield receiver


def test_bot_token_dms_the_owner(slack):
    n = SlackNotifier(bot_token=slack.add_token(), api_url=slack.api_url, default_channel="#gpu-alerts")
    result = n.send(MESSAGE, owner_email="ada@example.com")
    assert result.ok and result.via == "dm" and result.channel.startswith("D")
    [msg] = slack.messages
    assert msg.payload["blocks"] == MESSAGE["blocks"] and msg.payload["text"] == MESSAGE["text"]


def test_unknown_owner_falls_back_to_the_default_channel(slack):
    n = SlackNotifier(bot_token=slack.add_token(), api_url=slack.api_url, default_channel="#gpu-alerts")
    result = n.send(MESSAGE, owner_email="nobody@example.com")
    assert result.ok and result.via == "channel" and result.channel == "C0ALERTS"
    assert "users_not_found" in (result.error or "")


def test_webhook_when_the_bot_cannot_deliver(slack):
    n = SlackNotifier(webhook_url=slack.add_webhook(), bot_token="xoxb-revoked", api_url=slack.api_url)
    result = n.send(MESSAGE, owner_email="ada@example.com")
    assert result.ok and result.via == "webhook"
    assert "invalid_auth" in (result.error or "")
    assert [m.kind for m in slack.messages] == ["webhook"]


def test_failures_come_back_as_results_not_exceptions(slack):
    dead = SlackNotifier(webhook_url="http://127.0.0.1:9/services/T1/B1/zzz", timeout_seconds=1)
    result = dead.send(MESSAGE)
    assert not result.ok and result.via == "none" and result.error
    gone = SlackNotifier(webhook_url=slack.add_webhook() + "-deleted")
    result = gone.send(MESSAGE)
    assert not result.ok and "404" in (result.error or "") and "no_service" in (result.error or "")
    assert not SlackNotifier().send(MESSAGE).ok


def test_secrets_never_reach_logs_or_results(slack, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # the most talkative setting; slack_sdk logs its URL at DEBUG
    hook = slack.add_webhook()
    token = slack.add_token()
    settings = Settings(
        slack_webhook_url=SecretStr(hook), slack_bot_token=SecretStr(token), slack_api_url=slack.api_url
    )
    n = SlackNotifier.from_settings(settings)
    results = [
        n.send(MESSAGE, owner_email="ada@example.com"),
        n.send(MESSAGE, owner_email="nobody@example.com"),  # lookup fails, no channel: webhook
        SlackNotifier(webhook_url=hook + "x", bot_token=token + "x", api_url=slack.api_url).send(MESSAGE),
        SlackNotifier(webhook_url=hook.replace(slack.base_url, "http://127.0.0.1:9"), timeout_seconds=1).send(MESSAGE),
    ]
    assert [r.ok for r in results] == [True, True, False, False]
    out = capsys.readouterr()
    seen = caplog.text + out.out + out.err + repr(n) + "".join(repr(r) for r in results)
    secret_path = hook.split("/services/")[1]
    for secret in (hook, token, secret_path):
        assert secret not in seen
    assert any(r.errors for r in results)  # there was error text to leak, and it was scrubbed


def test_a_thread_reply_and_an_update_with_a_bot_token(slack):
    n = SlackNotifier(bot_token=slack.add_token(), api_url=slack.api_url, default_channel="#gpu-alerts")
    first = n.send(MESSAGE, owner_email="ada@example.com")
    from gpu_steward.notify.slack import SlackThread

    thread = SlackThread(first.channel, first.ts)
    reply = n.send({"text": "suspended"}, owner_email="ada@example.com", thread=thread)
    assert reply.ok and reply.via == "thread" and slack.messages[-1].thread_ts == first.ts
    assert n.update(thread, {"text": "closed"}).ok
    assert slack.message(first.channel, first.ts).current["text"] == "closed"
    assert n.mention("ada@example.com") == "<@U0ADA>" and n.mention("nobody@example.com") is None
    # a thread that is gone: the reply falls back to a standalone message, the update fails as a result
    gone = SlackThread(first.channel, "1.000001")
    again = n.send({"text": "resumed"}, owner_email="ada@example.com", thread=gone)
    assert again.ok and again.via == "dm" and "thread_not_found" in (again.error or "")
    assert "message_not_found" in (n.update(gone, {"text": "x"}).error or "")


def test_webhook_only_has_no_mentions_threads_or_updates(slack):
    from gpu_steward.notify.slack import SlackThread

    n = SlackNotifier(webhook_url=slack.add_webhook())
    assert n.mention("ada@example.com") is None
    assert not n.update(SlackThread("C1", "1.1"), {"text": "x"}).ok
    assert n.send({"text": "t"}, thread=SlackThread("C1", "1.1")).via == "webhook"
