"""Suspension requests: how budgets and leases ask for a suspension (pure data, no I/O).

Budgets (``onExceeded: SuspendIdleFirst``) and leases (expiry, ``maxSpend``) never suspend anything
themselves. Their reconcile publishes *requests* — which workloads, why, not before when, with how
much notice — and the idle pass carries them out through the one notice protocol (design invariant 2):
a delivered warning stating the suspension time, nothing before it, one notice per stage, the
``suspended`` label with the intent, resume by annotation / CLI / Slack, dry-run, blast radius.

Two flavours:

- **demand** (``idle_only=False``; lease expiry and ``maxSpend``): the workload is suspended whatever
  its utilization; snoozes, exemptions, startup grace and schedule windows do not postpone it (an
  expired lease is not something an owner can snooze indefinitely). The notice period is the lease's
  ``gracePeriod``, and nothing is suspended before the lease's end.
- **idle only** (``idle_only=True``; budget ``SuspendIdleFirst``): only an idle workload is suspended,
  and everything that protects idle work applies — activity, unknown data, snoozes (bounded by the
  policy's ``maxSnooze``), exemptions, startup grace. Schedule windows do not: they say when an
  IdlePolicy enforces, not when a budget may.

A request's ``id`` (source and cycle) is what a warning is given *for*: a warning counts only for the
request (or IdlePolicy) that gave it, so a renewed lease (new end, new cycle) or a new budget period
starts a new notice cycle instead of reusing an old warning's time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gpu_steward.policy.timeparse import TimeParseError, format_rfc3339, parse_rfc3339


@dataclass(frozen=True)
class SuspensionRequest:
    source: str  # "ExperimentLease ml/exp1", "GPUBudget ml/main"
    cycle: str  # what makes this request a new one: the lease's end, the budget's period start
    reason: str  # told to the owner in every notice: why their workload is (to be) suspended
    notice: timedelta  # the notice period, counted from the delivered warning
    not_before: datetime | None = None  # never suspended before this time (a lease's end)
    idle_only: bool = False  # budget SuspendIdleFirst: only idle work, idle opt-outs apply

    @property
    def id(self) -> str:
        return f"{self.source}@{self.cycle}"

    @property
    def snoozable(self) -> bool:
        return self.idle_only


@dataclass(frozen=True)
class Published:
    """A request and the workloads it names: ``workloads`` as (api group, kind, name) in ``namespace``;
    None names every workload of the namespace (a budget)."""

    namespace: str
    request: SuspensionRequest
    workloads: frozenset[tuple[str, str, str]] | None = None

    def covers(self, group: str, kind: str, namespace: str, name: str) -> bool:
        if namespace != self.namespace:
            return False
        return self.workloads is None or (group, kind, name) in self.workloads


def choose(requests: Iterable[SuspensionRequest]) -> SuspensionRequest | None:
    """The request that governs a workload named by several: a demand (lease) before an idle-only one
    (budget), then the earliest, then the id — the same on every replica and every pass."""
    def key(r: SuspensionRequest) -> tuple[bool, float, str]:
        return (r.idle_only, r.not_before.timestamp() if r.not_before is not None else float("-inf"), r.id)

    found = sorted(requests, key=key)
    return found[0] if found else None


def api_group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


# ---- codec (the records and the in-memory book hold this JSON) ------------------------------------


def to_json(p: Published) -> dict[str, Any]:
    r = p.request
    out: dict[str, Any] = {"namespace": p.namespace, "source": r.source, "cycle": r.cycle, "reason": r.reason,
                           "noticeSeconds": int(r.notice.total_seconds()), "idleOnly": r.idle_only}
    if r.not_before is not None:
        out["notBefore"] = format_rfc3339(r.not_before)
    if p.workloads is not None:
        out["workloads"] = [{"group": g, "kind": k, "name": n} for g, k, n in sorted(p.workloads)]
    return out


def from_json(raw: Any) -> Published | None:
    """Never raises: anything malformed is no request (the safe direction: nothing is suspended)."""
    if not isinstance(raw, Mapping):
        return None
    try:
        nb = raw.get("notBefore")
        workloads = raw.get("workloads")
        req = SuspensionRequest(
            source=str(raw["source"]), cycle=str(raw["cycle"]), reason=str(raw["reason"]),
            notice=timedelta(seconds=max(0, int(raw["noticeSeconds"]))),
            not_before=parse_rfc3339(nb) if nb is not None else None, idle_only=bool(raw.get("idleOnly")))
        names = None if workloads is None else frozenset(
            (str(w["group"]), str(w["kind"]), str(w["name"])) for w in workloads)
        return Published(str(raw["namespace"]), req, names)
    except (KeyError, TypeError, ValueError, TimeParseError):
        return None
