"""The Grafana dashboard: valid JSON in a sidecar-labelled ConfigMap, using only known metrics."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from helmtools import CHART, REPO, one, template

# The metric names the dashboard reads. The operator must expose the gpusteward_* ones (see
# docs/install.md "Metrics"); DCGM_FI_DEV_GPU_UTIL comes from the agents (DCGM-exporter names).
METRICS = {
    "gpusteward_cost_total",                   # counter {namespace, team, currency} (workload's namespace)
    "gpusteward_budget_spend",                 # gauge {namespace, budget, currency}
    "gpusteward_budget_limit",                 # gauge {namespace, budget, currency}
    "gpusteward_idle_gpus",                    # gauge {namespace, policy} (the policy's namespace)
    "gpusteward_policy_reclaimed_gpu_hours",   # gauge {namespace, policy}: running figure (delta, not increase)
    "gpusteward_policy_would_save_gpu_hours",  # gauge {namespace, policy}, dry-run policies
    "gpusteward_policy_watched",               # gauge {namespace, policy}: the policy picker
    "DCGM_FI_DEV_GPU_UTIL",                    # gauge {gpu, UUID, Hostname, ...} from the agents
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


def _operator_metrics() -> dict[str, tuple[str, ...]]:
    """Metric name -> label names, for every metric the operator's code defines (prometheus_client)."""
    from prometheus_client import REGISTRY

    for path in sorted((REPO / "operator" / "gpu_steward").rglob("*.py")):
        if "prometheus_client" in path.read_text():
            module = ".".join(path.relative_to(REPO / "operator").with_suffix("").parts)
            importlib.import_module(module)
    collectors = REGISTRY._names_to_collectors  # name (and name_total) -> collector
    return {name: tuple(getattr(c, "_labelnames", None) or getattr(c, "labelnames", {}).get(name, ()))
            for name, c in collectors.items() if name.startswith("gpusteward_")}


def _labels_used(expr: str) -> set[str]:
    grouped = {label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")}
    matched = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=~?\s*\"", expr))
    return (grouped | matched) - {""}


def test_labels_exist_on_the_operators_metrics() -> None:
    """Where the operator already defines a metric the dashboard reads, the labels agree."""
    defined = _operator_metrics()
    checked = 0
    for panel in _panels(_dashboard()):
        for target in panel.get("targets", []):
            for metric in _metric_names(target["expr"]) & set(defined):
                unknown = _labels_used(target["expr"]) - set(defined[metric])
                assert not unknown, f"{panel['title']!r}: {metric} has no label(s) {sorted(unknown)}"
                checked += 1
    assert checked >= 5  # the idle metrics exist today; cost and budget metrics are still to come


COUNTERS = {m for m in METRICS if m.endswith("_total")}


def test_counters_get_rate_functions_and_gauges_do_not() -> None:
    """increase()/rate() only on counters (a gauge's drops would read as resets); no _total on a gauge."""
    for panel in _panels(_dashboard()):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for fn, metric in re.findall(r"\b(increase|rate|irate|delta|deriv)\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", expr):
                if fn in ("increase", "rate", "irate"):
                    assert metric in COUNTERS, f"{fn}() on the gauge {metric} in {panel['title']!r}"
                else:
                    assert metric not in COUNTERS, f"{fn}() on the counter {metric} in {panel['title']!r}"


def test_operator_metric_types_match_their_names() -> None:
    """Every gpusteward_* the operator registers: counters end in _total, gauges do not."""
    import prometheus_client

    for mod in ("gpu_steward.budgets.metrics", "gpu_steward.idle.metrics", "gpu_steward.idle.delivery",
                "gpu_steward.leadership"):
        importlib.import_module(mod)
    for family in prometheus_client.REGISTRY.collect():
        if not family.name.startswith("gpusteward_"):
            continue
        if family.type == "gauge":
            assert not family.name.endswith("_total"), family.name


def test_prometheus_rule_and_service_monitors_keep_labels(helm: Path) -> None:
    """honorLabels on every ServiceMonitor (the operator's namespace label is the workload's); the
    PrometheusRule's alerts read metrics the operator or agent export."""
    from helmtools import VALUES_FULL

    docs = template(helm, values_files=[VALUES_FULL])
    for sm in [d for d in docs if d and d.get("kind") == "ServiceMonitor"]:
        assert all(e.get("honorLabels") is True for e in sm["spec"]["endpoints"]), sm["metadata"]["name"]
    rule = one(docs, "PrometheusRule", "")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"GPUStewardAgentDown", "GPUStewardAgentNVMLErrors", "GPUStewardBudgetThreshold", "GPUStewardIdleGPUs",
            "GPUStewardNoticesFailing"} <= alerts
    defined = _operator_metrics()
    agent = {"gpu_steward_agent_nvml_up", "gpu_steward_agent_nvml_errors_total"}
    for expr in exprs:
        names = set(re.findall(r"\b(gpu_?steward_[a-z_]+)", re.sub(r"\[[^\]]*\]", "", expr)))
        assert names and names <= set(defined) | agent, (expr, names - set(defined) - agent)
    assert not [d for d in template(helm) if d and d.get("kind") == "PrometheusRule"]  # off by default
