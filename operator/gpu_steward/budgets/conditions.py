"""Status conditions keyed by ``type`` with ``observedGeneration``; the transition time moves only
when the status flips, so an unchanged condition never causes a status write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from gpu_steward.units import format_time


def set_condition(
    conditions: Sequence[Mapping[str, Any]], type_: str, status: str, reason: str, message: str,
    generation: int | None, now: dt.datetime,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(dict(cond))
            continue
        found = True
        same = cond.get("status") == status
        out.append({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": cond.get("lastTransitionTime") if same and cond.get("lastTransitionTime")
            else format_time(now),
            "observedGeneration": generation,
        })
    if not found:
        out.append({"type": type_, "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": format_time(now), "observedGeneration": generation})
    for cond in out:
        if cond.get("observedGeneration") is None:
            cond.pop("observedGeneration", None)
    return out


def get_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    for cond in conditions or []:
        if cond.get("type") == type_:
            return cond
    return None


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``desired`` whose value differs from ``current`` (empty: write nothing)."""
    current = current or {}
    return {k: v for k, v in desired.items() if current.get(k) != v}
