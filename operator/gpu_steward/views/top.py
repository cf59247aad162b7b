"""``gpu-steward top``: GPU workloads now, money on fire first.

Idle and warned workloads come first, the most expensive per hour first; then the others by cost per
hour; suspended ones (they cost nothing now) last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from decimal import Decimal
from typing import Any

from gpu_steward import clikit
from gpu_steward.views import gather

COLUMNS = (
    clikit.Column("NAMESPACE", "namespace"),
    clikit.Column("WORKLOAD", "workload"),
    clikit.Column("GPUS", "gpus"),
    clikit.Column("UTIL", "util"),
    clikit.Column("IDLE-FOR", "idleFor"),
    clikit.Column("STATE", "state"),
    clikit.Column("COST/H", "costPerHour"),
    clikit.Column("OWNER", "owner", wide_only=True),
    clikit.Column("SUSPEND-AT", "suspendAt", wide_only=True),
    clikit.Column("COST", "costSoFar", wide_only=True),
    clikit.Column("NOTE", "note", wide_only=True),
)
_BURNING = {"idle": 0, "warned": 0}


def rows(kube: Any, namespace: str | None, now: dt.datetime) -> list[dict[str, Any]]:
    from gpu_steward.settings import Settings

    currency = Settings().currency
    nodes = gather.node_index(kube)
    out = []
    for wl in gather.gpu_workloads(kube, namespace):
        state = wl.state()
        rate = gather.hourly_rate(kube, wl.pods, nodes) if state != "suspended" else Decimal(0)
        since = wl.idle_since()
        util = wl.util_avg()
        st = wl.record.state
        so_far = wl.cost_so_far()
        out.append({
            "namespace": wl.ref.namespace,
            "workload": f"{wl.ref.kind.lower()}/{wl.ref.name}",
            "kind": wl.ref.kind, "name": wl.ref.name, "apiVersion": wl.ref.api_version,
            "gpus": wl.gpus,
            "util": f"{util}%" if util is not None else "-",
            "utilPercent": float(util) if util is not None else None,
            "idleSince": since.isoformat() if since else None,
            "idleFor": gather.age(now - since) if since else "-",
            "state": state,
            "costPerHour": f"{rate.quantize(Decimal('0.01'))} {currency}",
            "costPerHourValue": str(rate.quantize(Decimal("0.0001"))),
            "currency": currency,
            "owner": gather.owner(wl.chain_objects),
            "suspendAt": st.warn_suspend_at.isoformat() if st is not None and st.warn_suspend_at
            and state == "warned" else None,
            "costSoFar": f"{so_far.quantize(Decimal('0.01'))} {currency}" if so_far is not None else None,
            "note": None if wl.suspendable else wl.reason,
            "_rate": rate,
        })
    out.sort(key=lambda r: (_BURNING.get(r["state"], 2 if r["state"] == "suspended" else 1), -r["_rate"],
                            r["namespace"] or "", r["workload"]))
    for r in out:
        del r["_rate"]
    return out


def run_top(args: argparse.Namespace, *, now: dt.datetime | None = None, kube: Any = None) -> int:
    namespace = clikit.list_namespace(args)
    kube = kube or clikit.connect(args)
    data = rows(kube, namespace, now or dt.datetime.now(dt.UTC))
    if not data and args.output in ("table", "wide"):
        where = "any namespace" if namespace is None else f"namespace {namespace}"
        print(f"No GPU workloads found in {where}.", file=sys.stderr)
        return 0
    cols = COLUMNS if namespace is None else tuple(c for c in COLUMNS if c.key != "namespace")
    sys.stdout.write(clikit.render_rows(data, cols, args.output, kind="GpuWorkloadList"))
    return 0
