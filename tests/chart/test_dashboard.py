"""The Grafana dashboard: valid JSON in a sidecar-labelled ConfigMap, using only known metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from helmtools import CHART, one, template

# The metric names the dashboard reads. The operator must expose the gpusteward_* ones (see
# docs/install.md "Metrics"); DCGM_FI_DEV_GPU_UTIL comes from the agents (DCGM-exporter names).
METRICS = {
    "gpusteward_workload_cost_total",         # counter {namespace, team, currency}
    "gpusteward_budget_spend",                # gauge {namespace, budget, currency}
    "gpusteward_budget_limit",                # gauge {namespace, budget, currency}
    "gpusteward_idle_gpus",                   # gauge {namespace}
    "gpusteward_reclaimed_gpu_hours_total",   # counter {namespace, policy}
    "gpusteward_policy_would_save_gpu_hours",  # gauge {namespace, policy}, dry-run policies
    "DCGM_FI_DEV_GPU_UTIL",                   # gauge {gpu, UUID, Hostname, ...} from the agents
}


def _panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out += p.get("panels", [])
    return out


def _dashboard() -> dict[str, Any]:
    return json.loads((CHART / "dashboards" / "gpu-steward.json").read_text())


def _metric_names(expr: str) -> set[str]:
    no_strings = re.sub(r'"[^"]*"', "", expr)
    no_ranges = re.sub(r"\[[^\]]*\]", "", no_strings)
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", no_ranges))
    return {w for w in words if w.startswith(("gpusteward_", "DCGM_"))}


def test_queries_use_only_known_metrics() -> None:
    dash = _dashboard()
    used: set[str] = set()
    for panel in _panels(dash):
        for target in panel.get("targets", []):
            names = _metric_names(target["expr"])
            assert names, f"panel {panel['title']!r} queries no metric"
            used |= names
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            used |= _metric_names(var["query"]["query"])
    assert used == METRICS


def test_the_four_views_are_there() -> None:
    titles = " | ".join(p["title"] for p in _panels(_dashboard())).lower()
    for needle in ("spend by team", "burn-down", "idle gpus", "reclaimed gpu-hours"):
        assert needle in titles


def test_panel_ids_unique_and_layout_inside_grid() -> None:
    panels = _panels(_dashboard())
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24, p["title"]


def test_configmap_for_the_grafana_sidecar(helm: Path) -> None:
    cm = one(template(helm), "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["gpu-steward.json"]) == _dashboard()
