"""slack_sdk's own clients against the local Slack receiver: the contract the notifier relies on."""

from __future__ import annotations

import json
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from fixtures.slack_receiver import SlackReceiver


@pytest.fixture
def slack():
    with SlackReceiver() as receiver:
        yield receiver


def test_webhook_client_posts_and_the_message_is_recorded(slack):
    url = slack.add_webhook()
    resp = WebhookClient(url).send(text="hello", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}])
    assert (resp.status_code, resp.body) == (200, "ok")
    [msg] = slack.messages
    assert msg.kind == "webhook" and msg.payload["text"] == "hello"
    assert msg.payload["blocks"][0]["text"]["text"] == "hi"


def test_webhook_errors_follow_slack(slack):
    url = slack.add_webhook()
    assert WebhookClient(url).send_dict({"username": "x"}).body == "no_text"
    assert WebhookClient(url + "x").send(text="hi").status_code == 404
    assert WebhookClient(url + "x").send(text="hi").body == "no_service"
    req = urllib.request.Request(url, data=b"{not json", headers={"Content-Type": "application/json"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400 and err.value.read() == b"invalid_payload"
    assert slack.messages == []


def test_web_client_post_message_and_lookup_by_email(slack):
    token = slack.add_token()
    slack.add_user("ada@example.com", "U0ADA")
    slack.add_channel("#gpu-alerts", "C0ALERTS")
    client = WebClient(token=token, base_url=slack.api_url)
    user = client.users_lookupByEmail(email="ada@example.com")
    assert user["user"]["id"] == "U0ADA"
    sent = client.chat_postMessage(channel="U0ADA", text="your notebook is idle")
    assert sent["ok"] and sent["channel"].startswith("D") and sent["message"]["text"] == "your notebook is idle"
    sent = client.chat_postMessage(channel="#gpu-alerts", text="t", blocks=[{"type": "divider"}])
    assert sent["channel"] == "C0ALERTS" and sent["ts"]
    opened = client.conversations_open(users="U0ADA")
    assert opened["channel"]["id"].startswith("D")
    dm, alert = slack.messages
    assert dm.channel.startswith("D") and dm.payload["text"] == "your notebook is idle"
    assert alert.channel == "C0ALERTS"
    assert json.dumps(slack.messages[1].payload["blocks"]) == '[{"type": "divider"}]'


def test_web_client_errors_follow_slack(slack):
    token = slack.add_token()
    client = WebClient(token=token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as err:
        client.users_lookupByEmail(email="nobody@example.com")
    assert err.value.response["error"] == "users_not_found"
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel="#nowhere", text="x")
    assert err.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as err:
        WebClient(token="xoxb-wrong", base_url=slack.api_url).chat_postMessage(channel="#x", text="x")
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        WebClient(base_url=slack.api_url).chat_postMessage(channel="#x", text="x")
    assert err.value.response["error"] == "not_authed"
