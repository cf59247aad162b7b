"""A local receiver that speaks Slack's incoming-webhook and Web API contract (tests and the demo).

Incoming webhooks (``POST /services/T…/B…/secret``):
    200 ``ok``                on a JSON (or form ``payload=``) body with ``text`` or ``blocks``;
    400 ``invalid_payload``   on a body that is not JSON / ``blocks`` not a list;
    400 ``no_text``           when neither ``text`` nor ``blocks`` is given;
    404 ``no_service``        for a path that is not a registered webhook.
Interaction response URLs (``POST /actions/T…/<id>/<secret>``, given to an app with each button click)
    answer the same way; what they receive is recorded with kind ``response``.
Web API (``/api/<method>``; token as ``Authorization: Bearer`` or a ``token`` parameter; JSON or form
body, or query string; always HTTP 200 with ``{"ok": ...}`` like Slack):
    chat.postMessage (``thread_ts`` makes a reply: ``thread_not_found`` unless it names a message in that
    channel), chat.update (``channel`` + ``ts`` of a message the bot posted: ``message_not_found``
    otherwise), users.lookupByEmail, users.info
    (``user`` id -> profile e-mail), conversations.open, auth.test;
    ``not_authed`` without a token, ``invalid_auth`` with a wrong one, ``unknown_method`` otherwise.
Every accepted message is recorded (``receiver.messages``, with its ``ts`` and ``thread_ts`` and the time
it was accepted) for tests to read back; an update is recorded too (kind ``chat.update``), and the message
keeps what it was posted with (``payload``) beside what Slack now shows (``current``;
``receiver.message(channel, ts)``). Loopback only, free port.

Faults: ``failure_rate`` (0..1, settable at any time) answers that share of webhook and Web API requests
with an error Slack really gives: 500 / 503 on a webhook, or ``{"ok": false, "error": "internal_error"}``
(HTTP 200, like Slack's Web API) / 503 on the Web API. What failed is recorded in ``receiver.failures``
and is not a message. ``on_request`` (if set) is called with (verb, path) on every request, before it is
answered: a fault injector can time a crash to land while a notice is in flight.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


def sign_request(body: bytes, timestamp: int, signing_secret: str) -> dict[str, str]:
    """The headers Slack sends with a request to an app (an interaction): ``v0=`` HMAC-SHA256 of
    ``v0:<timestamp>:<body>`` under the app's signing secret."""
    digest = hmac.new(signing_secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


@dataclass
class Received:
    kind: str  # "webhook", "response" (an interaction's response_url) or the Web API method
    path: str
    payload: dict[str, Any]
    channel: str | None = None
    at: float = field(default_factory=time.time)  # when it was accepted (epoch seconds)
    ts: str | None = None  # Web API messages: their id in the channel
    thread_ts: str | None = None  # a reply: the ts of the message it replies to
    updated: dict[str, Any] | None = None  # the latest chat.update of this message

    @property
    def current(self) -> dict[str, Any]:
        """What Slack shows now: the latest update, else the message as posted."""
        return self.updated if self.updated is not None else self.payload


@dataclass
class _State:
    webhooks: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    users: dict[str, str] = field(default_factory=dict)  # email -> user id
    channels: dict[str, str] = field(default_factory=dict)  # "#name" or "name" -> channel id
    messages: list[Received] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)
    failure_rate: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    failures: list[tuple[float, str, str]] = field(default_factory=list)  # (time, path, error) of failed answers
    on_request: Callable[[str, str], None] | None = None

    def fail_now(self) -> bool:
        with self.lock:
            return self.failure_rate > 0 and self.rng.random() < self.failure_rate


