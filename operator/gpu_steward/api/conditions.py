"""Pure builders for status conditions (the Kubernetes convention: one entry per ``type``).

Conditions are plain dicts in their wire form (camelCase, RFC 3339 times) so they drop straight into a
status patch; nothing here reads a clock — the caller passes ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from gpu_steward import units

ConditionStatus = Literal["True", "False", "Unknown"]

# Condition types every kind uses.
READY = "Ready"
INVALID = "Invalid"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type: str,  # the Kubernetes field name
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """A new list with the condition of ``type`` set; the input is not changed.

    ``lastTransitionTime`` moves to ``now`` only when the status changes (or the type is new); reason,
    message and observedGeneration are always updated. Order is kept; a new type is appended.
    """
    status_text = _status(status)
    result: list[dict[str, Any]] = []
    found = False
    for existing in conditions or ():
        entry = dict(existing)
        if entry.get("type") == type and not found:
            found = True
            changed = entry.get("status") != status_text or not entry.get("lastTransitionTime")
            entry = _build(type, status_text, reason, message, observed_generation, now)
            if not changed:
                entry["lastTransitionTime"] = existing["lastTransitionTime"]
        elif entry.get("type") == type:
            continue  # a duplicate of a type already set: the list is keyed by type
        result.append(entry)
    if not found:
        result.append(_build(type, status_text, reason, message, observed_generation, now))
    return result


def remove_condition(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> list[dict[str, Any]]:
    """A new list without the condition of ``type``."""
    return [dict(c) for c in conditions or () if c.get("type") != type]


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> dict[str, Any] | None:
    """The condition of ``type``, or None."""
    for entry in conditions or ():
        if entry.get("type") == type:
            return dict(entry)
    return None


def is_true(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> bool:
    found = find_condition(conditions, type)
    return found is not None and found.get("status") == "True"


def _status(status: ConditionStatus | bool) -> ConditionStatus:
    if status is True:
        return "True"
    if status is False:
        return "False"
    if status not in ("True", "False", "Unknown"):
        raise ValueError(f"condition status must be True, False or Unknown, got {status!r}")
    return status


def _build(
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": type,
        "status": status,
        # The apiserver requires a non-empty reason; CamelCase by convention.
        "reason": reason or "Unspecified",
        "message": message,
        "lastTransitionTime": units.format_time(now),
    }
    if observed_generation is not None:
        entry["observedGeneration"] = observed_generation
    return entry


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``desired`` whose value differs from ``current``: empty means write nothing
    (status is written only when it changed)."""
    current = current or {}
    return {k: v for k, v in desired.items() if current.get(k) != v}


def invalid_status(status: Mapping[str, Any], message: str, observed_generation: int | None,
                   now: datetime) -> dict[str, Any]:
    """The status fields that mark an admitted object the operator cannot use: ``Ready=False``,
    reason ``Invalid``, with a message that names the field. The object keeps the rest of its status."""
    conditions = set_condition(status.get("conditions") or [], "Ready", "False", "Invalid", message,
                               observed_generation, now)
    return {"conditions": conditions, "observedGeneration": observed_generation}
