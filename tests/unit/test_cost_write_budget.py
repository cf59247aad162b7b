"""Cost annotations under a cluster-wide write budget: pods never annotated first, meaningful changes next,
values that only accrued at most every refresh interval, never more writes than the budget (in-memory API)."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

from test_cost_history import FakeKube, node, pod

from gpu_steward.budgets.costs import CostLedger, Prices, price_table, reconcile_pod_costs
from gpu_steward.budgets.writes import ACCRUED, CHANGED, NEVER, WriteBudget, priority
from gpu_steward.index import Registry
from gpu_steward.policy import cost as c
from gpu_steward.settings import Settings

T0 = dt.datetime(2026, 3, 9, 10, 0, tzinfo=dt.UTC)
SETTINGS = Settings(default_gpu_hour_price=Decimal("2.50"), cost_annotation_writes_per_second=1.0,
                    evaluation_interval_seconds=10.0)
MIN, REFRESH = dt.timedelta(minutes=5), dt.timedelta(hours=1)


def _written(at: dt.datetime, **values: str) -> dict[str, str]:
    base = {c.ANN_COST: "1.00", c.ANN_GPU_HOURS: "0.4", c.ANN_HOURLY_RATE: "2.50", c.ANN_UTIL_AVG: "50"}
    return {**base, **values, c.ANN_COST_UPDATED_AT: c.format_time(at)}


def test_priority_orders_never_written_then_meaningful_changes_then_accrual() -> None:
    desired = {c.ANN_COST: "1.25", c.ANN_GPU_HOURS: "0.5", c.ANN_HOURLY_RATE: "2.50", c.ANN_UTIL_AVG: "52"}
    now = T0 + dt.timedelta(minutes=10)
    assert priority({}, desired, False, now, MIN, REFRESH) == NEVER
    # Only the accrual moved: not due before the refresh interval, due after it.
    assert priority(_written(T0), desired, False, now, MIN, REFRESH) is None
    assert priority(_written(T0), desired, False, T0 + REFRESH, MIN, REFRESH) == ACCRUED
    # The rate changed, or the utilization average moved 10 points, or the pod finished: due after MIN.
    assert priority(_written(T0, **{c.ANN_HOURLY_RATE: "5.00"}), desired, False, now, MIN, REFRESH) == CHANGED
    assert priority(_written(T0, **{c.ANN_UTIL_AVG: "40"}), desired, False, now, MIN, REFRESH) == CHANGED
    assert priority(_written(T0), desired, True, now, MIN, REFRESH) == CHANGED
    assert priority(_written(T0, **{c.ANN_HOURLY_RATE: "5.00"}), desired, False, T0 + dt.timedelta(minutes=4),
                    MIN, REFRESH) is None
    assert priority(_written(T0, **desired), desired, False, T0 + REFRESH, MIN, REFRESH) is None  # equal values


def test_the_budget_refills_with_time_and_never_exceeds_its_burst() -> None:
    budget = WriteBudget(rate=2.0, burst=20.0)
    assert budget.take_all(T0) == 20  # starts full
    budget.spend(20)
    assert budget.take_all(T0 + dt.timedelta(seconds=3)) == 6
    budget.spend(6)
    assert budget.take_all(T0 + dt.timedelta(hours=1)) == 20


def _world(n: int) -> tuple[FakeKube, Registry]:
    kube, reg = FakeKube(), Registry()
    kube.put(node("n1"))
    for i in range(n):
        p = pod("ml", f"p{i:02d}", {"nvidia.com/gpu": "1"}, "n1", T0 - dt.timedelta(hours=2))
        kube.put(p)
    return kube, reg


def _pass(kube: FakeKube, reg: Registry, budget: WriteBudget, ledger: CostLedger, now: dt.datetime) -> int:
    for (kind, _, _), obj in kube.objs.items():
        if kind == "Pod":
            reg.pod_event("MODIFIED", copy.deepcopy(obj))
    prices = Prices(price_table(SETTINGS), kube.list("v1", "Node"))
    return reconcile_pod_costs(kube, SETTINGS, now, ledger, pods=reg.pod_view(), prices=prices, budget=budget,
                               namespaces={"ml"}).written


def test_a_pass_writes_no_more_than_the_budget_and_a_steady_pod_is_not_rewritten_before_the_refresh() -> None:
    kube, reg = _world(30)
    budget, ledger = WriteBudget(rate=1.0, burst=10.0), CostLedger()
    assert _pass(kube, reg, budget, ledger, T0) == 10  # 30 never-annotated pods, a burst of 10
    assert _pass(kube, reg, budget, ledger, T0 + dt.timedelta(seconds=10)) == 10  # refilled: 1/s x 10 s
    assert _pass(kube, reg, budget, ledger, T0 + dt.timedelta(seconds=20)) == 10
    annotated = [o for (k, _, _), o in kube.objs.items() if k == "Pod" and c.ANN_COST in o["metadata"]["annotations"]]
    assert len(annotated) == 30
    for o in annotated:  # the "as of" time of the values
        assert c.parse_time(o["metadata"]["annotations"][c.ANN_COST_UPDATED_AT]) is not None
    # Ten minutes later every value accrued, none changed meaningfully: nothing is due before the hour.
    assert _pass(kube, reg, budget, ledger, T0 + dt.timedelta(minutes=10)) == 0
    assert _pass(kube, reg, budget, ledger, T0 + dt.timedelta(hours=1, seconds=30)) == 10  # then, within budget


def test_a_meaningful_change_goes_before_older_accruals() -> None:
    kube, reg = _world(12)
    budget, ledger = WriteBudget(rate=100.0, burst=100.0), CostLedger()
    assert _pass(kube, reg, budget, ledger, T0) == 12
    # The price of p07's node changes (a new node with an override): its hourly rate changed.
    kube.put(node("n2", price="9.00"))
    kube.objs[("Pod", "ml", "p07")]["spec"]["nodeName"] = "n2"
    later = T0 + dt.timedelta(hours=2)  # every pod's accrual is due too
    small = WriteBudget(rate=0.0001, burst=1.0)
    assert _pass(kube, reg, small, ledger, later) == 1
    assert kube.objs[("Pod", "ml", "p07")]["metadata"]["annotations"][c.ANN_HOURLY_RATE] == "9"
