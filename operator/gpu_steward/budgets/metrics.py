"""The operator's Prometheus metrics for cost and budgets (names the chart's dashboard reads)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal

from prometheus_client import Gauge

WORKLOAD_COST = Gauge("gpusteward_workload_cost_total",
                      "Cost so far of the GPU pods alive now, by namespace and team", ["namespace", "team", "currency"])
BUDGET_SPEND = Gauge("gpusteward_budget_spend", "Spend this period", ["namespace", "budget", "currency"])
BUDGET_LIMIT = Gauge("gpusteward_budget_limit", "Spend limit this period", ["namespace", "budget", "currency"])
BUDGET_FORECAST = Gauge("gpusteward_budget_forecast", "Forecast spend at period end", ["namespace", "budget",
                                                                                       "currency"])


def record_costs(rows: Sequence[tuple[str, str, str, Decimal]]) -> None:
    """``rows``: (namespace, team, currency, cost) per pod; the gauge is replaced as a whole each pass."""
    totals: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for ns, team, currency, cost in rows:
        totals[(ns, team, currency)] += cost
    WORKLOAD_COST.clear()
    for labels, total in totals.items():
        WORKLOAD_COST.labels(*labels).set(float(total))


def record_budget(namespace: str, name: str, currency: str, status: Mapping[str, object],
                  limit: Decimal | None) -> None:
    for gauge, value in ((BUDGET_SPEND, status.get("spend")), (BUDGET_FORECAST, status.get("forecast")),
                         (BUDGET_LIMIT, limit)):
        if value is not None:
            gauge.labels(namespace, name, currency).set(float(str(value)))
