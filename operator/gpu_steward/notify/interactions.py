"""Slack buttons on idle notices ("Snooze 2h", "Resume"): what a button carries, how a click is
verified and read, and the annotation it writes. No I/O here; ``interactions_server`` serves it.

A click only ever writes the same annotations an owner would write by hand: a snooze whose end is
already bounded by the policy (the engine cuts it again to ``notice.maxSnooze`` from when it first
saw it) or a resume request. Requests are accepted only with a valid Slack signature (HMAC-SHA256
over ``v0:<timestamp>:<body>`` with the app's signing secret, at most five minutes old).

Past the signature, a click is used only when (docs/security.md, "Slack buttons"):

- its button value was made by this operator: the value carries the workload's UID, an expiry (the
  warning's suspension time for Snooze, ``RESUME_BUTTON_TTL`` for Resume) and the e-mail the notice
  was sent to, under an HMAC (``seal``) keyed from the signing secret, so none of it can be edited;
- it is not expired and the workload still has that UID (not deleted and recreated under the name);
- the clicker's Slack e-mail (``users.info``) is one of ``allowed_clickers``: the workload's owner or
  the namespace budget's ``notify.owners``;
- its click id (``trigger_id`` + ``action_ts``) was not used before: ``ClickRecord`` remembers used ids
  for ``CLICK_TTL`` (longer than the signature window), in a ConfigMap the next leader reads too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier

from gpu_steward.policy.lease import CREATED_BY_ANNOTATION
from gpu_steward.policy.timeparse import format_rfc3339
from gpu_steward.workloads.adapters import UnsupportedKind, adapter_for
from gpu_steward.workloads.model import RESUME_ANNOTATION, SNOOZE_ANNOTATION, WorkloadRef

SNOOZE_ACTION = "gpusteward_snooze"
RESUME_ACTION = "gpusteward_resume"
VALUE_VERSION = 2
DEFAULT_SNOOZE = timedelta(hours=2)
# How long a Resume button (and a Snooze button on a warning that announces no suspension) can be used.
RESUME_BUTTON_TTL = timedelta(hours=24)
# How long a used click id is remembered: longer than the five minutes a signature is valid, so a
# replayed request is always refused by the signature check or by the record.
SIGNATURE_WINDOW = timedelta(minutes=5)
CLICK_TTL = timedelta(minutes=10)
MAX_CLICKS = 5000  # used click ids kept at once (about 60 bytes each in the record ConfigMap)
_MAC = "mac"
_KEY_LABEL = b"gpu-steward/slack-button-value/v2"
# A Slack button value holds at most 2,000 characters; ours is a small JSON object.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_API_VERSION = re.compile(r"^([a-z0-9.-]+/)?v[0-9]+[a-z0-9]*$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")

ActionName = Literal["snooze", "resume"]
NEVER = datetime.max.replace(tzinfo=UTC)


class InteractionError(ValueError):
    """A click that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Click:
    action: ActionName
    target: WorkloadRef  # with the UID the button was made for
    snooze: timedelta  # for "snooze": how long (already bounded by the policy when the button was made)
    user_id: str
    user_name: str
    response_url: str | None
    expires: datetime = NEVER  # the button's end (signed)
    notice_owner: str | None = None  # the e-mail the notice was sent to (signed), if any
    click_id: str = ""  # trigger_id + action_ts, digested: the same click replayed has the same id

    @property
    def who(self) -> str:
        return f"{self.user_name} ({self.user_id})" if self.user_name else self.user_id

    @property
    def verb(self) -> str:
        return "snooze" if self.action == "snooze" else "resume"


def button_key(signing_secret: str) -> bytes:
    """The key that seals button values, derived from the Slack signing secret (never the secret itself)."""
    return hmac.new(signing_secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in value.items() if k != _MAC}, sort_keys=True, separators=(",", ":")).encode()


def button_value(ref: WorkloadRef, *, expires: datetime, snooze: timedelta | None = None,
                 owner_email: str | None = None) -> str:
    """What a button carries (unsealed): the workload with its UID, when the button ends, for a snooze
    its length in seconds, and the e-mail the notice goes to. ``seal`` adds the MAC before sending."""
    value: dict[str, Any] = {"v": VALUE_VERSION, "apiVersion": ref.api_version, "kind": ref.kind,
                             "namespace": ref.namespace, "name": ref.name, "uid": ref.uid,
                             "exp": int(expires.timestamp())}
    if snooze is not None:
        value["seconds"] = int(snooze.total_seconds())
    if owner_email:
        value["owner"] = owner_email
    return json.dumps(value, separators=(",", ":"))


