"""The HTTP endpoint Slack calls when someone clicks a button on a notice (its "Request URL":
``https://<your ingress>/slack/interactions``). Verifies the signature and the button, checks that the
clicker owns the workload and that the click was not used before, writes the annotation the click
stands for, records an Event on the workload and answers the clicker in Slack (ephemeral).

Status codes: 200 done; 400 a payload we cannot use, or a button value GPU Steward did not make (the
body names the field); 401 no valid signature; 403 the clicker is not the workload's or the budget's
owner; 404 the workload is gone; 409 the workload was never noticed by GPU Steward, was recreated since
the notice, or this click was already handled (a replay); 410 the button expired; 413 too large;
503 who clicked, or whether the click was used, could not be checked (nothing changed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable

import structlog
from aiohttp import web
from slack_sdk.webhook.async_client import AsyncWebhookClient

from gpu_steward.api.idlepolicy import MAX_SNOOZE_S
from gpu_steward.api.kinds import GPUBUDGET
from gpu_steward.kube import Kube
from gpu_steward.notify.interactions import (
    Click,
    ClickRecord,
    InteractionError,
    budget_owner_emails,
    button_key,
    click_patch,
    click_summary,
    not_owner_text,
    parse_click,
    refusal,
    verify,
    workload_owner_emails,
)
from gpu_steward.notify.messages import slack_escape
from gpu_steward.notify.slack import SlackNotifier
from gpu_steward.settings import Settings
from gpu_steward.workloads.model import IDLE_STATE_ANNOTATION
from gpu_steward.workloads.resolve import owner_of

log = structlog.get_logger(__name__)

PATH = "/slack/interactions"
MAX_BODY = 64 * 1024
ALREADY_HANDLED = "This click was already handled."


class InteractionServer:
    def __init__(self, kube: Kube, settings: Settings, clock: Callable[[], dt.datetime] | None = None) -> None:
        if settings.slack_signing_secret is None:
            raise ValueError("slack_signing_secret: needed to verify Slack's requests")
        if settings.slack_bot_token is None:
            raise ValueError("slack_bot_token: needed to tell who clicked (users.info)")
        self.kube, self.settings = kube, settings
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._secret = settings.slack_signing_secret.get_secret_value()
        self._key = button_key(self._secret)
        self.slack = SlackNotifier.from_settings(settings)
        self._runner: web.AppRunner | None = None
        self._replies: set[asyncio.Task[None]] = set()
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(PATH, self.handle)
        return app

    async def start(self, host: str, port: int) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None)  # no access log: nothing of a request logged
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        addresses = self._runner.addresses  # (host, port, ...) of each bound socket; port 0 picks a free one
        self.port = int(addresses[0][1]) if addresses else port
        log.info("slack interactions endpoint listening", port=self.port, path=PATH)
        return self.port

    async def stop(self) -> None:
        for task in list(self._replies):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request too large")
        now = self.clock()
        if not verify(self._secret, body, dict(request.headers), now.timestamp()):
            log.warning("slack interaction refused: no valid signature")
            return web.Response(status=401, text="invalid signature")
        try:
            click = parse_click(body, dt.timedelta(seconds=MAX_SNOOZE_S), self._key)
        except InteractionError as exc:
            log.warning("slack interaction refused", problem=str(exc))
            return web.Response(status=400, text=str(exc))
        status, text = await asyncio.to_thread(self._apply, click, now)
        log.info("slack interaction", action=click.action, workload=str(click.target), user=click.user_id,
                 status=status)
        # The clicker hears why a click did nothing too; a replay (409 already handled) gets no answer:
        # it is not the clicker who sent it.
        if click.response_url and not (status == 409 and text == ALREADY_HANDLED):
            task = asyncio.create_task(self._reply(click.response_url, text))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)
        return web.Response(status=status, text=json.dumps({"ok": status == 200, "text": text}),
                            content_type="application/json")

    def _apply(self, click: Click, now: dt.datetime) -> tuple[int, str]:
        ref = click.target
        obj = self.kube.get_optional(ref.api_version, ref.kind, ref.name, ref.namespace)
        if obj is None:
            return 404, f"{ref.kind}/{ref.name} in {ref.namespace} no longer exists."
        if IDLE_STATE_ANNOTATION not in ((obj.get("metadata") or {}).get("annotations") or {}):
            return 409, f"{ref.kind}/{ref.name} in {ref.namespace} was never noticed by GPU Steward."
        if (why := refusal(click, obj, now)) is not None:
            return (410 if now >= click.expires else 409), why
        email, problem = self.slack.user_email(click.user_id)
        if email is None:
            log.warning("slack interaction: clicker unknown", problem=problem)
            return 503, "GPU Steward could not check who you are in Slack; nothing was changed. Try again later."
        try:
            budgets = self.kube.list_optional(GPUBUDGET.api_version, GPUBUDGET.kind, ref.namespace)
        except Exception as exc:
            log.warning("slack interaction: budgets unreadable", error=type(exc).__name__)
            budgets = []  # the workload's owner can still click
        owner = owner_of([obj], self.settings).email
        allowed = workload_owner_emails(obj, click, owner, trust_creator=self.settings.webhook_enabled) \
            | budget_owner_emails(budgets)
        if email.strip().lower() not in allowed:
            return 403, not_owner_text(click)
        used = self._use(click, now)
        if used is not None:
            return used
        dry_run = self.settings.dry_run
        self.kube.patch(ref.api_version, ref.kind, ref.name, ref.namespace, click_patch(click, now), dry_run=dry_run)
        summary = click_summary(click, now) + (" [dry-run: nothing was changed]" if dry_run else "")
        reason = "SnoozedFromSlack" if click.action == "snooze" else "ResumeRequestedFromSlack"
        self.kube.event(obj, reason, summary, now=now, dry_run=dry_run)
        return 200, summary

    def _use(self, click: Click, now: dt.datetime, attempts: int = 5) -> tuple[int, str] | None:
        """Record the click id as used before acting (a conditional write on the record ConfigMap, which
        a new leader reads too); (409, ALREADY_HANDLED) when it was used, (503, ...) when the record
        cannot be read or written, None when this click may act."""
        name, ns = self.settings.slack_click_record_configmap, self.settings.platform_namespace
        for _ in range(attempts):
            try:
                cm = self.kube.get("v1", "ConfigMap", name, ns)
                record = ClickRecord.from_data((cm or {}).get("data"), now)
                if record.seen(click.click_id):
                    return 409, ALREADY_HANDLED
                if record.full():
                    return 503, "Too many Slack clicks in the last minutes; nothing was changed. Try again later."
                record.add(click.click_id, now)
                meta: dict[str, object] = {"name": name, "namespace": ns,
                                           "labels": {"app.kubernetes.io/managed-by": "gpu-steward"}}
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": record.to_data()}
                if cm is None:
                    self.kube.create(body, dry_run=False)
                else:  # conditional on what was read: a concurrent writer makes this fail and we read again
                    meta["resourceVersion"] = cm["metadata"]["resourceVersion"]
                    self.kube.replace(body, dry_run=False)
                return None
            except Exception as exc:
                if getattr(exc, "status", None) == 409:
                    continue
                log.warning("slack click record unavailable", error=type(exc).__name__)
                break
        return 503, "GPU Steward could not record this click; nothing was changed. Try again later."

    async def _reply(self, response_url: str, text: str) -> None:
        """An ephemeral answer to the clicker (the original message stays as it is)."""
        try:
            resp = await AsyncWebhookClient(response_url).send(text=slack_escape(text), response_type="ephemeral",
                                                               replace_original=False)
            if resp.status_code != 200:
                log.warning("slack reply refused", status=resp.status_code)
        except Exception as exc:  # the click was applied; a lost reply is not worth failing for
            log.warning("slack reply failed", error=type(exc).__name__)


async def start_server(kube: Kube, settings: Settings) -> InteractionServer | None:
    """Start the endpoint when interactivity is configured (a signing secret, and a bot token to tell
    who clicks), else None: without them notices carry no buttons."""
    if settings.slack_signing_secret is None:
        return None
    if settings.slack_bot_token is None:
        log.warning("slack buttons off: a signing secret but no bot token (clickers cannot be identified)")
        return None
    server = InteractionServer(kube, settings)
    await server.start(settings.slack_interactions_listen_addr, settings.slack_interactions_port)
    return server

