"""What owners read: Slack Block Kit messages and Kubernetes Event texts, as pure builders.

One ``NoticeContext`` describes a notice (stage ``warning`` | ``suspended`` | ``resumed``, the
workload, idle since when, GPUs, cost, when it will be suspended, dry-run or not); from it:

- ``slack_message(ctx) -> {"text": fallback, "blocks": [...]}`` — ready for ``chat.postMessage`` or an
  incoming webhook (both take ``text`` + ``blocks``);
- ``event_for(ctx) -> EventSpec(type, reason, message)`` — for the Event on the workload;
- ``note_event(...)`` — for engine notes (a snooze cut to the policy maximum, an invalid annotation).

Nothing here knows a secret: channels, URLs and tokens are added by ``notify.slack``.

Every string a user can write (workload, namespace and owner names, labels and annotations, reasons,
lease purposes...) is escaped for Slack mrkdwn with ``slack_escape`` (``&``, ``<``, ``>`` as Slack's
formatting rules require), so a name like ``<!channel>`` or ``<http://evil|click>`` shows as text and
never pings a channel or becomes a link. Event texts are plain and stay unescaped.

Times in Slack blocks are Slack date tokens (``slack_date``: ``<!date^EPOCH^{date_short_pretty} {time}|RFC3339>``),
so each reader sees them in their own time zone; the fallback ``text`` (notifications, webhooks that cannot
render tokens) and Event texts keep RFC 3339 UTC. ``owner_mention`` (``<@U…>``, found by ``notify.slack``
with a bot token) names the owner so a channel post pings them. ``warning_closed`` is what a warning
becomes (``chat.update``) once its workload was suspended: no buttons, the outcome, a pointer to the thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from gpu_steward.notify.interactions import (
    DEFAULT_SNOOZE,
    RESUME_ACTION,
    RESUME_BUTTON_TTL,
    SNOOZE_ACTION,
    button_value,
)
from gpu_steward.policy.timeparse import format_rfc3339
from gpu_steward.workloads.model import SNOOZE_ANNOTATION, SUSPENDABLE_KINDS, WorkloadRef

Stage = Literal["warning", "suspended", "resumed"]

# kubectl resource names for the kinds we handle (CRDs need their full plural.group to be unambiguous).
KUBECTL_RESOURCE = {**{k.kind: k.resource for k in SUSPENDABLE_KINDS}, "Pod": "pod"}
EVENT_MESSAGE_LIMIT = 1024  # Kubernetes truncates longer Event messages; keep the useful part


@dataclass(frozen=True)
class NoticeContext:
    stage: Stage
    kind: str
    name: str
    namespace: str
    now: datetime
    dry_run: bool = False
    owner: str | None = None
    idle_since: datetime | None = None
    gpus: int = 0
    gpu_model: str | None = None
    util_percent: float | None = None
    threshold_percent: float | None = None
    cost_so_far: Decimal | None = None
    cost_per_hour: Decimal | None = None
    currency: str = "USD"
    suspend_at: datetime | None = None  # warning: when the suspension is due (None: NotifyOnly)
    max_snooze: timedelta | None = None
    policy: str | None = None  # "namespace/name" of the IdlePolicy
    reason: str | None = None  # e.g. "resumed outside GPU Steward"
    api_version: str | None = None  # of the workload: buttons name it exactly
    # Slack interactivity is set up (a signing secret to verify clicks, a bot token to tell who clicked):
    # add Snooze / Resume buttons. They are sealed by ``notify.slack`` when sent (``interactions.seal``).
    buttons: bool = False
    uid: str | None = None  # of the workload: a button is for this object only
    owner_email: str | None = None  # where the notice goes; a button carries it (signed) for the owner check
    not_suspended_because: str | None = None  # why this workload is only notified about (e.g. it would lose data)
    # A budget's or a lease's suspension request (not idleness) is why: e.g. "ExperimentLease ml/exp1 ended
    # at ...". ``snoozable``: whether a snooze postpones it (an expired lease's does not).
    cause: str | None = None
    snoozable: bool = True
    owner_mention: str | None = None  # "<@U…>" (Slack user id, from the owner's e-mail); never user-written


# What a suspension costs the owner, said in every warning that announces one.
MEMORY_LOST = ("Suspension stops its pods: in-memory state (a running kernel, variables, unsaved work in "
               "memory) is lost; data on volumes is kept.")


@dataclass(frozen=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def slack_escape(text: object) -> str:
    """``text`` safe inside Slack mrkdwn: the three control characters as entities, ``&`` first
    (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escaped(ctx: NoticeContext) -> NoticeContext:
    """The context with every user-writable string escaped for mrkdwn (buttons keep the raw one)."""
    def esc(v: str | None) -> str | None:
        return None if v is None else slack_escape(v)

    return replace(ctx, kind=slack_escape(ctx.kind), name=slack_escape(ctx.name), namespace=slack_escape(ctx.namespace),
                   owner=esc(ctx.owner), gpu_model=esc(ctx.gpu_model), policy=esc(ctx.policy), reason=esc(ctx.reason),
                   currency=slack_escape(ctx.currency), cause=esc(ctx.cause))


Clock = Callable[[datetime | None], str]


def _ts(value: datetime | None) -> str:
    return format_rfc3339(value) if value is not None else "unknown"


def slack_date(value: datetime | None) -> str:
    """A Slack date token: each reader sees the time in their own zone; RFC 3339 UTC where tokens are not
    rendered (https://api.slack.com/reference/surfaces/formatting#date-formatting)."""
    if value is None:
        return "unknown"
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time}}|{format_rfc3339(value)}>"


