"""The cost configuration the operator runs with, published for ``gpu-steward report``/``export``.

The operator writes it (ConfigMap ``gpu-steward-cost-config`` in ``platform_namespace``, only it can
write there) from its own Settings on its cost passes; the CLI reads it and never prices with its own
defaults, so a report prices a not-yet-settled pod exactly as the operator and its budgets do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gpu_steward.kube import Kube
from gpu_steward.policy import cost as c
from gpu_steward.reports.focus import FocusNames
from gpu_steward.settings import Settings

CONFIG_NAME = "gpu-steward-cost-config"
CONFIG_KEY = "config.json"


@dataclass(frozen=True)
class CostConfig:
    table: c.PriceTable
    focus: FocusNames
    owner_keys: tuple[str, ...]
    team_keys: tuple[str, ...]


def config_json(table: c.PriceTable, settings: Settings) -> str:
    return json.dumps({
        "prices": table.to_json(),
        "focus": {"providerName": settings.focus_provider_name, "publisherName": settings.focus_publisher_name,
                  "invoiceIssuerName": settings.focus_invoice_issuer_name,
                  "billingAccountId": settings.focus_billing_account_id},
        "ownerKeys": list(settings.owner_keys), "teamKeys": list(settings.team_keys),
    }, sort_keys=True, indent=1)


def publish(kube: Kube, settings: Settings, table: c.PriceTable) -> str:
    """Create or update the published configuration (OpenCost prices are per pass: left out)."""
    from dataclasses import replace

    text = config_json(replace(table, opencost={}), settings)
    return kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": CONFIG_NAME, "namespace": settings.platform_namespace,
                                    "labels": {"app.kubernetes.io/managed-by": "gpu-steward"}},
                       "data": {CONFIG_KEY: text}}, dry_run=settings.dry_run)


def parse_config(text: str) -> CostConfig:
    raw: dict[str, Any] = json.loads(text)
    f = raw.get("focus") or {}
    return CostConfig(c.PriceTable.from_json(raw.get("prices") or {}),
                      FocusNames(f.get("providerName", "Kubernetes"), f.get("publisherName", "GPU Steward"),
                                 f.get("invoiceIssuerName", "Kubernetes"), f.get("billingAccountId", "kubernetes")),
                      tuple(raw.get("ownerKeys") or ()), tuple(raw.get("teamKeys") or ()))


def read_config(kube: Any, namespace: str) -> CostConfig | None:
    cm = kube.get("v1", "ConfigMap", CONFIG_NAME, namespace)
    text = ((cm or {}).get("data") or {}).get(CONFIG_KEY)
    return parse_config(text) if text else None
