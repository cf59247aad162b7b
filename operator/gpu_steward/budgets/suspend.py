"""Suspend the workload behind a GPU pod through the workload adapters; bare pods are notify-only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gpu_steward.kube import Kube
from gpu_steward.workloads import actions
from gpu_steward.workloads.resolve import resolve


@dataclass(frozen=True)
class Outcome:
    workload: str  # "Job/train -n team-a" or the pod itself when it cannot be suspended
    changed: bool  # a suspend patch was sent (or would be, in dry-run)
    suspendable: bool
    message: str


def suspend_pod_workload(kube: Kube, pod: dict[str, Any], now: dt.datetime, dry_run: bool) -> Outcome:
    lookup = actions.KubeLookup(kube)
    res = resolve(pod, lookup, lookup.owned)
    if not res.suspendable or res.workload is None:
        name = f"Pod/{pod['metadata']['name']}"
        return Outcome(name, False, False, f"{name} cannot be suspended ({res.reason}): notify only")
    result = actions.suspend(kube, res.workload, now, dry_run)
    if result.error:
        return Outcome(str(res.workload), False, True, f"suspend of {res.workload} failed: {result.error}")
    if not result.changed:
        return Outcome(str(res.workload), False, True, f"{res.workload} is already suspended")
    via = f" via {result.target}" if result.target is not None and result.target != res.workload else ""
    verb = "would suspend" if dry_run else "suspended"
    return Outcome(str(res.workload), True, True, f"{verb} {res.workload}{via}")