def _dur(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, rem = divmod(minutes, 1440)
    hours, mins = divmod(rem, 60)
    out = (f"{days}d" if days else "") + (f"{hours}h" if hours else "")
    return out + (f"{mins}m" if mins or not out else "")


def _money(value: Decimal | None, currency: str) -> str:
    return "n/a" if value is None else f"{value.quantize(Decimal('0.01'))} {currency}"


def workload_ref(ctx: NoticeContext) -> str:
    return f"{ctx.kind}/{ctx.name} in namespace {ctx.namespace}"


def snooze_command(ctx: NoticeContext, snooze: timedelta | None = None) -> str:
    """``kubectl annotate`` line that snoozes for ``snooze`` (default: the policy maximum, else 2h)."""
    span = snooze or ctx.max_snooze or DEFAULT_SNOOZE
    until = format_rfc3339(ctx.now + span)
    resource = KUBECTL_RESOURCE.get(ctx.kind, ctx.kind.lower())
    return f"kubectl annotate {resource}/{ctx.name} -n {ctx.namespace} {SNOOZE_ANNOTATION}={until} --overwrite"


def resume_commands(ctx: NoticeContext) -> tuple[str, str]:
    resource = KUBECTL_RESOURCE.get(ctx.kind, ctx.kind.lower())
    return (
        f"gpu-steward resume {ctx.kind.lower()}/{ctx.name} -n {ctx.namespace}",
        f"kubectl annotate {resource}/{ctx.name} -n {ctx.namespace} gpusteward.dev/resume=true --overwrite",
    )


def headline(ctx: NoticeContext, when: Clock = _ts) -> str:
    """One line that says what happened; also the Slack fallback text and the Event message's start
    (``when`` writes times: RFC 3339 by default, ``slack_date`` in blocks)."""
    ref = f"{ctx.kind} {ctx.namespace}/{ctx.name}"
    prefix = "[dry-run] " if ctx.dry_run else ""
    if ctx.cause and ctx.stage != "resumed":
        if ctx.stage == "warning":
            if ctx.suspend_at is None:
                return f"{prefix}{ref}: {ctx.cause} (it cannot be suspended; no action will be taken)"
            verb = "would be suspended" if ctx.dry_run else "will be suspended"
            return f"{prefix}{ref} {verb} at {when(ctx.suspend_at)}: {ctx.cause}"
        return f"[dry-run] would suspend {ref}: {ctx.cause}" if ctx.dry_run else f"{ref} was suspended: {ctx.cause}"
    if ctx.stage == "warning":
        if ctx.suspend_at is None:
            return f"{prefix}{ref} is holding {ctx.gpus} idle GPU(s) (no action will be taken)"
        verb = "would be suspended" if ctx.dry_run else "will be suspended"
        return f"{prefix}{ref} is idle and {verb} at {when(ctx.suspend_at)}"
    if ctx.stage == "suspended":
        if ctx.dry_run:
            return f"[dry-run] would suspend {ref}: idle since {when(ctx.idle_since)}"
        return f"{ref} was suspended: its {ctx.gpus} GPU(s) were idle since {when(ctx.idle_since)}"
    why = f" ({ctx.reason})" if ctx.reason else ""
    return f"{prefix}{ref} was resumed{why}"


def _facts(ctx: NoticeContext, when: Clock = _ts) -> list[str]:
    gpus = f"{ctx.gpus} x {ctx.gpu_model}" if ctx.gpu_model else str(ctx.gpus)
    util = "n/a" if ctx.util_percent is None else f"{ctx.util_percent:.1f}%"
    if ctx.threshold_percent is not None:
        util += f" (threshold {ctx.threshold_percent:g}%)"
    facts = [
        f"*Workload*\n{ctx.kind} `{ctx.namespace}/{ctx.name}`",
        f"*Owner*\n{_owner(ctx)}",
        f"*GPUs*\n{gpus}",
        f"*GPU utilization*\n{util}",
        f"*Cost so far*\n{_money(ctx.cost_so_far, ctx.currency)}",
        f"*Cost per hour*\n{_money(ctx.cost_per_hour, ctx.currency)}",
    ]
    if ctx.idle_since is not None and ctx.stage != "resumed":
        facts.append(f"*Idle since*\n{when(ctx.idle_since)} ({_dur(ctx.now - ctx.idle_since)})")
    if ctx.stage == "warning" and ctx.suspend_at is not None:
        facts.append(f"*Suspension at*\n{when(ctx.suspend_at)} (in {_dur(ctx.suspend_at - ctx.now)})")
    if ctx.cause:
        facts.append(f"*Why*\n{ctx.cause}")
    elif ctx.policy:
        facts.append(f"*Policy*\nIdlePolicy `{ctx.policy}`")
    return facts


def _owner(ctx: NoticeContext) -> str:
    if ctx.owner_mention:
        return f"{ctx.owner_mention} ({ctx.owner})" if ctx.owner else ctx.owner_mention
    return ctx.owner or "unknown"


def _how_to(ctx: NoticeContext) -> str:
    resume_cli, resume_annotate = resume_commands(ctx)
    if ctx.stage == "warning" and not ctx.snoozable:
        return f"{_warning_terms(ctx)}Save your work before then; this cannot be snoozed."
    if ctx.stage == "warning":
        limit = f" (at most {_dur(ctx.max_snooze)})" if ctx.max_snooze else ""
        keep = "Still using it? Run something on the GPU, or snooze" + limit + ":"
        head = _warning_terms(ctx)
        return f"{head}{keep}\n```{snooze_command(ctx)}```"
    if ctx.stage == "suspended":
        note = "Nothing was deleted: data and volumes are kept." if not ctx.dry_run else "Nothing was touched."
        return f"{note} To resume:\n```{resume_cli}```\nor\n```{resume_annotate}```"
    return "Startup grace applies before idle time counts again."


def _warning_terms(ctx: NoticeContext) -> str:
    """What the suspension will cost (in-memory state), or why there will be none; '' when neither applies."""
    if ctx.suspend_at is not None:
        return MEMORY_LOST + "\n"
    if ctx.not_suspended_because:
        return f"It will not be suspended: {ctx.not_suspended_because}.\n"
    return ""


def _buttons(ctx: NoticeContext) -> list[dict[str, Any]]:
    """Snooze on a warning (until its stated suspension time), Resume on a suspension (for
    ``RESUME_BUTTON_TTL``); none in dry-run, without interactivity or without the workload's UID."""
    if not ctx.buttons or ctx.dry_run or not ctx.api_version or not ctx.uid:
        return []
    ref = WorkloadRef(ctx.api_version, ctx.kind, ctx.namespace, ctx.name, ctx.uid)
    if ctx.stage == "warning" and ctx.snoozable:
        span = ctx.max_snooze or DEFAULT_SNOOZE
        expires = ctx.suspend_at or ctx.now + RESUME_BUTTON_TTL
        value = button_value(ref, expires=expires, snooze=span, owner_email=ctx.owner_email)
        return [{"type": "button", "action_id": SNOOZE_ACTION, "style": "primary",
                 "text": {"type": "plain_text", "text": f"Snooze {_dur(span)}"}, "value": value}]
    if ctx.stage == "suspended":
        value = button_value(ref, expires=ctx.now + RESUME_BUTTON_TTL, owner_email=ctx.owner_email)
        return [{"type": "button", "action_id": RESUME_ACTION,
                 "text": {"type": "plain_text", "text": "Resume"}, "value": value}]
    return []


def slack_message(ctx: NoticeContext) -> dict[str, Any]:
    """Block Kit payload: ``{"text": fallback, "blocks": [...]}`` (header, what/why, facts, how-to, context)."""
    title = {"warning": "Idle GPUs", "suspended": "Workload suspended", "resumed": "Workload resumed"}[ctx.stage]
    if ctx.dry_run:
        title = "[dry-run] " + ("Would suspend" if ctx.stage == "suspended" else title)
    raw, ctx = ctx, _escaped(ctx)  # mrkdwn from here on; the buttons carry the raw reference
    text = headline(ctx)  # the fallback: plain RFC 3339 times
    fields = [{"type": "mrkdwn", "text": f[:2000]} for f in _facts(ctx, slack_date)][:10]
    context = "GPU Steward" + (" · dry-run: nothing will be changed" if ctx.dry_run else "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f":zzz: {title}"[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": headline(ctx, slack_date)[:3000]}},
        {"type": "section", "fields": fields},
        {"type": "section", "text": {"type": "mrkdwn", "text": _how_to(ctx)[:3000]}},
    ]
    if buttons := _buttons(raw):
        blocks.append({"type": "actions", "block_id": "gpusteward", "elements": buttons})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": text, "blocks": blocks}


