"""Cost model: price lookup, a pod's GPU cost, budget periods and forecasts. Pure.

Everything here is a function of plain data (pod and node dicts as the API returns them, prices,
``now``) so that the ledger can be recomputed from the cluster at any time: a restarted operator
derives the same numbers from pod timestamps and our own annotations, nothing lives only in memory.

Conventions:
- A pod holds its GPUs from ``status.startTime`` (kubelet admitted it and the device plugin bound
  the devices) until its containers finished (``Succeeded``/``Failed``) or, while it runs, ``now``.
- ``hourly-rate`` is the pod's rate: GPUs x price per GPU-hour.
- Money is ``Decimal``; amounts shown to people are rounded to 4 places (the Money format's scale).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from gpu_steward.policy import gpus as _gpus

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"

ANN_COST = "gpusteward.dev/cost"
ANN_GPU_HOURS = "gpusteward.dev/gpu-hours"
ANN_IDLE_GPU_HOURS = "gpusteward.dev/idle-gpu-hours"
ANN_UTIL_AVG = "gpusteward.dev/gpu-util-avg"
ANN_HOURLY_RATE = "gpusteward.dev/hourly-rate"
# Not in the shared list but needed to keep the ledger restart-safe: when the annotations were
# last written (rate limit) and over how many GPU-hours the utilization average was observed.
ANN_COST_UPDATED_AT = "gpusteward.dev/cost-updated-at"
ANN_UTIL_OBSERVED_HOURS = "gpusteward.dev/util-observed-gpu-hours"
LEASE_LABEL = "gpusteward.dev/lease"

Period = Literal["Daily", "Weekly", "Monthly"]

MONEY_PLACES = Decimal("0.0001")
HOURS_PLACES = Decimal("0.0001")
_SECONDS_PER_HOUR = Decimal(3600)


def q_money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def q_hours(value: Decimal) -> Decimal:
    return value.quantize(HOURS_PLACES, rounding=ROUND_HALF_UP)


def fmt_decimal(value: Decimal) -> str:
    """A decimal as plain text without exponent ("12.5000" -> "12.5", "0E-4" -> "0")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


# ---- prices ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTable:
    currency: str
    default: Decimal
    by_model: Mapping[str, Decimal] = field(default_factory=dict)
    # Label or annotation on a node with that node's price per GPU-hour (spot/reserved).
    override_key: str = "gpusteward.dev/gpu-hour-price"


def _parse_price(text: object) -> Decimal | None:
    if not isinstance(text, str):
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def gpu_hour_price(table: PriceTable, node: Mapping[str, Any] | None) -> Decimal:
    """Price of one GPU-hour on ``node``: node override, else its GPU model's price, else the default.

    A malformed override is ignored (the model/default price applies) rather than making cost
    unknowable; the operator logs it at the edge.
    """
    if node is None:
        return table.default
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    for source in (labels, annotations):
        override = _parse_price(source.get(table.override_key))
        if override is not None:
            return override
    model = labels.get(GPU_PRODUCT_LABEL)
    if isinstance(model, str) and model in table.by_model:
        return table.by_model[model]
    return table.default


# ---- a pod's GPUs and running window --------------------------------------------------------------


def pod_gpus(pod: Mapping[str, Any]) -> int:
    """GPUs a pod holds, every GPU resource together (``policy.gpus`` says which resources are GPUs):
    per resource the larger of its app containers' sum and its biggest init container."""
    return _gpus.pod_gpus(pod)