class SlackReceiver:
    """Start with ``with SlackReceiver() as slack:``; ``slack.base_url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, failure_rate: float = 0.0, seed: int | None = None) -> None:
        self.state = _State(failure_rate=failure_rate, rng=random.Random(seed))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self.state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-receiver", daemon=True)

    def __enter__(self) -> SlackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        """What ``settings.slack_api_url`` / ``WebClient(base_url=...)`` should be."""
        return f"{self.base_url}/api/"

    def add_webhook(self) -> str:
        """Register a new incoming webhook and return its URL (a secret, like Slack's)."""
        path = f"/services/T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/{secrets.token_urlsafe(18)}"
        with self.state.lock:
            self.state.webhooks.add(path)
        return self.base_url + path

    def add_response_url(self) -> str:
        """A fresh ``response_url`` as Slack puts into an interaction payload."""
        path = f"/actions/T{secrets.token_hex(4).upper()}/{secrets.randbelow(10**12)}/{secrets.token_urlsafe(18)}"
        with self.state.lock:
            self.state.webhooks.add(path)
        return self.base_url + path

    def add_token(self) -> str:
        token = "xoxb-" + "-".join(secrets.token_hex(6) for _ in range(3))
        with self.state.lock:
            self.state.tokens.add(token)
        return token

    def add_user(self, email: str, user_id: str) -> None:
        with self.state.lock:
            self.state.users[email.lower()] = user_id

    def add_channel(self, name: str, channel_id: str) -> None:
        with self.state.lock:
            self.state.channels[name.lstrip("#")] = channel_id
            self.state.channels[channel_id] = channel_id

    @property
    def messages(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.messages)

    @property
    def failures(self) -> list[tuple[float, str, str]]:
        with self.state.lock:
            return list(self.state.failures)

    def set_failure_rate(self, rate: float) -> None:
        with self.state.lock:
            self.state.failure_rate = max(0.0, min(1.0, rate))

    def on_request(self, callback: Callable[[str, str], None] | None) -> None:
        self.state.on_request = callback

    def message(self, channel: str, ts: str) -> Received | None:
        """The posted message ``ts`` in ``channel`` (its payload as last updated), or None."""
        with self.state.lock:
            return next((m for m in self.state.messages
                         if m.kind == "chat.postMessage" and m.channel == channel and m.ts == ts), None)


def _make_handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:  # keep test output quiet (and URLs with secrets out of it)
            return

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _text(self, status: int, text: str) -> None:
            self._reply(status, text.encode(), "text/html")

        def _json(self, obj: dict[str, Any]) -> None:
            self._reply(200, json.dumps(obj).encode(), "application/json; charset=utf-8")

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, verb: str) -> None:
            url = urlsplit(self.path)
            raw = self._body()
            with state.lock:
                state.requests.append((verb, url.path))
            if state.on_request is not None:
                state.on_request(verb, url.path)
            if url.path.startswith(("/services/", "/actions/", "/api/")) and state.fail_now():
                return self._fail(url.path)
            if url.path.startswith(("/services/", "/actions/")) and verb == "POST":
                self._webhook(url.path, raw)
            elif url.path.startswith("/api/"):
                self._api(url.path[len("/api/") :], url.query, raw)
            else:
                self._text(404, "no_service")

        def _fail(self, path: str) -> None:
            """An error Slack gives when it has a bad moment (nothing is recorded as a message)."""
            with state.lock:
                pick = state.rng.random()
            if pick < 0.5:
                error, send = "503 service_unavailable", lambda: self._text(503, "service_unavailable")
            elif path.startswith("/api/"):
                error, send = "internal_error", lambda: self._json({"ok": False, "error": "internal_error"})
            else:
                error, send = "500 internal_error", lambda: self._text(500, "internal_error")
            with state.lock:
                state.failures.append((time.time(), path.split("/")[1], error))
            send()

        def _webhook(self, path: str, raw: bytes) -> None:
            with state.lock:
                known = path in state.webhooks
            if not known:
                return self._text(404, "no_service")
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            try:
                if ctype == "application/x-www-form-urlencoded":
                    payload = json.loads(dict(parse_qsl(raw.decode())).get("payload", ""))
                else:
                    payload = json.loads(raw.decode() or "null")
            except (ValueError, UnicodeDecodeError):
                return self._text(400, "invalid_payload")
            if not isinstance(payload, dict) or ("blocks" in payload and not isinstance(payload["blocks"], list)):
                return self._text(400, "invalid_payload")
            if not payload.get("text") and not payload.get("blocks"):
                return self._text(400, "no_text")
            with state.lock:
                kind = "response" if path.startswith("/actions/") else "webhook"
                state.messages.append(Received(kind, path, payload, payload.get("channel")))
            return self._text(200, "ok")

        def _params(self, query: str, raw: bytes) -> dict[str, Any] | None:
            params: dict[str, Any] = dict(parse_qsl(query))
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if raw:
                if ctype == "application/json":
                    try:
                        body = json.loads(raw.decode())
                    except (ValueError, UnicodeDecodeError):
                        return None
                    if not isinstance(body, dict):
                        return None
                    params.update(body)
                else:
                    params.update(parse_qsl(raw.decode(errors="replace")))
            return params

        def _api(self, method: str, query: str, raw: bytes) -> None:
            params = self._params(query, raw)
            if params is None:
                return self._json({"ok": False, "error": "invalid_json"})
            auth = self.headers.get("Authorization") or ""
            token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else params.pop("token", None)
            if not token:
                return self._json({"ok": False, "error": "not_authed"})
            with state.lock:
                valid = token in state.tokens
            if not valid:
                return self._json({"ok": False, "error": "invalid_auth"})
            handler = {
                "chat.postMessage": self._post_message,
                "chat.update": self._update,
                "users.lookupByEmail": self._lookup,
                "users.info": self._info,
                "conversations.open": self._open,
                "auth.test": lambda p: self._json({"ok": True, "user_id": "UBOT", "team_id": "T0001"}),
            }.get(method)
            if handler is None:
                return self._json({"ok": False, "error": "unknown_method"})
            return handler(params)

        def _resolve_channel(self, channel: str) -> str | None:
            with state.lock:
                if channel.lstrip("#") in state.channels:
                    return state.channels[channel.lstrip("#")]
                if channel in state.users.values() or channel.startswith("D"):
                    return "D" + channel.lstrip("UWD")  # a DM with that user
            return None

        def _blocks(self, p: dict[str, Any]) -> tuple[list[Any] | None, str | None]:
            blocks = p.get("blocks")
            if isinstance(blocks, str):  # form-encoded callers send blocks as a JSON string
                try:
                    blocks = json.loads(blocks)
                except ValueError:
                    return None, "invalid_blocks"
            if blocks is not None and not isinstance(blocks, list):
                return None, "invalid_blocks"
            if not p.get("text") and not blocks:
                return None, "no_text"
            return blocks, None

        def _target(self, p: dict[str, Any]) -> tuple[str, Any, str | None]:
            """The channel a chat.* call names, resolved, and its blocks; or Slack's error for the first
            thing wrong (channel, then blocks), as the Web API checks them."""
            resolved = self._resolve_channel(str(p["channel"])) if p.get("channel") else None
            if resolved is None:
                return "", None, "channel_not_found"
            blocks, error = self._blocks(p)
            return resolved, blocks, error or None

        def _find(self, channel: str, ts: str) -> Received | None:
            return next((m for m in state.messages
                         if m.kind == "chat.postMessage" and m.channel == channel and m.ts == ts), None)

        def _post_message(self, p: dict[str, Any]) -> None:
            channel = p.get("channel")
            resolved, blocks, error = self._target(p)
            if error:
                return self._json({"ok": False, "error": error})
            thread_ts = str(p["thread_ts"]) if p.get("thread_ts") else None
            with state.lock:
                if thread_ts is not None and self._find(resolved, thread_ts) is None:
                    return self._json({"ok": False, "error": "thread_not_found"})
                ts = f"1767225600.{next(state.ts):06d}"
                payload = {"text": p.get("text"), "blocks": blocks, "channel": channel}
                if thread_ts is not None:
                    payload["thread_ts"] = thread_ts
                state.messages.append(Received("chat.postMessage", "/api/chat.postMessage", payload, resolved,
                                               ts=ts, thread_ts=thread_ts))
            message: dict[str, Any] = {"type": "message", "text": p.get("text") or "", "bot_id": "BBOT", "ts": ts}
            if blocks:
                message["blocks"] = blocks
            if thread_ts is not None:
                message["thread_ts"] = thread_ts
            return self._json({"ok": True, "channel": resolved, "ts": ts, "message": message})

        def _update(self, p: dict[str, Any]) -> None:
            channel, ts = p.get("channel"), p.get("ts")
            if channel and not ts:
                return self._json({"ok": False, "error": "message_not_found"})
            resolved, blocks, error = self._target(p)
            if error:
                return self._json({"ok": False, "error": error})
            with state.lock:
                original = self._find(resolved, str(ts))
                if original is None:
                    return self._json({"ok": False, "error": "message_not_found"})
                payload = {"text": p.get("text"), "blocks": blocks, "channel": channel}
                if original.thread_ts is not None:
                    payload["thread_ts"] = original.thread_ts
                original.updated = payload
                state.messages.append(Received("chat.update", "/api/chat.update", dict(payload), resolved,
                                               ts=str(ts), thread_ts=original.thread_ts))
            message: dict[str, Any] = {"type": "message", "text": p.get("text") or "", "bot_id": "BBOT"}
            if blocks:
                message["blocks"] = blocks
            return self._json({"ok": True, "channel": resolved, "ts": str(ts), "text": p.get("text") or "",
                               "message": message})

        def _lookup(self, p: dict[str, Any]) -> None:
            email = str(p.get("email") or "").lower()
            with state.lock:
                user_id = state.users.get(email)
            if user_id is None:
                return self._json({"ok": False, "error": "users_not_found"})
            user = {"id": user_id, "name": email.split("@")[0], "profile": {"email": email}, "deleted": False}
            return self._json({"ok": True, "user": user})

        def _info(self, p: dict[str, Any]) -> None:
            user_id = str(p.get("user") or "")
            if not user_id:
                return self._json({"ok": False, "error": "user_not_found"})
            with state.lock:
                email = next((e for e, u in state.users.items() if u == user_id), None)
            if email is None:
                return self._json({"ok": False, "error": "user_not_found"})
            user = {"id": user_id, "name": email.split("@")[0], "deleted": False,
                    "profile": {"email": email, "real_name": email.split("@")[0]}}
            return self._json({"ok": True, "user": user})

        def _open(self, p: dict[str, Any]) -> None:
            users = str(p.get("users") or "")
            if not users:
                return self._json({"ok": False, "error": "users_list_not_supplied"})
            with state.lock:
                known = set(state.users.values())
            first = users.split(",")[0]
            if first not in known:
                return self._json({"ok": False, "error": "user_not_found"})
            return self._json({"ok": True, "channel": {"id": "D" + first.lstrip("UW")}})

    return Handler
