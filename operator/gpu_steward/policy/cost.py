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
import functools
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
#
# Every way a GPU is sold is priced as a share of the GPU it runs on:
# - whole devices (``nvidia.com/gpu``, ``amd.com/gpu``, Intel): one GPU each;
# - MIG slices ``nvidia.com/mig-<g>g.<mem>gb``: ``g`` compute slices of the GPU's ``mig_slices`` (7 on
#   A100/H100, configurable per model), unless a price per profile is configured;
# - time-sliced / MPS replicas (``nvidia.com/gpu.shared``, or ``nvidia.com/gpu`` on a node whose GPU
#   feature discovery label ``nvidia.com/gpu.replicas`` says N > 1): 1/N of the GPU (a shared MIG
#   slice: 1/N of the slice).
# The price of one whole GPU-hour of a node: node override > configured price (node pool, then spot
# price of the model on a spot node, then the model's price) > OpenCost's node_gpu_hourly_cost >
# default.

# Node labels the clouds (and Karpenter) set on spot / preemptible nodes, and the value that means spot.
SPOT_LABELS: Mapping[str, str] = {
    "cloud.google.com/gke-spot": "true",
    "cloud.google.com/gke-preemptible": "true",
    "eks.amazonaws.com/capacityType": "spot",
    "karpenter.sh/capacity-type": "spot",
    "kubernetes.azure.com/scalesetpriority": "spot",
    "node.kubernetes.io/lifecycle": "spot",
}
POOL_LABELS: tuple[str, ...] = ("cloud.google.com/gke-nodepool", "eks.amazonaws.com/nodegroup",
                                "kubernetes.azure.com/agentpool", "karpenter.sh/nodepool")
MODEL_LABELS: tuple[str, ...] = (GPU_PRODUCT_LABEL, "amd.com/gpu.product-name", "beta.amd.com/gpu.product-name")
REPLICAS_LABEL = "nvidia.com/gpu.replicas"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
# FOCUS PricingCategory of a node: spot is Dynamic; a node may say Committed (reserved) with this label.
PRICING_CATEGORY_LABEL = "gpusteward.dev/pricing-category"
PRICING_CATEGORIES = ("Standard", "Dynamic", "Committed", "Other")

PriceSource = Literal["node", "pool", "spot", "model", "opencost", "default"]


@dataclass(frozen=True)
class PriceTable:
    currency: str
    default: Decimal
    by_model: Mapping[str, Decimal] = field(default_factory=dict)
    # Label or annotation on a node with that node's price per GPU-hour (spot/reserved).
    override_key: str = "gpusteward.dev/gpu-hour-price"
    by_pool: Mapping[str, Decimal] = field(default_factory=dict)  # node pool name -> price per GPU-hour
    spot_by_model: Mapping[str, Decimal] = field(default_factory=dict)  # model -> spot price per GPU-hour
    mig_profile_prices: Mapping[str, Decimal] = field(default_factory=dict)  # "1g.10gb" -> price per slice-hour
    mig_slices: Mapping[str, int] = field(default_factory=dict)  # model -> compute slices per GPU
    default_mig_slices: int = 7
    default_replicas: int = 1  # replicas per GPU where a shared resource's node has no replicas label
    # node name -> OpenCost's node_gpu_hourly_cost (price of one GPU-hour of that node), when configured
    opencost: Mapping[str, Decimal] = field(default_factory=dict)
    model_labels: tuple[str, ...] = MODEL_LABELS
    pool_labels: tuple[str, ...] = POOL_LABELS
    spot_labels: Mapping[str, str] = field(default_factory=lambda: dict(SPOT_LABELS))
    replicas_label: str = REPLICAS_LABEL

    def to_json(self) -> dict[str, Any]:
        """What the operator prices with (published for the CLI), as plain JSON."""
        def m(d: Mapping[str, Any]) -> dict[str, str]:
            return {k: str(v) for k, v in sorted(d.items())}
        return {"currency": self.currency, "default": str(self.default), "byModel": m(self.by_model),
                "overrideKey": self.override_key, "byPool": m(self.by_pool), "spotByModel": m(self.spot_by_model),
                "migProfilePrices": m(self.mig_profile_prices),
                "migSlices": {k: int(v) for k, v in sorted(self.mig_slices.items())},
                "defaultMigSlices": self.default_mig_slices, "defaultReplicas": self.default_replicas,
                "modelLabels": list(self.model_labels), "poolLabels": list(self.pool_labels),
                "spotLabels": dict(self.spot_labels), "replicasLabel": self.replicas_label}

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> PriceTable:
        def m(key: str) -> dict[str, Decimal]:
            return {str(k): Decimal(str(v)) for k, v in (raw.get(key) or {}).items()}
        return PriceTable(
            currency=str(raw.get("currency") or "USD"), default=Decimal(str(raw.get("default", "0"))),
            by_model=m("byModel"), override_key=str(raw.get("overrideKey") or "gpusteward.dev/gpu-hour-price"),
            by_pool=m("byPool"), spot_by_model=m("spotByModel"), mig_profile_prices=m("migProfilePrices"),
            mig_slices={str(k): int(v) for k, v in (raw.get("migSlices") or {}).items()},
            default_mig_slices=int(raw.get("defaultMigSlices") or 7),
            default_replicas=int(raw.get("defaultReplicas") or 1),
            model_labels=tuple(raw.get("modelLabels") or MODEL_LABELS),
            pool_labels=tuple(raw.get("poolLabels") or POOL_LABELS),
            spot_labels=dict(raw.get("spotLabels") or SPOT_LABELS),
            replicas_label=str(raw.get("replicasLabel") or REPLICAS_LABEL))


