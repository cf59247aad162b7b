"""FinOps FOCUS 1.1 rows (one per settled record or open part: a workload's pod, one UTC day at most, one
price) for ``gpu-steward export --format focus``.

GPU Steward allocates cost; it does not issue the invoice. So ``BilledCost`` is 0 (the provider's own
FOCUS data bills it; adding ours would count it twice) and the allocation is in ``EffectiveCost``
(= ``ContractedCost``: contracted unit price x quantity; no amortized commitments are applied).
``ListCost`` uses the list (on-demand) price of the GPU model. ``ProviderName``/``PublisherName``/
``InvoiceIssuerName`` are configurable (``focus_*`` settings). ``PricingCategory``: spot nodes are
``Dynamic``, a node labelled ``gpusteward.dev/pricing-category: Committed`` is ``Committed`` (with a
``CommitmentDiscountId``: its pool or node), everything else ``Standard``.

Formats follow the FOCUS column definitions: date/times in UTC ``YYYY-MM-DDTHH:MM:SSZ``; decimals as
plain numbers; ``BillingCurrency`` ISO 4217; ``Tags`` a JSON object; empty cells are NULL. Columns of
our own carry the ``x_`` prefix.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from gpu_steward.policy import cost as c
from gpu_steward.reports.rows import PodRecord

PRICING_UNIT = "GPU-Hours"
FOCUS_COLUMNS = (
    "BillingAccountId", "BillingAccountName", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice",
    "PricingCategory", "PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit",
    "CommitmentDiscountId",
    "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceSubcategory", "ServiceName",
    "SkuId", "SkuPriceId", "RegionId", "RegionName", "AvailabilityZone",
    "ProviderName", "PublisherName", "InvoiceIssuerName", "SubAccountId", "SubAccountName",
    "Tags", "BillingCurrency",
    "x_IdleGPUHours", "x_IdleCost", "x_GpuUtilAvg", "x_GPUs", "x_GpuModel", "x_GpuResources", "x_PriceSource",
    "x_NodePool", "x_Node", "x_Namespace", "x_WorkloadKind", "x_Workload", "x_Lease", "x_Team", "x_Owner",
    "x_Settled",
)
# The column types the FOCUS spec gives them (checked by the tests).
DATETIME_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
DECIMAL_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice",
                   "ContractedUnitPrice", "PricingQuantity", "ConsumedQuantity", "x_IdleGPUHours", "x_IdleCost",
                   "x_GpuUtilAvg")
JSON_COLUMNS = ("Tags",)


@dataclass(frozen=True)
class FocusNames:
    provider: str = "Kubernetes"
    publisher: str = "GPU Steward"
    invoice_issuer: str = "Kubernetes"
    billing_account: str = "kubernetes"


@functools.lru_cache(maxsize=65536)  # equal values give equal text: prices and quantities repeat
def _dec(value: Decimal, places: Decimal = Decimal("0.000001")) -> str:
    return c.fmt_decimal(value.quantize(places))


@functools.lru_cache(maxsize=1024)
def _month_text(year: int, month: int) -> tuple[str, str]:
    start, end = c.period_bounds("Monthly", dt.datetime(year, month, 1, tzinfo=dt.UTC))
    return c.format_time(start), c.format_time(end)


def _month(ts: dt.datetime) -> tuple[str, str]:
    u = ts.astimezone(dt.UTC)
    return _month_text(u.year, u.month)


def sku_id(r: PodRecord) -> str:
    """What is sold: the GPU model and the device-plugin resources (a MIG profile, a shared replica)."""
    resources = ",".join(sorted(x.split("=", 1)[0] for x in r.resources.split(",") if x)) or "gpu"
    return f"{r.gpu_model or 'GPU'}/{resources}"


def focus_rows(records: Sequence[PodRecord], currency: str, cluster: str | FocusNames) -> list[dict[str, str]]:
    return [dict(zip(FOCUS_COLUMNS, row, strict=True)) for row in focus_values(records, currency, cluster)]


def focus_values(records: Iterable[PodRecord], currency: str, cluster: str | FocusNames) -> Iterable[list[str]]:
    """The rows as lists in ``FOCUS_COLUMNS`` order, one at a time (an export streams them to its file)."""
    names = cluster if isinstance(cluster, FocusNames) else FocusNames(billing_account=cluster)
    account, provider, publisher, issuer = names.billing_account, names.provider, names.publisher, names.invoice_issuer
    for r in records:
        billing_start, billing_end = _month(r.start)
        tags = {k: v for k, v in (("owner", r.owner), ("team", r.team), ("lease", r.lease),
                                   ("namespace", r.namespace), ("gpu-model", r.gpu_model),
                                   ("workload", f"{r.kind}/{r.workload}" if r.workload else None)) if v}
        list_cost = r.list_cost if r.list_cost is not None else r.cost
        list_price = r.list_price if r.list_price is not None else r.price_per_gpu_hour
        sku = sku_id(r)
        cost, quantity, unit_price = _dec(r.cost), _dec(r.gpu_hours), _dec(r.price_per_gpu_hour)
        yield [
            account, account, billing_start, billing_end,  # BillingAccountId/Name, BillingPeriodStart/End
            c.format_time(r.start), c.format_time(r.end),  # ChargePeriodStart/End
            "Usage", "",  # ChargeCategory, ChargeClass
            f"{r.gpus} x {r.gpu_model or 'GPU'} ({r.resources or 'gpu'}) for "  # ChargeDescription
            f"{r.kind} {r.namespace}/{r.workload or r.pod}",
            "Usage-Based",  # ChargeFrequency
            "0", cost, _dec(list_cost), cost,  # BilledCost, EffectiveCost, ListCost, ContractedCost
            _dec(list_price), unit_price,  # ListUnitPrice, ContractedUnitPrice
            r.category, quantity, PRICING_UNIT, quantity, PRICING_UNIT,  # PricingCategory .. ConsumedUnit
            (r.pool or r.node or "") if r.category == "Committed" else "",  # CommitmentDiscountId
            r.uid, f"{r.namespace}/{r.pod}", "Kubernetes Pod",  # ResourceId, ResourceName, ResourceType
            "Compute", "Containers", "Kubernetes GPU",  # ServiceCategory, ServiceSubcategory, ServiceName
            sku, f"{sku}/{r.category}/{r.price_source or 'default'}/{c.fmt_decimal(r.price_per_gpu_hour)}",
            r.region or "", r.region or "", r.zone or "",  # RegionId, RegionName, AvailabilityZone
            provider, publisher, issuer,  # ProviderName, PublisherName, InvoiceIssuerName
            r.namespace, r.namespace,  # SubAccountId, SubAccountName
            json.dumps(tags, sort_keys=True, separators=(",", ":")), currency,  # Tags, BillingCurrency
            _dec(r.idle_gpu_hours), _dec(r.idle_cost),  # x_IdleGPUHours, x_IdleCost
            "" if r.util_avg is None else _dec(r.util_avg, Decimal("0.1")),  # x_GpuUtilAvg
            str(r.gpus), r.gpu_model or "", r.resources, r.price_source,  # x_GPUs .. x_PriceSource
            r.pool or "", r.node or "", r.namespace, r.kind, r.workload,  # x_NodePool .. x_Workload
            r.lease or "", r.team or "", r.owner or "",  # x_Lease, x_Team, x_Owner
            "true" if r.settled else "false",  # x_Settled
        ]
