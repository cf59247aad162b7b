"""The small notifier contract budgets and leases speak, and an Event-only implementation.

``Notifier`` is a protocol so the Slack notifier of ``gpu_steward.notify`` plugs in without this
package importing Slack: anything with ``send(notice, *, now, dry_run)`` works. ``EventNotifier``
records every notice as a Kubernetes Event on its subject (the GPUBudget, the ExperimentLease or a pod).
Messages never carry secrets: the Slack webhook is referenced by its Secret, never copied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

from gpu_steward.kube import Kube
from gpu_steward.notify.messages import slack_escape

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Notice:
    subject: dict[str, Any]  # the object the notice is about (an Event is recorded on it)
    reason: str  # CamelCase, e.g. BudgetThreshold, LeaseExpiring
    message: str
    type: Literal["Normal", "Warning"] = "Normal"
    owners: tuple[str, ...] = ()  # who to tell (user names / emails)
    slack_channel: str | None = None
    # Where a Slack webhook URL lives, {"name": ..., "key": ...} in the subject's namespace.
    webhook_secret_ref: dict[str, str] | None = None
    details: dict[str, str] = field(default_factory=dict)  # short facts for a rich message (cost, when)


class Notifier(Protocol):
    def send(self, notice: Notice, *, now: dt.datetime, dry_run: bool) -> None: ...


class EventNotifier:
    """Every notice as a Kubernetes Event on its subject (best effort, never raises)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def send(self, notice: Notice, *, now: dt.datetime, dry_run: bool) -> None:
        who = f" (owners: {', '.join(notice.owners)})" if notice.owners else ""
        self.kube.event(notice.subject, notice.reason, notice.message + who, type_=notice.type, now=now,
                        dry_run=dry_run)


class FanOut:
    """Send to several notifiers; one failing never stops the others."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    def send(self, notice: Notice, *, now: dt.datetime, dry_run: bool) -> None:
        for notifier in self.notifiers:
            try:
                notifier.send(notice, now=now, dry_run=dry_run)
            except Exception as exc:  # a notice is best effort; the reconcile must go on
                log.warning("notice not sent", notifier=type(notifier).__name__, reason=notice.reason,
                            error=type(exc).__name__)


class RecordingNotifier:
    """Keeps notices in memory (tests, dry-run previews)."""

    def __init__(self) -> None:
        self.sent: list[Notice] = []

    def send(self, notice: Notice, *, now: dt.datetime, dry_run: bool) -> None:
        self.sent.append(notice)


def slack_blocks(notice: Notice, dry_run: bool) -> dict[str, Any]:
    """A short Block Kit message: headline, the message, the facts."""
    head = ("[dry-run] " if dry_run else "") + notice.reason
    meta = notice.subject.get("metadata") or {}
    where = f"{notice.subject.get('kind', '')} {meta.get('namespace', '')}/{meta.get('name', '')}"
    # The message and the names carry user-written text (lease purpose, owner, names): escaped for mrkdwn.
    message, where = slack_escape(notice.message), slack_escape(where)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": message[:2900]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": where[:300]}]},
    ]
    return {"text": f"{slack_escape(head)}: {message}"[:3000], "blocks": blocks}


class SlackBridge:
    """Budget and lease notices to Slack through ``gpu_steward.notify.slack.SlackNotifier``.

    A GPUBudget's ``notify.webhookSecretRef`` names a Secret in its namespace whose value is the
    webhook URL; it is read at send time and never logged, put into an Event or into status. The
    owner's e-mail (an owner containing '@') lets a bot token DM them; else the budget's channel.
    """

    def __init__(self, kube: Kube, settings: Any) -> None:
        self.kube = kube
        self.settings = settings

    def _webhook_url(self, notice: Notice) -> str | None:
        import base64

        ref = notice.webhook_secret_ref
        ns = (notice.subject.get("metadata") or {}).get("namespace")
        if not ref or not ns:
            return None
        secret = self.kube.get("v1", "Secret", ref["name"], ns)
        raw = ((secret or {}).get("data") or {}).get(ref["key"])
        if not raw:
            log.warning("slack webhook secret missing", secret=ref["name"], key=ref["key"], namespace=ns)
            return None
        return base64.b64decode(raw).decode().strip()

    def send(self, notice: Notice, *, now: dt.datetime, dry_run: bool) -> None:
        from gpu_steward.notify.slack import SlackNotifier

        slack = SlackNotifier.from_settings(self.settings, webhook_url=self._webhook_url(notice))
        if not slack.configured:
            return
        email = next((o for o in notice.owners if "@" in o), None)
        result = slack.send(slack_blocks(notice, dry_run), owner_email=email, channel=notice.slack_channel)
        if not result.ok:
            log.info("slack notice not delivered", reason=notice.reason, errors=list(result.errors))
