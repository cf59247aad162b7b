"""The one module through which the CLI reads the operator's records about a workload.

Today the idle engine's state is the JSON annotation ``gpusteward.dev/idle-state`` on the workload
(``workloads.model.IDLE_STATE_ANNOTATION``) and what the adapter changed is ``gpusteward.dev/suspended-state``;
notices and actions are Events from the component ``gpu-steward``. When the idle state moves into the
operator's own store, only ``idle_state`` changes here; ``explain`` and ``top`` read through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gpu_steward.policy.idle_model import IdleState, state_from_annotation
from gpu_steward.workloads.model import IDLE_STATE_ANNOTATION, SUSPENDED_STATE_ANNOTATION

EVENT_SOURCE = "gpu-steward"


@dataclass(frozen=True)
class Record:
    """What the operator wrote down about one workload. ``state`` is None when it never noticed it."""

    state: IdleState | None
    problem: str | None = None  # a record that could not be decoded
    suspended_state: dict[str, Any] | None = None


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def idle_state(kube: Any, obj: dict[str, Any]) -> Record:
    """The operator's record for the workload ``obj`` (``kube`` reads the store once there is one)."""
    ann = _annotations(obj)
    raw = ann.get(IDLE_STATE_ANNOTATION)
    suspended: dict[str, Any] | None = None
    if ann.get(SUSPENDED_STATE_ANNOTATION):
        try:
            suspended = json.loads(ann[SUSPENDED_STATE_ANNOTATION])
        except ValueError:
            suspended = {"unreadable": ann[SUSPENDED_STATE_ANNOTATION][:200]}
    if not raw:
        return Record(None, None, suspended)
    state, problem = state_from_annotation(raw)
    return Record(state, problem, suspended)


def events_about(kube: Any, obj: dict[str, Any], *, ours_only: bool = True) -> list[dict[str, Any]]:
    """Events on ``obj`` (same UID, or same kind and name when the Event has no UID), oldest first."""
    meta = obj.get("metadata") or {}
    events = kube.list("v1", "Event", meta.get("namespace"))
    out = []
    for ev in events:
        inv = ev.get("involvedObject") or {}
        if inv.get("uid") and meta.get("uid") and inv["uid"] != meta["uid"]:
            continue
        if inv.get("kind") != obj.get("kind") or inv.get("name") != meta.get("name"):
            continue
        if ours_only and (ev.get("source") or {}).get("component") != EVENT_SOURCE \
                and ev.get("reportingComponent") != EVENT_SOURCE:
            continue
        out.append(ev)
    return sorted(out, key=event_time)


def event_time(ev: dict[str, Any]) -> str:
    return str(ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp")
               or (ev.get("metadata") or {}).get("creationTimestamp") or "")
