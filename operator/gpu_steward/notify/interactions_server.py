"""The HTTP endpoint Slack calls when someone clicks a button on a notice (its "Request URL":
``https://<your ingress>/slack/interactions``). Verifies the signature, writes the annotation the
click stands for, records an Event on the workload and answers the clicker in Slack.

Status codes: 200 done; 400 a payload we cannot use (the body names the field); 401 no valid
signature; 404 the workload is gone; 409 the workload was never noticed by GPU Steward; 413 too large.
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
from gpu_steward.kube import Kube
from gpu_steward.notify.interactions import Click, InteractionError, click_patch, click_summary, parse_click, verify
from gpu_steward.notify.messages import slack_escape
from gpu_steward.settings import Settings
from gpu_steward.workloads.model import IDLE_STATE_ANNOTATION

log = structlog.get_logger(__name__)

PATH = "/slack/interactions"
MAX_BODY = 64 * 1024


class InteractionServer:
    def __init__(self, kube: Kube, settings: Settings, clock: Callable[[], dt.datetime] | None = None) -> None:
        if settings.slack_signing_secret is None:
            raise ValueError("slack_signing_secret: needed to verify Slack's requests")
        self.kube, self.settings = kube, settings
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._secret = settings.slack_signing_secret.get_secret_value()
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
            click = parse_click(body, dt.timedelta(seconds=MAX_SNOOZE_S))
        except InteractionError as exc:
            log.warning("slack interaction refused", problem=str(exc))
            return web.Response(status=400, text=str(exc))
        status, text = await asyncio.to_thread(self._apply, click, now)
        log.info("slack interaction", action=click.action, workload=str(click.target), user=click.user_id,
                 status=status)
        if click.response_url and status == 200:
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
        dry_run = self.settings.dry_run
        self.kube.patch(ref.api_version, ref.kind, ref.name, ref.namespace, click_patch(click, now), dry_run=dry_run)
        summary = click_summary(click, now) + (" [dry-run: nothing was changed]" if dry_run else "")
        reason = "SnoozedFromSlack" if click.action == "snooze" else "ResumeRequestedFromSlack"
        self.kube.event(obj, reason, summary, now=now, dry_run=dry_run)
        return 200, summary

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
    """Start the endpoint when interactivity is configured (a signing secret), else None."""
    if settings.slack_signing_secret is None:
        return None
    server = InteractionServer(kube, settings)
    await server.start(settings.slack_interactions_listen_addr, settings.slack_interactions_port)
    return server