def warning_closed(ctx: NoticeContext) -> dict[str, Any]:
    """What the warning message becomes (``chat.update``) once the workload was suspended (``ctx``: the
    suspended notice's): its buttons gone, the outcome stated, the details in the thread below it."""
    ctx = _escaped(ctx)

    def what(when: Clock) -> str:
        return (f"{ctx.kind} {ctx.namespace}/{ctx.name}: suspended at {when(ctx.now)}. "
                "Details and how to resume are in the thread.")

    return {"text": what(_ts), "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": ":zzz: Suspended (this warning is closed)",
                                    "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": what(slack_date)[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "GPU Steward"}]},
    ]}


EventType = Literal["Normal", "Warning"]
_REASONS: dict[Stage, tuple[str, EventType]] = {
    "warning": ("IdleWarning", "Warning"),
    "suspended": ("IdleSuspended", "Warning"),
    "resumed": ("IdleResumed", "Normal"),
}


def event_for(ctx: NoticeContext) -> EventSpec:
    """The Event to record on the workload for this notice (plain text, bounded length)."""
    reason, etype = _REASONS[ctx.stage]
    if ctx.dry_run:
        reason = "IdleWouldSuspend" if ctx.stage == "suspended" else "DryRun" + reason
    parts = [headline(ctx) + "."]
    if ctx.stage == "warning":
        if not ctx.cause or ctx.snoozable:
            parts.append(f"GPU utilization below threshold since {_ts(ctx.idle_since)}.")
        if terms := _warning_terms(ctx).strip():
            parts.append(terms)
        if ctx.suspend_at is not None and ctx.snoozable:
            parts.append(f"Snooze: {snooze_command(ctx)}")
    elif ctx.stage == "suspended" and not ctx.dry_run:
        parts.append(f"Nothing was deleted. Resume: {resume_commands(ctx)[0]}")
    if ctx.cost_per_hour is not None:
        parts.append(f"Cost {_money(ctx.cost_per_hour, ctx.currency)}/h.")
    message = " ".join(parts)
    if len(message) > EVENT_MESSAGE_LIMIT:
        message = message[: EVENT_MESSAGE_LIMIT - 3] + "..."
    return EventSpec(type="Normal" if ctx.dry_run else etype, reason=reason, message=message)


def note_event(note: str) -> EventSpec:
    """An engine note (snooze cut, invalid annotation) as an Event on the workload."""
    return EventSpec(type="Warning", reason="IdlePolicyNote", message=note[:EVENT_MESSAGE_LIMIT])
