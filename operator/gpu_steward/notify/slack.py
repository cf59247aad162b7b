"""Sending a notice to Slack (slack_sdk): a bot token that DMs the owner, or an incoming webhook.

Order of attempts for one message (``SlackNotifier.send``):
1. bot token + owner e-mail: ``users.lookupByEmail`` → ``chat.postMessage(channel=<user id>)`` (a DM);
2. bot token + channel (the given one, else ``default_channel``): ``chat.postMessage``;
3. incoming webhook: ``WebhookClient.send_dict`` (the webhook's own channel).
The first success wins; every failure is carried in the result, never raised: a Slack outage must not
stop the evaluation loop (the Event channel still records the notice, and the engine re-sends a notice
whose send was never confirmed).

Secrets: the webhook URL and the bot token are held as ``SecretStr`` and never logged, never put in a
result's ``error`` text (scrubbed), never written by slack_sdk's own logging (its clients get a
private logger that drops everything: slack_sdk logs request URLs at DEBUG, and at INFO when it retries).
``api_url`` (``settings.slack_api_url``) and the webhook URL are configurable so tests aim at the local
receiver (``tests/fixtures/slack_receiver.py``).

Threads (bot token only): ``send(..., thread=SlackThread(channel, ts))`` posts the message as a reply to
that message (``thread_ts``), falling back to the order above when the reply fails; ``update`` replaces a
message (``chat.update``, e.g. a warning's buttons once its workload is suspended). ``mention`` turns an
owner's e-mail into ``<@U…>`` (``users.lookupByEmail``, cached per notifier). A webhook-only setup has
none of these: its messages stay standalone.

Buttons: every GPU Steward button is sealed (``interactions.seal``) with a key derived from the signing
secret just before sending; a notifier without that key (no signing secret or no bot token to tell who
clicks) drops them. ``user_email`` maps a clicking Slack user to an e-mail (``users.info``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from gpu_steward.logs import redact
from gpu_steward.notify.interactions import button_key, seal

log = structlog.get_logger(__name__)

# slack_sdk's clients log request URLs (a webhook URL is a secret) at DEBUG and, when retrying, at INFO.
# They get a logger that drops everything; failures reach our log through SlackResult, scrubbed.
_SDK_LOGGER = logging.getLogger("gpu_steward.notify.slack_sdk")
_SDK_LOGGER.setLevel(logging.CRITICAL + 1)
_SDK_LOGGER.propagate = False
_SDK_LOGGER.addHandler(logging.NullHandler())

Via = Literal["dm", "channel", "thread", "webhook", "none"]


@dataclass(frozen=True)
class SlackResult:
    ok: bool
    via: Via
    channel: str | None = None  # where it landed (DM channel id, channel id) — not a secret
    ts: str | None = None
    errors: tuple[str, ...] = field(default=())  # one per failed attempt, secrets scrubbed

    @property
    def error(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None


@dataclass(frozen=True)
class SlackThread:
    """A message a later notice replies to (its channel id and ``ts``)."""

    channel: str
    ts: str


def _secret(value: SecretStr | str | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value) if value else None


class SlackNotifier:
    def __init__(
        self,
        *,
        webhook_url: SecretStr | str | None = None,
        bot_token: SecretStr | str | None = None,
        api_url: str = "https://slack.com/api/",
        default_channel: str | None = None,
        timeout_seconds: float = 10.0,
        button_key: bytes | None = None,
    ) -> None:
        self._webhook_url = _secret(webhook_url)
        self._bot_token = _secret(bot_token)
        self._button_key = button_key if self._bot_token is not None else None
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.default_channel = default_channel
        self.timeout = int(max(timeout_seconds, 1))
        self._users: dict[str, str] = {}  # e-mail -> user id found, for this notifier

    @classmethod
    def from_settings(cls, settings: Any, webhook_url: SecretStr | str | None = None) -> SlackNotifier:
        """From ``gpu_steward.settings.Settings``; a webhook read from a GPUBudget's Secret overrides the global one."""
        return cls(
            webhook_url=webhook_url or settings.slack_webhook_url,
            bot_token=settings.slack_bot_token,
            api_url=settings.slack_api_url,
            default_channel=settings.slack_default_channel,
            button_key=button_key(settings.slack_signing_secret.get_secret_value())
            if getattr(settings, "slack_signing_secret", None) is not None else None,
        )

    @property
    def configured(self) -> bool:
        return self._webhook_url is not None or self._bot_token is not None

    def __repr__(self) -> str:  # never show the secrets, even in a traceback's locals
        return (
            f"SlackNotifier(webhook={'set' if self._webhook_url else 'unset'}, "
            f"bot_token={'set' if self._bot_token else 'unset'}, api_url={self.api_url!r})"
        )

    def _scrub(self, text: str) -> str:
        for secret in (self._webhook_url, self._bot_token):
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "<redacted>")
        return redact(text)

    def send(
        self, message: dict[str, Any], *, owner_email: str | None = None, channel: str | None = None,
        thread: SlackThread | None = None,
    ) -> SlackResult:
        """Deliver ``message`` (``{"text", "blocks"}`` from ``notify.messages.slack_message``), as a reply
        in ``thread`` when given (bot token). Never raises."""
        errors: list[str] = []
        message = seal(message, self._button_key)
        client = self._client()
        if client is not None:
            if thread is not None:
                result = self._post(client, thread.channel, message, "thread", errors, thread_ts=thread.ts)
                if result is not None:
                    return result
            if owner_email:
                user_id = self._lookup(client, owner_email, errors)
                if user_id is not None:
                    result = self._post(client, user_id, message, "dm", errors)
                    if result is not None:
                        return result
            target = channel or self.default_channel
            if target:
                result = self._post(client, target, message, "channel", errors)
                if result is not None:
                    return result
        if self._webhook_url is not None:
            result = self._webhook(message, errors)
            if result is not None:
                return result
        if not self.configured:
            errors.append("slack not configured (no webhook URL, no bot token)")
        elif not errors:
            errors.append("no destination: no owner e-mail found, no channel, no webhook")
        log.warning("slack notice not delivered", errors=errors)
        return SlackResult(ok=False, via="none", errors=tuple(errors))

    async def send_async(
        self, message: dict[str, Any], *, owner_email: str | None = None, channel: str | None = None
    ) -> SlackResult:
        """``send`` off the event loop (slack_sdk's clients are synchronous)."""
        return await asyncio.to_thread(self.send, message, owner_email=owner_email, channel=channel)

    def _fail(self, what: str, exc: BaseException, errors: list[str]) -> None:
        if isinstance(exc, SlackApiError):
            detail = str(exc.response.get("error", "error")) if exc.response is not None else "error"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        errors.append(self._scrub(f"{what}: {detail}"))

    def _client(self) -> WebClient | None:
        if self._bot_token is None:
            return None
        return WebClient(token=self._bot_token.get_secret_value(), base_url=self.api_url, timeout=self.timeout,
                         logger=_SDK_LOGGER)

    def user_email(self, user_id: str) -> tuple[str | None, str | None]:
        """(e-mail, None) of a Slack user (``users.info``; needs the ``users:read.email`` scope), or
        (None, why not). Never raises."""
        client = self._client()
        if client is None:
            return None, "no bot token: cannot tell who clicked"
        errors: list[str] = []
        try:
            resp = client.users_info(user=user_id)
        except Exception as exc:
            self._fail("users.info", exc, errors)
            return None, errors[0]
        user = resp.get("user") or {}
        profile = user.get("profile") if isinstance(user, dict) else None
        email = profile.get("email") if isinstance(profile, dict) else None
        if not isinstance(email, str) or "@" not in email or user.get("deleted"):
            return None, "users.info: no e-mail for this user"
        return email, None

    def mention(self, email: str | None) -> str | None:
        """``<@U…>`` for the owner's e-mail (bot token; ``users:read.email``), else None. Never raises."""
        client = self._client()
        if client is None or not email:
            return None
        user_id = self._lookup(client, email, [])
        return f"<@{user_id}>" if user_id else None

    def update(self, thread: SlackThread, message: dict[str, Any]) -> SlackResult:
        """Replace the message at ``thread`` (``chat.update``; bot token). Never raises."""
        client = self._client()
        if client is None:
            return SlackResult(ok=False, via="none", errors=("chat.update needs a bot token",))
        errors: list[str] = []
        try:
            resp = client.chat_update(channel=thread.channel, ts=thread.ts, text=message.get("text", ""),
                                      blocks=message.get("blocks"))
        except Exception as exc:
            self._fail("chat.update", exc, errors)
            log.warning("slack message not updated", errors=errors)
            return SlackResult(ok=False, via="none", errors=tuple(errors))
        return SlackResult(ok=True, via="thread", channel=resp.get("channel"), ts=resp.get("ts"))

    def _lookup(self, client: WebClient, email: str, errors: list[str]) -> str | None:
        key = email.lower()
        if key in self._users:
            return self._users[key]
        try:
            resp = client.users_lookupByEmail(email=email)
        except Exception as exc:  # network, HTTP, API errors: all become a reported failure
            self._fail("users.lookupByEmail", exc, errors)
            return None
        user = resp.get("user") or {}
        user_id = user.get("id") if isinstance(user, dict) else None
        if not user_id:
            errors.append("users.lookupByEmail: no user id in response")
        if user_id and len(self._users) < 10_000:
            self._users[key] = str(user_id)
        return str(user_id) if user_id else None

    def _post(
        self, client: WebClient, channel: str, message: dict[str, Any], via: Via, errors: list[str],
        thread_ts: str | None = None,
    ) -> SlackResult | None:
        try:
            resp = client.chat_postMessage(channel=channel, text=message.get("text", ""), blocks=message.get("blocks"),
                                           thread_ts=thread_ts)
        except Exception as exc:
            self._fail(f"chat.postMessage ({via})", exc, errors)
            return None
        log.info("slack notice sent", via=via, channel=resp.get("channel"))
        return SlackResult(ok=True, via=via, channel=resp.get("channel"), ts=resp.get("ts"), errors=tuple(errors))

    def _webhook(self, message: dict[str, Any], errors: list[str]) -> SlackResult | None:
        assert self._webhook_url is not None
        try:
            client = WebhookClient(self._webhook_url.get_secret_value(), timeout=self.timeout, logger=_SDK_LOGGER)
            resp = client.send_dict(message)
        except Exception as exc:
            self._fail("webhook", exc, errors)
            return None
        if resp.status_code == 200:
            log.info("slack notice sent", via="webhook")
            return SlackResult(ok=True, via="webhook", errors=tuple(errors))
        errors.append(self._scrub(f"webhook: HTTP {resp.status_code} {str(resp.body)[:200]}"))
        return None
