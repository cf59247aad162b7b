"""Cost model: prices, pod windows, cost, rate-limited annotations, periods and forecast (fixed clocks)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from gpu_steward.policy import cost as c

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
TABLE = c.PriceTable("USD", Decimal("2.50"), {"NVIDIA-A100-SXM4-80GB": Decimal("4.10")})


def node(labels=None, annotations=None):
    return {"metadata": {"name": "n", "labels": labels or {}, "annotations": annotations or {}}}


def gpu_pod(gpus=2, start=T0, phase="Running", finished=None, annotations=None, init_gpus=0):
    status = {"phase": phase, "startTime": c.format_time(start) if start else None}
    if finished:
        status["containerStatuses"] = [{"state": {"terminated": {"finishedAt": c.format_time(finished)}}}]
    spec = {"containers": [{"name": "a", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}},
                           {"name": "sidecar", "resources": {}}]}
    if init_gpus:
        spec["initContainers"] = [{"name": "i", "resources": {"requests": {"nvidia.com/gpu": init_gpus}}}]
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "annotations": annotations or {}},
            "spec": spec, "status": status}


def test_price_lookup_order_override_then_model_then_default():
    assert c.gpu_hour_price(TABLE, None) == Decimal("2.50")
    assert c.gpu_hour_price(TABLE, node({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"})) == Decimal("4.10")
    assert c.gpu_hour_price(TABLE, node({"nvidia.com/gpu.product": "Tesla-T4"})) == Decimal("2.50")
    spot = node({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "gpusteward.dev/gpu-hour-price": "1.20"})
    assert c.gpu_hour_price(TABLE, spot) == Decimal("1.20")
    reserved = node({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}, {"gpusteward.dev/gpu-hour-price": "3"})
    assert c.gpu_hour_price(TABLE, reserved) == Decimal("3")
    bad = node({"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "gpusteward.dev/gpu-hour-price": "cheap"})
    assert c.gpu_hour_price(TABLE, bad) == Decimal("4.10")


def test_pod_gpus_sums_app_containers_and_respects_init():
    assert c.pod_gpus(gpu_pod(gpus=2)) == 2
    assert c.pod_gpus(gpu_pod(gpus=1, init_gpus=4)) == 4
    assert c.pod_gpus({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}}) == 0


def test_running_pod_cost_is_gpus_times_time_times_price():
    pod = gpu_pod(gpus=2, start=T0)
    now = T0 + dt.timedelta(hours=1, minutes=30)
    cost = c.pod_cost(pod, Decimal("4.10"), now)
    assert cost.gpu_hours == Decimal(3)
    assert cost.cost == Decimal("12.30")
    assert cost.hourly_rate == Decimal("8.20")
    ann = cost.annotations()
    assert ann[c.ANN_COST] == "12.3" and ann[c.ANN_GPU_HOURS] == "3" and ann[c.ANN_HOURLY_RATE] == "8.2"


def test_finished_pod_stops_at_container_finish_and_unstarted_costs_nothing():
    pod = gpu_pod(gpus=1, start=T0, phase="Succeeded", finished=T0 + dt.timedelta(minutes=45))
    cost = c.pod_cost(pod, Decimal("2"), T0 + dt.timedelta(days=3))
    assert cost.gpu_hours == Decimal("0.75") and cost.cost == Decimal("1.5")
    pending = gpu_pod(gpus=1, start=None, phase="Pending")
    assert c.pod_cost(pending, Decimal("2"), T0).cost == 0


def test_cost_inside_window_and_prorated_idle():
    pod = gpu_pod(gpus=1, start=T0 - dt.timedelta(hours=2))
    ledger = c.UtilLedger(idle_gpu_hours=Decimal(2))
    window = (T0, T0 + dt.timedelta(days=1))
    cost = c.pod_cost(pod, Decimal("1"), T0 + dt.timedelta(hours=2), ledger, window=window)
    assert cost.gpu_hours == Decimal(2)  # only the 2 h inside the window
    assert cost.idle_gpu_hours == Decimal(1)  # half of the 4 h life is inside: half the idle hours


def test_util_ledger_accumulates_idle_and_weighted_average_and_round_trips_annotations():
    ledger = c.UtilLedger().observe(2, 1800, 2.0, 5.0).observe(2, 1800, 80.0, 5.0)
    assert ledger.idle_gpu_hours == Decimal(1)
    assert ledger.util_avg == Decimal(41)
    pod = gpu_pod(gpus=2, start=T0)
    ann = c.pod_cost(pod, Decimal(1), T0 + dt.timedelta(hours=1), ledger).annotations()
    assert ann[c.ANN_UTIL_AVG] == "41" and ann[c.ANN_IDLE_GPU_HOURS] == "1"
    back = c.ledger_from_annotations(gpu_pod(annotations=ann))
    assert back.idle_gpu_hours == Decimal(1) and back.util_avg == Decimal(41)


def test_annotation_writes_are_rate_limited_and_skipped_when_unchanged():
    minimum = dt.timedelta(minutes=5)
    desired = {c.ANN_COST: "1.5"}
    assert c.annotations_due({}, desired, T0, minimum)
    written = {c.ANN_COST: "1.4", c.ANN_COST_UPDATED_AT: c.format_time(T0)}
    assert not c.annotations_due(written, desired, T0 + dt.timedelta(minutes=4), minimum)
    assert c.annotations_due(written, desired, T0 + dt.timedelta(minutes=5), minimum)
    same = {c.ANN_COST: "1.5", c.ANN_COST_UPDATED_AT: c.format_time(T0)}
    assert not c.annotations_due(same, desired, T0 + dt.timedelta(hours=5), minimum)


@pytest.mark.parametrize(("period", "start", "end"), [
    ("Daily", dt.datetime(2026, 3, 10, tzinfo=dt.UTC), dt.datetime(2026, 3, 11, tzinfo=dt.UTC)),
    ("Weekly", dt.datetime(2026, 3, 9, tzinfo=dt.UTC), dt.datetime(2026, 3, 16, tzinfo=dt.UTC)),
    ("Monthly", dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, tzinfo=dt.UTC)),
])
def test_period_bounds(period, start, end):
    assert c.period_bounds(period, T0) == (start, end)


def test_december_rolls_into_next_year_and_boundary_instant_belongs_to_new_period():
    assert c.period_bounds("Monthly", dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC))[1] == \
        dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    midnight = dt.datetime(2026, 3, 11, tzinfo=dt.UTC)
    assert c.period_bounds("Daily", midnight)[0] == midnight


def test_forecast_is_spend_plus_burn_for_the_hours_left():
    end = T0 + dt.timedelta(hours=10)
    assert c.forecast(Decimal(100), Decimal("8.2"), T0, end) == Decimal(182)
    assert c.forecast(Decimal(100), Decimal("8.2"), end + dt.timedelta(hours=1), end) == Decimal(100)


def test_parse_time_and_format_time():
    assert c.parse_time("2026-03-10T12:00:00Z") == T0
    assert c.parse_time("garbage") is None
    assert c.format_time(T0 + dt.timedelta(microseconds=5)) == "2026-03-10T12:00:00Z"