def parse_time(value: object) -> dt.datetime | None:
    """An RFC 3339 timestamp (as the API returns it, or a datetime from the client) in UTC."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 / ISO 8601 in UTC with a Z, whole seconds (FOCUS' date/time format)."""
    return value.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_window(pod: Mapping[str, Any], now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """[start, end) during which the pod held its GPUs, or None if it never started."""
    status = pod.get("status") or {}
    start = parse_time(status.get("startTime"))
    if start is None:
        return None
    end: dt.datetime | None = None
    if status.get("phase") in ("Succeeded", "Failed"):
        finished = [
            parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
            for cs in (status.get("containerStatuses") or [])
        ]
        known = [f for f in finished if f is not None]
        if known:
            end = max(known)
        else:
            # No container record (e.g. evicted before running): the Ready condition's last change.
            ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
            end = parse_time(ready[0].get("lastTransitionTime")) if ready else start
    if end is None:
        end = now
    end = min(end, now)
    return (start, max(start, end))


def is_running(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


# ---- a pod's cost ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodCost:
    gpus: int
    gpu_hours: Decimal
    idle_gpu_hours: Decimal
    cost: Decimal
    hourly_rate: Decimal
    util_avg: Decimal | None  # percent over observed time; None when never observed
    util_observed_gpu_hours: Decimal

    def annotations(self) -> dict[str, str]:
        out = {
            ANN_COST: fmt_decimal(q_money(self.cost)),
            ANN_GPU_HOURS: fmt_decimal(q_hours(self.gpu_hours)),
            ANN_IDLE_GPU_HOURS: fmt_decimal(q_hours(self.idle_gpu_hours)),
            ANN_HOURLY_RATE: fmt_decimal(q_money(self.hourly_rate)),
            ANN_UTIL_OBSERVED_HOURS: fmt_decimal(q_hours(self.util_observed_gpu_hours)),
        }
        if self.util_avg is not None:
            out[ANN_UTIL_AVG] = fmt_decimal(self.util_avg.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
        return out


def gpu_hours_between(gpus: int, start: dt.datetime, end: dt.datetime) -> Decimal:
    seconds = Decimal(max(0, int((end - start).total_seconds())))
    return Decimal(gpus) * seconds / _SECONDS_PER_HOUR


def overlap(a: tuple[dt.datetime, dt.datetime], b: tuple[dt.datetime, dt.datetime]) -> tuple[dt.datetime, dt.datetime]:
    start = max(a[0], b[0])
    end = min(a[1], b[1])
    return (start, max(start, end))


@dataclass(frozen=True)
class UtilLedger:
    """Utilization bookkeeping carried on the pod between writes (annotations) plus what the
    operator observed since (in memory until the next write)."""

    idle_gpu_hours: Decimal = Decimal(0)
    util_observed_gpu_hours: Decimal = Decimal(0)
    util_weighted_sum: Decimal = Decimal(0)  # sum(util% x observed GPU-hours)

    @property
    def util_avg(self) -> Decimal | None:
        if self.util_observed_gpu_hours <= 0:
            return None
        return self.util_weighted_sum / self.util_observed_gpu_hours

    def observe(self, gpus: int, seconds: float, util_percent: float, idle_below_percent: float) -> UtilLedger:
        """Add one sample covering ``seconds`` of ``gpus`` GPUs at ``util_percent``."""
        hours = Decimal(gpus) * Decimal(str(max(0.0, seconds))) / _SECONDS_PER_HOUR
        util = Decimal(str(util_percent))
        idle = hours if util_percent < idle_below_percent else Decimal(0)
        return UtilLedger(
            idle_gpu_hours=self.idle_gpu_hours + idle,
            util_observed_gpu_hours=self.util_observed_gpu_hours + hours,
            util_weighted_sum=self.util_weighted_sum + util * hours,
        )

    def plus(self, other: UtilLedger) -> UtilLedger:
        return UtilLedger(
            self.idle_gpu_hours + other.idle_gpu_hours,
            self.util_observed_gpu_hours + other.util_observed_gpu_hours,
            self.util_weighted_sum + other.util_weighted_sum,
        )


def _ann_decimal(annotations: Mapping[str, Any], key: str) -> Decimal | None:
    return _parse_price(annotations.get(key))


def ledger_from_annotations(pod: Mapping[str, Any]) -> UtilLedger:
    """The utilization ledger as last written on the pod (restart-safe part)."""
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    idle = _ann_decimal(ann, ANN_IDLE_GPU_HOURS) or Decimal(0)
    observed = _ann_decimal(ann, ANN_UTIL_OBSERVED_HOURS) or Decimal(0)
    avg = _ann_decimal(ann, ANN_UTIL_AVG)
    weighted = (avg or Decimal(0)) * observed
    return UtilLedger(idle, observed, weighted)


def pod_cost(
    pod: Mapping[str, Any],
    price_per_gpu_hour: Decimal,
    now: dt.datetime,
    ledger: UtilLedger | None = None,
    window: tuple[dt.datetime, dt.datetime] | None = None,
) -> PodCost:
    """Cost of ``pod`` (optionally only the part inside ``window``, e.g. a budget period).

    Idle GPU-hours and the utilization average come from ``ledger`` (default: the pod's own
    annotations); inside a partial window idle hours are prorated by the share of time covered.
    """
    gpus = pod_gpus(pod)
    ran = pod_window(pod, now)
    if ledger is None:
        ledger = ledger_from_annotations(pod)
    rate = Decimal(gpus) * price_per_gpu_hour
    if ran is None or gpus == 0:
        return PodCost(gpus, Decimal(0), Decimal(0), Decimal(0), rate, ledger.util_avg, ledger.util_observed_gpu_hours)
    total_hours = gpu_hours_between(gpus, *ran)
    part = ran if window is None else overlap(ran, window)
    hours = gpu_hours_between(gpus, *part)
    idle = ledger.idle_gpu_hours
    if window is not None:
        idle = idle * hours / total_hours if total_hours > 0 else Decimal(0)
    idle = min(idle, hours)
    return PodCost(
        gpus=gpus,
        gpu_hours=hours,
        idle_gpu_hours=idle,
        cost=hours * price_per_gpu_hour,
        hourly_rate=rate,
        util_avg=ledger.util_avg,
        util_observed_gpu_hours=ledger.util_observed_gpu_hours,
    )


def annotations_due(
    current: Mapping[str, Any], desired: Mapping[str, str], now: dt.datetime, min_interval: dt.timedelta
) -> bool:
    """Whether to write the cost annotations now: only when a value changed AND the last write is
    at least ``min_interval`` old (or the values were never written). Never a write per sample."""
    if all(current.get(k) == v for k, v in desired.items()):
        return False
    last = parse_time(current.get(ANN_COST_UPDATED_AT))
    if last is None or ANN_COST not in current:
        return True
    return now - last >= min_interval


# ---- periods and forecast -------------------------------------------------------------------------


def period_bounds(period: Period, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the budget period containing ``now``, in UTC. Weeks start on Monday."""
    now = now.astimezone(dt.UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "Daily":
        return day, day + dt.timedelta(days=1)
    if period == "Weekly":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def forecast(spend: Decimal, hourly_burn: Decimal, now: dt.datetime, period_end: dt.datetime) -> Decimal:
    """Spend at the period's end if what runs now keeps running: spend + burn rate x hours left.

    A run-rate forecast: GPU pods are long-lived and their rate is known exactly, which beats
    extrapolating the average of a period that may have just begun.
    """
    hours_left = Decimal(max(0, int((period_end - now).total_seconds()))) / _SECONDS_PER_HOUR
    return spend + hourly_burn * hours_left