def _parse_price(text: object) -> Decimal | None:
    if not isinstance(text, str):
        return None
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def _labels(node: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return ((node or {}).get("metadata") or {}).get("labels") or {}


def node_model(table: PriceTable, node: Mapping[str, Any] | None) -> str | None:
    labels = _labels(node)
    for key in table.model_labels:
        value = labels.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def node_pool(table: PriceTable, node: Mapping[str, Any] | None) -> str | None:
    labels = _labels(node)
    return next((str(labels[k]) for k in table.pool_labels if labels.get(k)), None)


def node_is_spot(table: PriceTable, node: Mapping[str, Any] | None) -> bool:
    labels = _labels(node)
    return any(str(labels.get(k, "")).lower() == v.lower() for k, v in table.spot_labels.items())


@dataclass(frozen=True)
class NodePrice:
    """The price of one whole GPU-hour on a node, where it came from, and what FOCUS says about it."""

    price: Decimal  # contracted: what this GPU-hour costs
    list_price: Decimal  # list (on-demand) price of the model: the model's price, OpenCost, or the default
    source: PriceSource
    category: str  # FOCUS PricingCategory
    model: str | None = None
    pool: str | None = None
    spot: bool = False
    region: str | None = None
    zone: str | None = None


def node_price(table: PriceTable, node: Mapping[str, Any] | None) -> NodePrice:
    """Node override > configured price (pool, spot-model, model) > OpenCost > default.

    A malformed override is ignored (the next source applies) rather than making cost unknowable.
    """
    meta = (node or {}).get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    model, pool, spot = node_model(table, node), node_pool(table, node), node_is_spot(table, node)
    opencost = table.opencost.get(meta.get("name", "")) if meta.get("name") else None
    if model is not None and model in table.by_model:
        list_price = table.by_model[model]
    else:
        list_price = opencost if opencost is not None else table.default
    category = labels.get(PRICING_CATEGORY_LABEL)
    if category not in PRICING_CATEGORIES:
        category = "Dynamic" if spot else "Standard"
    region, zone = labels.get(REGION_LABEL), labels.get(ZONE_LABEL)

    def made(price: Decimal, source: PriceSource) -> NodePrice:
        return NodePrice(price, list_price, source, str(category), model, pool, spot, region, zone)
    for source in (labels, annotations):
        override = _parse_price(source.get(table.override_key))
        if override is not None:
            return made(override, "node")
    if pool is not None and pool in table.by_pool:
        return made(table.by_pool[pool], "pool")
    if spot and model is not None and model in table.spot_by_model:
        return made(table.spot_by_model[model], "spot")
    if model is not None and model in table.by_model:
        return made(table.by_model[model], "model")
    if opencost is not None:
        return made(opencost, "opencost")
    return made(table.default, "default")


def gpu_hour_price(table: PriceTable, node: Mapping[str, Any] | None) -> Decimal:
    """Price of one whole GPU-hour on ``node`` (``node_price`` without the provenance)."""
    return node_price(table, node).price


def mig_compute_slices(resource: str) -> int | None:
    """``g`` of ``nvidia.com/mig-<g>g.<mem>gb[.shared]``, or None for other resources."""
    if not resource.startswith(_gpus.MIG_PREFIX):
        return None
    profile = resource.removeprefix(_gpus.MIG_PREFIX)
    head = profile.split(".", 1)[0]
    if head.endswith("g") and head[:-1].isdigit():
        return max(1, int(head[:-1]))
    return None


def mig_profile(resource: str) -> str:
    """``1g.10gb`` of ``nvidia.com/mig-1g.10gb`` (and of its ``.shared`` variant)."""
    return resource.removeprefix(_gpus.MIG_PREFIX).removesuffix(".shared")


def node_replicas(table: PriceTable, node: Mapping[str, Any] | None) -> int:
    try:
        n = int(str(_labels(node).get(table.replicas_label, "")))
    except ValueError:
        n = 0
    return n if n > 0 else max(1, table.default_replicas)


@dataclass(frozen=True)
class PodPrice:
    """A pod's price: how many GPU-equivalents it holds and what an hour of them costs."""

    units: Decimal  # GPU-equivalents: a 1g MIG slice of an A100 is 1/7, one of 4 replicas is 1/4
    rate: Decimal  # price per hour of the whole pod
    list_rate: Decimal  # the same at list price
    node: NodePrice
    devices: int  # devices, slices and replicas as the device plugin counts them
    resources: str  # "nvidia.com/mig-1g.10gb=1,..." (the SKU of the allocation)

    @property
    def unit_price(self) -> Decimal:
        """Price per GPU-equivalent hour (the node's GPU-hour price unless a MIG profile price applies)."""
        return self.rate / self.units if self.units > 0 else self.node.price


def pod_price(table: PriceTable, pod: Mapping[str, Any], node: Mapping[str, Any] | None,
              node_price_: NodePrice | None = None) -> PodPrice:
    """Price every GPU resource of ``pod`` as a share of its node's GPU (module comment above)."""
    np_ = node_price_ or node_price(table, node)
    held = _gpus.pod_gpu_resources(pod)
    units = rate = list_rate = Decimal(0)
    model = np_.model
    slices = Decimal(table.mig_slices.get(model or "", table.default_mig_slices) or 7)
    replicas = Decimal(node_replicas(table, node))
    for resource, count in sorted(held.items()):
        n = Decimal(count)
        shared = resource.endswith(".shared") or (resource == "nvidia.com/gpu" and replicas > 1)
        divisor = replicas if shared else Decimal(1)
        g = mig_compute_slices(resource)
        # numerator / denominator of the share, multiplied before dividing so exact prices stay exact
        num, den = (min(Decimal(g), slices), slices * divisor) if g is not None else (Decimal(1), divisor)
        units += n * num / den
        profile_price = table.mig_profile_prices.get(mig_profile(resource)) if g is not None else None
        if profile_price is not None:
            rate += n * profile_price / divisor
            list_rate += n * profile_price / divisor
        else:
            rate += n * num * np_.price / den
            list_rate += n * num * np_.list_price / den
    resources = ",".join(f"{k}={v}" for k, v in sorted(held.items()))
    return PodPrice(units, rate, list_rate, np_, sum(held.values()), resources)


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


@functools.lru_cache(maxsize=8192)  # reports and exports format the same day ends and starts again and again
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


def hours_between(start: dt.datetime, end: dt.datetime) -> Decimal:
    """Whole seconds between two instants, in hours."""
    return Decimal(max(0, int((end - start).total_seconds()))) / _SECONDS_PER_HOUR


def gpu_hours_between(gpus: int | Decimal, start: dt.datetime, end: dt.datetime) -> Decimal:
    seconds = Decimal(max(0, int((end - start).total_seconds())))
    return Decimal(gpus) * seconds / _SECONDS_PER_HOUR


def overlap(a: tuple[dt.datetime, dt.datetime], b: tuple[dt.datetime, dt.datetime]) -> tuple[dt.datetime, dt.datetime]:
    start = max(a[0], b[0])
    end = min(a[1], b[1])
    return (start, max(start, end))


@dataclass(frozen=True)
class UtilLedger:
    """Utilization bookkeeping of one pod as the operator observed it: kept by ``budgets.costs.CostLedger``,
    recorded in the pod's cost-history cursor (operator-only); the pod's annotations only mirror it."""

    idle_gpu_hours: Decimal = Decimal(0)
    util_observed_gpu_hours: Decimal = Decimal(0)
    util_weighted_sum: Decimal = Decimal(0)  # sum(util% x observed GPU-hours)

    @property
    def util_avg(self) -> Decimal | None:
        if self.util_observed_gpu_hours <= 0:
            return None
        return self.util_weighted_sum / self.util_observed_gpu_hours

    def observe(self, gpus: int | Decimal, seconds: float, util_percent: float,
                idle_below_percent: float) -> UtilLedger:
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
    """The utilization ledger as last mirrored on the pod: for display only. Nothing counted reads it (users
    with ``edit`` can rewrite the annotations); the operator's copy is its cost-history cursor."""
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
    *,
    price: PodPrice | None = None,
) -> PodCost:
    """Cost of ``pod`` (optionally only the part inside ``window``, e.g. a budget period).

    With ``price`` (``pod_price``) the pod is priced by its GPU-equivalents (MIG slices, shared
    replicas); without it every GPU resource counts as one GPU at ``price_per_gpu_hour``. GPU-hours
    are GPU-equivalent hours. Idle GPU-hours and the utilization average come from ``ledger``, the
    operator's own (default: none counted; never the pod's annotations, which users can rewrite); inside
    a partial window idle hours are prorated by the share of time covered.
    """
    gpus = pod_gpus(pod)
    units = price.units if price is not None else Decimal(gpus)
    rate = price.rate if price is not None else Decimal(gpus) * price_per_gpu_hour
    ran = pod_window(pod, now)
    if ledger is None:
        ledger = UtilLedger()
    if ran is None or gpus == 0:
        return PodCost(gpus, Decimal(0), Decimal(0), Decimal(0), rate, ledger.util_avg, ledger.util_observed_gpu_hours)
    total_hours = units * hours_between(*ran)
    part = ran if window is None else overlap(ran, window)
    hours = hours_between(*part)
    gpu_hours = units * hours
    idle = ledger.idle_gpu_hours
    if window is not None:
        idle = idle * gpu_hours / total_hours if total_hours > 0 else Decimal(0)
    idle = min(idle, gpu_hours)
    return PodCost(
        gpus=gpus,
        gpu_hours=gpu_hours,
        idle_gpu_hours=idle,
        cost=hours * rate,
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