def seal_value(value: str, key: bytes) -> str:
    """``value`` (a JSON object) with an HMAC-SHA256 over its canonical form under ``key``."""
    obj = json.loads(value)
    obj[_MAC] = hmac.new(key, _canonical(obj), hashlib.sha256).hexdigest()
    return json.dumps(obj, separators=(",", ":"))


def is_our_button(element: Any) -> bool:
    return isinstance(element, dict) and element.get("action_id") in (SNOOZE_ACTION, RESUME_ACTION)


def seal(message: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """The message with every GPU Steward button value sealed; without a key, without those buttons
    (a button the endpoint could not trust is never sent). Other blocks are left as they are."""
    blocks: list[Any] = []
    for block in message.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "actions":
            elements = []
            for el in block.get("elements") or []:
                if is_our_button(el):
                    if key is None:
                        continue
                    el = {**el, "value": seal_value(el["value"], key)}
                elements.append(el)
            if not elements:
                continue
            block = {**block, "elements": elements}
        blocks.append(block)
    return {**message, "blocks": blocks} if "blocks" in message else message


def verify(signing_secret: str, body: bytes, headers: dict[str, str], now: float) -> bool:
    """True when Slack signed exactly this body within the last five minutes (slack_sdk's verifier,
    with our clock). A missing or malformed header is simply not valid."""

    class _At(Clock):
        def now(self) -> float:
            return now

    try:
        return SignatureVerifier(signing_secret, clock=_At()).is_valid_request(body, headers)
    except ValueError:  # a timestamp that is not a number
        return False


def _field(obj: dict[str, Any], key: str, path: str, pattern: re.Pattern[str] | None = None) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise InteractionError(f"{path}.{key}: missing")
    if pattern is not None and not pattern.match(value):
        raise InteractionError(f"{path}.{key}: {value[:80]!r} is not valid")
    return value


def parse_click(body: bytes, max_snooze: timedelta, key: bytes) -> Click:
    """Read a ``block_actions`` interaction (form field ``payload``, JSON) whose button value was sealed
    with ``key``. Raises InteractionError."""
    try:
        form = parse_qs(body.decode(), strict_parsing=False)
        payload = json.loads(form["payload"][0])
    except (KeyError, IndexError, UnicodeDecodeError, ValueError):
        raise InteractionError("payload: missing or not JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise InteractionError("payload.type: only block_actions is handled")
    actions = [a for a in payload.get("actions") or [] if isinstance(a, dict)
               and a.get("action_id") in (SNOOZE_ACTION, RESUME_ACTION)]
    if not actions:
        raise InteractionError("payload.actions: no GPU Steward button")
    act = actions[0]
    try:
        value = json.loads(act.get("value") or "")
    except ValueError:
        raise InteractionError("payload.actions[0].value: not JSON") from None
    if not isinstance(value, dict) or value.get("v") != VALUE_VERSION:
        raise InteractionError("payload.actions[0].value.v: unknown version (a button from an older notice)")
    where = "payload.actions[0].value"
    mac = value.get(_MAC)
    expected = hmac.new(key, _canonical(value), hashlib.sha256).hexdigest()
    if not isinstance(mac, str) or not hmac.compare_digest(mac, expected):
        raise InteractionError(f"{where}.mac: this button was not made by GPU Steward (or was altered)")
    ref = WorkloadRef(_field(value, "apiVersion", where, _API_VERSION), _field(value, "kind", where, _KIND),
                      _field(value, "namespace", where, _NAME), _field(value, "name", where, _NAME),
                      _field(value, "uid", where))
    exp = value.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise InteractionError(f"{where}.exp: missing")
    owner = value.get("owner")
    action: ActionName = "snooze" if act["action_id"] == SNOOZE_ACTION else "resume"
    if action == "resume":
        try:
            adapter_for(ref)
        except UnsupportedKind as exc:
            raise InteractionError(f"{where}.kind: {exc}") from None
    seconds = value.get("seconds", DEFAULT_SNOOZE.total_seconds())
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        raise InteractionError(f"{where}.seconds: must be a positive number")
    raw_user = payload.get("user")
    user: dict[str, Any] = raw_user if isinstance(raw_user, dict) else {}
    user_id = str(user.get("id") or "")
    if not user_id:
        raise InteractionError("payload.user.id: missing")
    action_ts, trigger_id = act.get("action_ts"), payload.get("trigger_id")
    if not isinstance(action_ts, str) or not action_ts:
        raise InteractionError("payload.actions[0].action_ts: missing")
    click_id = hashlib.sha256(f"{trigger_id}|{action_ts}|{user_id}".encode()).hexdigest()[:32]
    response_url = payload.get("response_url")
    return Click(action=action, target=ref, snooze=min(timedelta(seconds=seconds), max_snooze), user_id=user_id,
                 user_name=str(user.get("username") or user.get("name") or ""),
                 response_url=response_url if isinstance(response_url, str) and response_url else None,
                 expires=datetime.fromtimestamp(exp, tz=UTC), notice_owner=owner if isinstance(owner, str) else None,
                 click_id=click_id)


# ---- who may click ---------------------------------------------------------------------------------
def _email(value: str | None) -> str | None:
    return value.strip().lower() if value and "@" in value else None


def workload_owner_emails(obj: Mapping[str, Any], click: Click, owner_email: str | None,
                          *, trust_creator: bool) -> set[str]:
    """The workload owner's e-mail(s): the creator the admission webhook stamped (``created-by``, only
    with the webhooks on, and only when that user name is an e-mail) wins; else the owner e-mail the
    operator notifies: ``owner_email`` (from the workload's labels/annotations now, as
    ``workloads.resolve.owner_of`` reads them) and the one the notice went to (signed in the button)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    creator = _email(annotations.get(CREATED_BY_ANNOTATION)) if trust_creator else None
    if creator:
        return {creator}
    return {e for e in (_email(owner_email), _email(click.notice_owner)) if e}


def budget_owner_emails(budgets: Iterable[Mapping[str, Any]]) -> set[str]:
    """``spec.notify.owners`` of the namespace's GPUBudgets that are e-mail addresses (only the platform
    role writes budgets)."""
    out: set[str] = set()
    for budget in budgets:
        owners = (((budget.get("spec") or {}).get("notify") or {}).get("owners")) or []
        out.update(e for e in (_email(o) for o in owners if isinstance(o, str)) if e)
    return out


def refusal(click: Click, obj: Mapping[str, Any], now: datetime) -> str | None:
    """Why this click cannot be used on ``obj`` (the workload as it is now), or None."""
    ref = click.target
    what = f"{ref.kind.lower()}/{ref.name} in {ref.namespace}"
    if now >= click.expires:
        return (f"This {click.verb} button expired at {format_rfc3339(click.expires)}; nothing was changed. "
                f"Use the command in the notice instead.")
    if (obj.get("metadata") or {}).get("uid") != ref.uid:
        return (f"{what} was deleted and created again since this notice was sent; this button was for the "
                f"old one and nothing was changed.")
    return None


def not_owner_text(click: Click) -> str:
    ref = click.target
    return (f"Only the owner of {ref.kind.lower()}/{ref.name} in {ref.namespace} (or the namespace budget's "
            f"owners) can {click.verb} it; nothing was changed.")


# ---- used click ids (replays) ----------------------------------------------------------------------
CLICKS_KEY = "clicks.json"


@dataclass
class ClickRecord:
    """Used click ids and until when they are kept (epoch seconds). Stored as JSON in a ConfigMap."""

    used: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None, now: datetime) -> ClickRecord:
        """Unreadable data counts as full (no click is accepted until it expires): never as empty."""
        try:
            raw = json.loads((data or {}).get(CLICKS_KEY) or "{}")
            used = {str(k): int(v) for k, v in raw.items()}
        except (ValueError, TypeError, AttributeError):
            until = int((now + CLICK_TTL).timestamp())
            return cls({f"unreadable-{i}": until for i in range(MAX_CLICKS)})
        cutoff = now.timestamp()
        return cls({k: v for k, v in used.items() if v > cutoff})

    def to_data(self) -> dict[str, str]:
        return {CLICKS_KEY: json.dumps(self.used, separators=(",", ":"), sort_keys=True)}

    def seen(self, click_id: str) -> bool:
        return click_id in self.used

    def full(self) -> bool:
        return len(self.used) >= MAX_CLICKS

    def add(self, click_id: str, now: datetime) -> None:
        self.used[click_id] = int((now + CLICK_TTL).timestamp()) + 1


def click_patch(click: Click, now: datetime) -> dict[str, Any]:
    """The merge patch a click writes on the workload (the same annotation an owner would set)."""
    if click.action == "snooze":
        return {"metadata": {"annotations": {SNOOZE_ANNOTATION: format_rfc3339(now + click.snooze)}}}
    return {"metadata": {"annotations": {RESUME_ANNOTATION: "true"}}}


def click_summary(click: Click, now: datetime) -> str:
    """One line for the Event on the workload and the reply in Slack (no secret in it)."""
    ref = f"{click.target.kind.lower()}/{click.target.name} in {click.target.namespace}"
    if click.action == "snooze":
        return f"Snoozed {ref} until {format_rfc3339(now + click.snooze)} (from Slack, by {click.who})."
    return f"Resume of {ref} requested from Slack by {click.who}."
