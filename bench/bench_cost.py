"""Cost ledger and reports at scale: pure-core time per pass for N GPU pods (prints numbers, asserts nothing).

    python bench/bench_cost.py [N]
    python bench/bench_cost.py --history [N]   # settled history of N workload-periods (default 100k)
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


if __name__ == "__main__" and "--history" not in sys.argv:
    main()


class _HistoryApi:
    """The ConfigMaps of a history as the apiserver would answer a LIST: JSON text, parsed per call."""

    def __init__(self, cms: list[dict]) -> None:
        import json

        self.by_day: dict[str, list[str]] = {}
        for cm in cms:
            self.by_day.setdefault(cm["metadata"]["labels"]["gpusteward.dev/cost-day"], []).append(json.dumps(cm))

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:
        import json
        import re

        m = re.search(r"cost-day in \(([^)]*)\)", label_selector or "")
        days = m.group(1).split(",") if m else list(self.by_day)
        return json.loads("[" + ",".join(t for d in days for t in self.by_day.get(d, [])) + "]")


def bench_history(n: int = 100_000) -> None:
    """History of ``n`` settled workload-periods (pod-days) over 28 days, read as ``gpu-steward report`` and
    ``export`` read it (a LIST per week, decoded shard by shard, streamed): report by team, FOCUS export."""
    import gc
    import os
    import tempfile

    from gpu_steward.budgets import history as store
    from gpu_steward.policy import history as h
    from gpu_steward.reports.cli import write_focus
    from gpu_steward.reports.rows import Showback, pod_record_of

    terms = {"namespace": "team-0", "pod": "p", "kind": "Job", "workload": "w", "owner": "o", "team": "t",
             "lease": "", "node": "n1", "model": "NVIDIA-A100-SXM4-80GB", "pool": "", "region": "r", "zone": "z",
             "resources": "nvidia.com/gpu=1", "devices": "1", "units": "1", "rate": "3.5", "listRate": "3.5",
             "price": "3.5", "listPrice": "3.5", "source": "model", "category": "Standard", "currency": "USD"}
    start = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    window = (start, start + dt.timedelta(days=28))
    cms: list[dict] = []
    sizes: dict[str, int] = {}
    for i in range(n):
        day = start + dt.timedelta(days=i % 28)
        t = {**terms, "namespace": f"team-{i % 50}", "team": f"t{i % 20}", "pod": f"p{i}"}
        rec = h.Record(f"u{i}", day, day + dt.timedelta(hours=8), Decimal(8), Decimal(2), Decimal(28), Decimal(28), t)
        text, d = rec.to_json(), rec.day
        if d not in sizes or sizes[d] + len(text) > store.SHARD_BYTES:
            cms.append({"metadata": {"name": store.day_shard_name(d, sum(1 for x in cms if x["metadata"]["labels"][
                store.DAY_LABEL] == d)), "labels": {store.STORE_LABEL: store.RECORDS, store.DAY_LABEL: d}},
                "data": {}})
            sizes[d] = 0
        [x for x in cms if x["metadata"]["labels"][store.DAY_LABEL] == d][-1]["data"][rec.key] = text
        sizes[d] += len(text) + len(rec.key)
    api = _HistoryApi(cms)
    shards = len(cms)
    del cms
    gc.collect()

    def report() -> tuple[int, Decimal]:
        acc = Showback("team")
        rows = 0
        for rec in h.iter_rows(store.iter_records(api, "gpu-steward", window), [], window):  # type: ignore[arg-type]
            acc.add_history(rec)
            rows += 1
        return rows, sum((g.cost for g in acc.rows()), Decimal(0))

    def export(path: str) -> int:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            return write_focus(fh, (pod_record_of(r) for r in h.iter_rows(
                store.iter_records(api, "gpu-steward", window), [], window)), "USD", "bench")  # type: ignore[arg-type]

    # timed without tracing (tracemalloc slows allocation-heavy code several times), then traced for the peak
    t0 = time.perf_counter()
    rows, total = report()
    t_report = time.perf_counter() - t0
    tracemalloc.start()
    report()
    _, peak_report = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "focus.csv")
        t0 = time.perf_counter()
        written = export(path)
        t_focus = time.perf_counter() - t0
        size = os.path.getsize(path)
        tracemalloc.start()
        export(path)
        _, peak_focus = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert rows == written == n and total == 28 * n
    print(f"history: {n} workload-periods in {shards} ConfigMap shards over 28 days")
    print(f"  report (read + window + showback by team): {t_report:.2f} s, peak {peak_report / 2**20:.0f} MiB")
    print(f"  FOCUS export (read + window + CSV to a file): {t_focus:.2f} s, {size / 2**20:.0f} MiB, "
          f"peak {peak_focus / 2**20:.0f} MiB")


if __name__ == "__main__" and "--history" in sys.argv:
    bench_history(int(sys.argv[sys.argv.index("--history") + 1]) if len(sys.argv) > sys.argv.index("--history") + 1
                  else 100_000)
