"""Cost ledger and reports at scale: pure-core time per pass for N GPU pods (prints numbers, asserts nothing).

    python bench/bench_cost.py [N]
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import tracemalloc
from decimal import Decimal

from gpu_steward.policy import budget as pb
from gpu_steward.policy import cost as c
from gpu_steward.reports.cli import render_focus
from gpu_steward.reports.rows import pod_records, showback

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
TABLE = c.PriceTable("USD", Decimal("2.5"), {"NVIDIA-A100-SXM4-80GB": Decimal("4.1")})


def make(n: int) -> tuple[list[dict], list[dict]]:
    nodes = [{"metadata": {"name": f"n{i}", "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}}}
             for i in range(max(1, n // 8))]
    pods = []
    for i in range(n):
        start = NOW - dt.timedelta(minutes=10 + i % 5000)
        pods.append({
            "metadata": {"namespace": f"team-{i % 50}", "name": f"p{i}", "uid": f"u{i}",
                         "labels": {"gpusteward.dev/team": f"t{i % 20}"},
                         "annotations": {c.ANN_IDLE_GPU_HOURS: "0.5", c.ANN_UTIL_AVG: "30",
                                         c.ANN_UTIL_OBSERVED_HOURS: "2"}},
            "spec": {"nodeName": f"n{i // 8}",
                     "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": "Running", "startTime": c.format_time(start)},
        })
    return pods, nodes


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    pods, nodes = make(n)
    by_name = {x["metadata"]["name"]: x for x in nodes}
    tracemalloc.start()
    t = time.perf_counter()
    costs = {}
    for p in pods:
        pc = c.pod_cost(p, c.gpu_hour_price(TABLE, by_name[p["spec"]["nodeName"]]), NOW)
        costs[p["metadata"]["uid"]] = pc.cost
        pc.annotations()
    t_cost = time.perf_counter() - t
    t = time.perf_counter()
    ledger = pb.roll_ledger(None, "2026-03-01T00:00:00Z", costs)
    text = ledger.to_json()
    t_ledger = time.perf_counter() - t
    t = time.perf_counter()
    recs = pod_records(pods, nodes, TABLE, (NOW - dt.timedelta(days=9), NOW), NOW, ("owner",), ("gpusteward.dev/team",))
    showback(recs, "namespace")
    csv_text = render_focus(recs, "USD", "bench")
    t_report = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    print(f"pods={n}")
    print(f"cost+annotations pass: {t_cost * 1000:.1f} ms ({t_cost / n * 1e6:.1f} us/pod)")
    print(f"spend ledger roll+serialize: {t_ledger * 1000:.1f} ms, {len(text) / 1024:.0f} KiB JSON "
          f"(~{len(text) / 1024 / 50:.1f} KiB per namespace of {n // 50} pods)")
    print(f"report rows + showback + FOCUS CSV: {t_report * 1000:.1f} ms, {len(csv_text) / 1024:.0f} KiB CSV")
    print(f"peak traced memory: {peak / 1024 / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
