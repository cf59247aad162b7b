"""Slack buttons on idle notices ("Snooze 2h", "Resume"): what a button carries, how a click is
verified and read, and the annotation it writes. No I/O here; ``interactions_server`` serves it.

A click only ever writes the same annotations an owner would write by hand: a snooze whose end is
already bounded by the policy (the engine cuts it again to ``notice.maxSnooze`` from when it first
saw it) or a resume request. Requests are accepted only with a valid Slack signature (HMAC-SHA256
over ``v0:<timestamp>:<body>`` with the app's signing secret, at most five minutes old).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier

from gpu_steward.policy.timeparse import format_rfc3339
from gpu_steward.workloads.adapters import UnsupportedKind, adapter_for
from gpu_steward.workloads.model import RESUME_ANNOTATION, SNOOZE_ANNOTATION, WorkloadRef

SNOOZE_ACTION = "gpusteward_snooze"
RESUME_ACTION = "gpusteward_resume"
VALUE_VERSION = 1
DEFAULT_SNOOZE = timedelta(hours=2)
# A Slack button value holds at most 2,000 characters; ours is a small JSON object.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_API_VERSION = re.compile(r"^([a-z0-9.-]+/)?v[0-9]+[a-z0-9]*$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")

ActionName = Literal["snooze", "resume"]


class InteractionError(ValueError):
    """A click that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Click:
    action: ActionName
    target: WorkloadRef
    snooze: timedelta  # for "snooze": how long (already bounded by the policy when the button was made)
    user_id: str
    user_name: str
    response_url: str | None

    @property
    def who(self) -> str:
        return f"{self.user_name} ({self.user_id})" if self.user_name else self.user_id


def button_value(ref: WorkloadRef, snooze: timedelta | None = None) -> str:
    """What a button carries: the workload, and for a snooze its length in seconds."""
    value: dict[str, Any] = {"v": VALUE_VERSION, "apiVersion": ref.api_version, "kind": ref.kind,
                             "namespace": ref.namespace, "name": ref.name}
    if snooze is not None:
        value["seconds"] = int(snooze.total_seconds())
    return json.dumps(value, separators=(",", ":"))


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


def parse_click(body: bytes, max_snooze: timedelta) -> Click:
    """Read a ``block_actions`` interaction (form field ``payload``, JSON). Raises InteractionError."""
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
        raise InteractionError("payload.actions[0].value.v: unknown version")
    where = "payload.actions[0].value"
    ref = WorkloadRef(_field(value, "apiVersion", where, _API_VERSION), _field(value, "kind", where, _KIND),
                      _field(value, "namespace", where, _NAME), _field(value, "name", where, _NAME))
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
    response_url = payload.get("response_url")
    return Click(action=action, target=ref, snooze=min(timedelta(seconds=seconds), max_snooze), user_id=user_id,
                 user_name=str(user.get("username") or user.get("name") or ""),
                 response_url=response_url if isinstance(response_url, str) and response_url else None)


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
