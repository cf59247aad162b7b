"""Utilization for the cost ledger and SuspendIdleFirst, from the configured source (agents or Prometheus).

Only ``ok`` readings count: an unknown pod is never idle (design invariant 1) and adds no idle time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from gpu_steward.budgets.costs import UtilizationLookup
from gpu_steward.sources.base import PodRef, UtilizationSource


def pod_refs(pods: Iterable[dict[str, Any]]) -> list[PodRef]:
    return [PodRef(p["metadata"].get("namespace", ""), p["metadata"]["name"], p["metadata"]["uid"],
                   (p.get("spec") or {}).get("nodeName")) for p in pods if p["metadata"].get("uid")]


async def sample(source: UtilizationSource, pods: Iterable[dict[str, Any]], now: dt.datetime) -> UtilizationLookup:
    refs = pod_refs(pods)
    usages = await source.fetch(refs, now) if refs else {}
    by_name: dict[tuple[str, str], float] = {}
    for ref in refs:
        usage = usages.get(ref.uid)
        if usage is not None and usage.status == "ok" and usage.util_mean is not None:
            by_name[(ref.namespace, ref.name)] = usage.util_mean

    def lookup(namespace: str, name: str) -> float | None:
        return by_name.get((namespace, name))

    return lookup
