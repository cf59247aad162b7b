"""FinOps FOCUS rows (one per GPU pod and charge period) for ``gpu-steward export --format focus``.

Formats follow the FOCUS column definitions: date/times in UTC as ISO 8601 ``YYYY-MM-DDTHH:MM:SSZ``;
decimals as plain numbers (no exponent, no thousands separator); ``BillingCurrency`` an ISO 4217
code; ``Tags`` a JSON object serialized as a string; empty cells are NULL. Provider-specific columns
carry the ``x_`` prefix.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal

from gpu_steward.policy import cost as c
from gpu_steward.reports.rows import PodRecord

PRICING_UNIT = "GPU-Hours"
FOCUS_COLUMNS = (
    "BillingAccountId", "BillingAccountName", "BillingPeriodStart", "BillingPeriodEnd",
    "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice",
    "PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit",
    "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
    "ProviderName", "PublisherName", "InvoiceIssuerName", "SubAccountId", "SubAccountName",
    "Tags", "BillingCurrency",
    "x_IdleGPUHours", "x_GpuUtilAvg", "x_GPUs", "x_GpuModel", "x_Node", "x_Namespace", "x_Lease", "x_Team", "x_Owner",
)
# The column types the FOCUS spec gives them (checked by the tests).
DATETIME_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
DECIMAL_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice",
                   "ContractedUnitPrice", "PricingQuantity", "ConsumedQuantity", "x_IdleGPUHours", "x_GpuUtilAvg")
JSON_COLUMNS = ("Tags",)


def _dec(value: Decimal, places: Decimal = Decimal("0.000001")) -> str:
    return c.fmt_decimal(value.quantize(places))


def _month(ts: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return c.period_bounds("Monthly", ts)


def focus_rows(records: Sequence[PodRecord], currency: str, cluster: str) -> list[dict[str, str]]:
    rows = []
    for r in records:
        billing_start, billing_end = _month(r.start)
        tags = {k: v for k, v in (("owner", r.owner), ("team", r.team), ("lease", r.lease),
                                   ("namespace", r.namespace), ("gpu-model", r.gpu_model)) if v}
        cost = _dec(r.cost)
        rows.append({
            "BillingAccountId": cluster,
            "BillingAccountName": cluster,
            "BillingPeriodStart": c.format_time(billing_start),
            "BillingPeriodEnd": c.format_time(billing_end),
            "ChargePeriodStart": c.format_time(r.start),
            "ChargePeriodEnd": c.format_time(r.end),
            "ChargeCategory": "Usage",
            "ChargeClass": "",
            "ChargeDescription": f"{r.gpus} x {r.gpu_model or 'GPU'} for pod {r.namespace}/{r.pod}",
            "ChargeFrequency": "Usage-Based",
            "BilledCost": cost,
            "EffectiveCost": cost,
            "ListCost": cost,
            "ContractedCost": cost,
            "ListUnitPrice": _dec(r.price_per_gpu_hour),
            "ContractedUnitPrice": _dec(r.price_per_gpu_hour),
            "PricingQuantity": _dec(r.gpu_hours),
            "PricingUnit": PRICING_UNIT,
            "ConsumedQuantity": _dec(r.gpu_hours),
            "ConsumedUnit": PRICING_UNIT,
            "ResourceId": r.uid,
            "ResourceName": f"{r.namespace}/{r.pod}",
            "ResourceType": "Kubernetes Pod",
            "ServiceCategory": "Compute",
            "ServiceName": "Kubernetes GPU",
            "ProviderName": "GPU Steward",
            "PublisherName": "GPU Steward",
            "InvoiceIssuerName": "GPU Steward",
            "SubAccountId": r.namespace,
            "SubAccountName": r.namespace,
            "Tags": json.dumps(tags, sort_keys=True, separators=(",", ":")),
            "BillingCurrency": currency,
            "x_IdleGPUHours": _dec(r.idle_gpu_hours),
            "x_GpuUtilAvg": "" if r.util_avg is None else _dec(r.util_avg, Decimal("0.1")),
            "x_GPUs": str(r.gpus),
            "x_GpuModel": r.gpu_model or "",
            "x_Node": r.node or "",
            "x_Namespace": r.namespace,
            "x_Lease": r.lease or "",
            "x_Team": r.team or "",
            "x_Owner": r.owner or "",
        })
    return rows
