"""The operator's Prometheus metrics for cost and budgets (names the chart's dashboard and alerts read).

Money and GPU-hours are **counters** (``gpusteward_cost_total``, ``gpusteward_gpu_hours_total``,
``gpusteward_idle_gpu_hours_total``, ``gpusteward_idle_cost_total`` by namespace, team, currency): their
value is the settled cost history plus the open part of the pods not settled yet, so it survives pod
deaths, operator restarts and failover (a new leader reads the same history), and ``increase()`` works.
Current rates are **gauges** (``gpusteward_workload_hourly_cost``, ``gpusteward_workload_gpus``), as are
the budgets' spend, limit and forecast. Only the replica that acts exports them (``is_leader``); series
of a namespace, budget or policy that went away are dropped (the collector yields only what exists).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

Key = tuple[str, str, str]  # namespace, team, currency


_COST_LABELS = ("namespace", "team", "currency")
_BUDGET_LABELS = ("namespace", "budget", "currency")


class CostCollector:
    """Yields the last pass's numbers; nothing on a replica that does not act."""

    # Exposed name -> label names (what the dashboard and alert tests check queries against).
    labelnames = {
        **{f"gpusteward_{n}_total": _COST_LABELS for n in ("cost", "idle_cost", "gpu_hours", "idle_gpu_hours")},
        "gpusteward_workload_hourly_cost": _COST_LABELS, "gpusteward_workload_gpus": _COST_LABELS,
        **{f"gpusteward_budget_{n}": _BUDGET_LABELS for n in ("spend", "limit", "forecast")},
    }

    def __init__(self) -> None:
        self.is_leader: Callable[[], bool] = lambda: True
        self._lock = threading.Lock()
        self.counters: dict[Key, tuple[Decimal, Decimal, Decimal, Decimal]] = {}
        self.rates: dict[Key, tuple[Decimal, Decimal]] = {}
        self.budgets: dict[tuple[str, str, str], tuple[Decimal | None, Decimal | None, Decimal | None]] = {}

    def collect(self) -> Iterator[Metric]:
        if not self.is_leader():
            return
        labels = ["namespace", "team", "currency"]
        cost = CounterMetricFamily("gpusteward_cost", "GPU cost settled and accrued, by the workload's namespace "
                                   "and team", labels=labels)
        idle_cost = CounterMetricFamily("gpusteward_idle_cost", "Cost of GPU-hours sampled idle", labels=labels)
        hours = CounterMetricFamily("gpusteward_gpu_hours", "GPU-hours (GPU-equivalents: a 1g MIG slice of an "
                                    "A100 is 1/7) held", labels=labels)
        idle = CounterMetricFamily("gpusteward_idle_gpu_hours", "GPU-hours sampled idle", labels=labels)
        rate = GaugeMetricFamily("gpusteward_workload_hourly_cost", "Cost per hour of the GPU pods running now",
                                 labels=labels)
        gpus = GaugeMetricFamily("gpusteward_workload_gpus", "GPU-equivalents held by the GPU pods running now",
                                 labels=labels)
        blabels = ["namespace", "budget", "currency"]
        spend = GaugeMetricFamily("gpusteward_budget_spend", "Spend this period", labels=blabels)
        limit = GaugeMetricFamily("gpusteward_budget_limit", "Spend limit this period", labels=blabels)
        forecast = GaugeMetricFamily("gpusteward_budget_forecast", "Forecast spend at period end", labels=blabels)
        with self._lock:
            for key, (c_, h_, i_, ic_) in sorted(self.counters.items()):
                cost.add_metric(list(key), float(c_))
                hours.add_metric(list(key), float(h_))
                idle.add_metric(list(key), float(i_))
                idle_cost.add_metric(list(key), float(ic_))
            for key, (r_, g_) in sorted(self.rates.items()):
                rate.add_metric(list(key), float(r_))
                gpus.add_metric(list(key), float(g_))
            for bkey, (s_, l_, f_) in sorted(self.budgets.items()):
                for fam, v in ((spend, s_), (limit, l_), (forecast, f_)):
                    if v is not None:
                        fam.add_metric(list(bkey), float(v))
        yield from (cost, idle_cost, hours, idle, rate, gpus, spend, limit, forecast)


COLLECTOR = CostCollector()
REGISTRY.register(COLLECTOR)  # type: ignore[arg-type]


def record_costs(counters: Mapping[Key, tuple[Decimal, ...]], rates: Mapping[Key, tuple[Decimal, Decimal]],
                 namespaces: set[str] | None = None) -> None:
    """Replace the cost series with this pass's; ``namespaces`` (those that exist) drops the counters of
    deleted namespaces."""
    def full(v: tuple[Decimal, ...]) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        padded = (*v, Decimal(0), Decimal(0), Decimal(0), Decimal(0))
        return padded[0], padded[1], padded[2], padded[3]

    with COLLECTOR._lock:
        COLLECTOR.counters = {k: full(v) for k, v in counters.items() if namespaces is None or k[0] in namespaces}
        COLLECTOR.rates = dict(rates)


def record_budget(namespace: str, name: str, currency: str, status: Mapping[str, object],
                  limit: Decimal | None) -> None:
    def dec(v: object) -> Decimal | None:
        return None if v is None else Decimal(str(v))

    with COLLECTOR._lock:
        for key in [k for k in COLLECTOR.budgets if k[:2] == (namespace, name) and k[2] != currency]:
            del COLLECTOR.budgets[key]
        COLLECTOR.budgets[(namespace, name, currency)] = (dec(status.get("spend")), limit, dec(status.get("forecast")))


def forget_budget(namespace: str, name: str) -> None:
    with COLLECTOR._lock:
        for key in [k for k in COLLECTOR.budgets if k[:2] == (namespace, name)]:
            del COLLECTOR.budgets[key]
