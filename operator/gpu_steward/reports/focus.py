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
import json
from collections.abc import Sequence
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


def _dec(value: Decimal, places: Decimal = Decimal("0.000001")) -> str:
    return c.fmt_decimal(value.quantize(places))


def _month(ts: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return c.period_bounds("Monthly", ts)


def sku_id(r: PodRecord) -> str:
    """What is sold: the GPU model and the device-plugin resources (a MIG profile, a shared replica)."""
    resources = ",".join(sorted(x.split("=", 1)[0] for x in r.resources.split(",") if x)) or "gpu"
    return f"{r.gpu_model or 'GPU'}/{resources}"


def focus_rows(records: Sequence[PodRecord], currency: str, cluster: str | FocusNames) -> list[dict[str, str]]:
    names = cluster if isinstance(cluster, FocusNames) else FocusNames(billing_account=cluster)
    rows = []
    for r in records:
        billing_start, billing_end = _month(r.start)
        tags = {k: v for k, v in (("owner", r.owner), ("team", r.team), ("lease", r.lease),
                                   ("namespace", r.namespace), ("gpu-model", r.gpu_model),
                                   ("workload", f"{r.kind}/{r.workload}" if r.workload else None)) if v}
        list_cost = r.list_cost if r.list_cost is not None else r.cost
        list_price = r.list_price if r.list_price is not None else r.price_per_gpu_hour
        sku = sku_id(r)
        rows.append({
            "BillingAccountId": names.billing_account,
            "BillingAccountName": names.billing_account,
            "BillingPeriodStart": c.format_time(billing_start),
            "BillingPeriodEnd": c.format_time(billing_end),
            "ChargePeriodStart": c.format_time(r.start),
            "ChargePeriodEnd": c.format_time(r.end),
            "ChargeCategory": "Usage",
            "ChargeClass": "",
            "ChargeDescription": f"{r.gpus} x {r.gpu_model or 'GPU'} ({r.resources or 'gpu'}) for "
                                 f"{r.kind} {r.namespace}/{r.workload or r.pod}",
            "ChargeFrequency": "Usage-Based",
            "BilledCost": "0",
            "EffectiveCost": _dec(r.cost),
            "ListCost": _dec(list_cost),
            "ContractedCost": _dec(r.cost),
            "ListUnitPrice": _dec(list_price),
            "ContractedUnitPrice": _dec(r.price_per_gpu_hour),
            "PricingCategory": r.category,
            "PricingQuantity": _dec(r.gpu_hours),
            "PricingUnit": PRICING_UNIT,
            "ConsumedQuantity": _dec(r.gpu_hours),
            "ConsumedUnit": PRICING_UNIT,
            "CommitmentDiscountId": (r.pool or r.node or "") if r.category == "Committed" else "",
            "ResourceId": r.uid,
            "ResourceName": f"{r.namespace}/{r.pod}",
            "ResourceType": "Kubernetes Pod",
            "ServiceCategory": "Compute",
            "ServiceSubcategory": "Containers",
            "ServiceName": "Kubernetes GPU",
            "SkuId": sku,
            "SkuPriceId": f"{sku}/{r.category}/{r.price_source or 'default'}/{c.fmt_decimal(r.price_per_gpu_hour)}",
            "RegionId": r.region or "",
            "RegionName": r.region or "",
            "AvailabilityZone": r.zone or "",
            "ProviderName": names.provider,
            "PublisherName": names.publisher,
            "InvoiceIssuerName": names.invoice_issuer,
            "SubAccountId": r.namespace,
            "SubAccountName": r.namespace,
            "Tags": json.dumps(tags, sort_keys=True, separators=(",", ":")),
            "BillingCurrency": currency,
            "x_IdleGPUHours": _dec(r.idle_gpu_hours),
            "x_IdleCost": _dec(r.idle_cost),
            "x_GpuUtilAvg": "" if r.util_avg is None else _dec(r.util_avg, Decimal("0.1")),
            "x_GPUs": str(r.gpus),
            "x_GpuModel": r.gpu_model or "",
            "x_GpuResources": r.resources,
            "x_PriceSource": r.price_source,
            "x_NodePool": r.pool or "",
            "x_Node": r.node or "",
            "x_Namespace": r.namespace,
            "x_WorkloadKind": r.kind,
            "x_Workload": r.workload,
            "x_Lease": r.lease or "",
            "x_Team": r.team or "",
            "x_Owner": r.owner or "",
            "x_Settled": "true" if r.settled else "false",
        })
    return rows
