"""Showback and FOCUS export on a known cluster state (pods, nodes, budgets as the API returns them)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal

from gpu_steward.policy import cost as c
from gpu_steward.reports import cli
from gpu_steward.reports.focus import DATETIME_COLUMNS, DECIMAL_COLUMNS, FOCUS_COLUMNS, JSON_COLUMNS
from gpu_steward.reports.rows import budget_views, pod_records, showback

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
MONTH = (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), NOW)
TABLE = c.PriceTable("USD", Decimal("2"), {"NVIDIA-A100-SXM4-80GB": Decimal("4")})
OWNER_KEYS = ("gpusteward.dev/owner",)
TEAM_KEYS = ("gpusteward.dev/team", "team")


def node(name, product=None, price=None):
    labels = {"nvidia.com/gpu.product": product} if product else {}
    if price:
        labels["gpusteward.dev/gpu-hour-price"] = price
    return {"metadata": {"name": name, "labels": labels}}


def pod(ns, name, gpus, node_name, start, labels=None, annotations=None, phase="Running", finished=None):
    status = {"phase": phase, "startTime": c.format_time(start)}
    if finished:
        status["containerStatuses"] = [{"state": {"terminated": {"finishedAt": c.format_time(finished)}}}]
    return {"metadata": {"namespace": ns, "name": name, "uid": f"uid-{name}", "labels": labels or {},
                         "annotations": annotations or {}},
            "spec": {"nodeName": node_name,
                     "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
            "status": status}


NODES = [node("a100-1", "NVIDIA-A100-SXM4-80GB"), node("spot-1", "NVIDIA-A100-SXM4-80GB", "1.5"), node("t4-1")]
PODS = [
    # 2 GPUs x 10 h on A100 @4 = 80; 3 idle GPU-hours, util 40 (the operator's ledger, LEDGERS; the
    # annotations are only its mirror, here forged: never read)
    pod("team-a", "train", 2, "a100-1", NOW - dt.timedelta(hours=10),
        {"gpusteward.dev/team": "vision", "gpusteward.dev/owner": "alice", "gpusteward.dev/lease": "exp1"},
        {c.ANN_IDLE_GPU_HOURS: "0", c.ANN_UTIL_AVG: "99", c.ANN_UTIL_OBSERVED_HOURS: "20"}),
    # 1 GPU x 4 h on spot @1.5 = 6
    pod("team-a", "nb", 1, "spot-1", NOW - dt.timedelta(hours=4), {"team": "vision"}),
    # finished: 4 GPUs x 30 min on the default-priced node @2 = 4
    pod("team-b", "eval", 4, "t4-1", NOW - dt.timedelta(hours=3), {"gpusteward.dev/owner": "bob"},
        phase="Succeeded", finished=NOW - dt.timedelta(hours=2, minutes=30)),
    # started last month: only the March part (9 days x 24 h + 12 h = 228 h) x 1 GPU @2 = 456
    pod("team-b", "long", 1, "t4-1", dt.datetime(2026, 2, 20, tzinfo=dt.UTC)),
    # no GPUs: not in the report
    {"metadata": {"namespace": "team-a", "name": "web", "uid": "w"}, "spec": {"containers": [{"name": "w"}]},
     "status": {"phase": "Running", "startTime": c.format_time(NOW)}},
]
BUDGETS = [{"metadata": {"namespace": "team-a", "name": "main"}, "spec": {"gpuQuota": 8, "spend": {"limit": "1000"}},
            "status": {"spend": "86", "forecast": "1900.5"}}]


LEDGERS = {"uid-train": c.UtilLedger(Decimal(3), Decimal(20), Decimal(800))}


def records(window=MONTH):
    return pod_records(PODS, NODES, TABLE, window, NOW, OWNER_KEYS, TEAM_KEYS, LEDGERS)


def test_pod_records_price_and_window():
    recs = {r.pod: r for r in records()}
    assert set(recs) == {"train", "nb", "eval", "long"}
    assert (recs["train"].cost, recs["train"].gpu_hours, recs["train"].idle_gpu_hours) == (Decimal(80), 20, 3)
    assert recs["nb"].cost == 6 and recs["nb"].price_per_gpu_hour == Decimal("1.5")
    assert recs["eval"].cost == 4 and recs["eval"].end == NOW - dt.timedelta(hours=2, minutes=30)
    assert recs["long"].gpu_hours == 228 and recs["long"].cost == 456
    assert recs["long"].start == MONTH[0]


def test_showback_by_namespace_team_and_lease():
    by_ns = {r.group: r for r in showback(records(), "namespace", budget_views(BUDGETS))}
    assert by_ns["team-a"].cost == 86 and by_ns["team-a"].gpu_hours == 24 and by_ns["team-a"].budget == 1000
    assert by_ns["team-a"].forecast == Decimal("1900.5") and by_ns["team-b"].budget is None
    assert by_ns["team-b"].cost == 460 and by_ns["team-b"].pods == 2
    by_team = {r.group: r.cost for r in showback(records(), "team")}
    assert by_team == {"vision": 86, "(none)": 460}
    by_lease = {r.group: r.cost for r in showback(records(), "lease")}
    assert by_lease == {"exp1": 80, "(none)": 466}


def test_report_renderings():
    text = cli.render_report(records(), BUDGETS, "namespace", "table", "USD")
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["NAMESPACE", "PODS", "GPU-HOURS"]
    assert re.match(r"team-a\s+2\s+24\s+3\s+86\s+1000\s+1900.5\s+USD", lines[1])
    assert re.match(r"team-b\s+2\s+230\s+0\s+460\s+-\s+-\s+USD", lines[2])
    data = json.loads(cli.render_report(records(), BUDGETS, "team", "json", "USD"))
    assert data[1] == {"team": "vision", "pods": 2, "gpuHours": "24", "idleGpuHours": "3", "cost": "86",
                       "idleCost": "12", "budget": None, "forecast": None, "currency": "USD"}
    rows = list(csv.DictReader(io.StringIO(cli.render_report(records(), BUDGETS, "lease", "csv", "USD"))))
    assert rows[1]["lease"] == "exp1" and rows[1]["cost"] == "80" and rows[1]["budget"] == ""


ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
REQUIRED = ("ChargePeriodStart", "ChargePeriodEnd", "BilledCost", "EffectiveCost", "ListUnitPrice",
            "PricingQuantity", "PricingUnit", "ConsumedQuantity", "ConsumedUnit", "ResourceId", "ResourceName",
            "ResourceType", "ServiceCategory", "ServiceName", "SubAccountId", "SubAccountName", "Tags",
            "BillingCurrency", "x_IdleGPUHours", "x_GpuUtilAvg")


def test_focus_export_columns_and_types():
    text = cli.render_focus(records(), "USD", "lab")
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames) == FOCUS_COLUMNS
    assert set(REQUIRED) <= set(FOCUS_COLUMNS)
    rows = list(reader)
    assert len(rows) == 4
    for row in rows:
        for col in DATETIME_COLUMNS:
            assert ISO_Z.match(row[col]), (col, row[col])
        for col in DECIMAL_COLUMNS:
            assert row[col] == "" or DECIMAL.match(row[col]), (col, row[col])
        for col in JSON_COLUMNS:
            assert isinstance(json.loads(row[col]), dict)
        assert row["ChargePeriodStart"] < row["ChargePeriodEnd"]
        assert row["BillingPeriodStart"] <= row["ChargePeriodStart"]
        assert row["ChargePeriodEnd"] <= row["BillingPeriodEnd"]
        assert row["PricingUnit"] == row["ConsumedUnit"] == "GPU-Hours"
        assert row["ServiceCategory"] == "Compute" and row["BillingCurrency"] == "USD"
        # not an invoice: BilledCost 0; the allocation is EffectiveCost = ContractedUnitPrice x PricingQuantity
        assert row["BilledCost"] == "0"
        assert Decimal(row["EffectiveCost"]) == Decimal(row["ContractedUnitPrice"]) * Decimal(row["PricingQuantity"])
    train = next(r for r in rows if r["ResourceName"] == "team-a/train")
    assert json.loads(train["Tags"]) == {"owner": "alice", "team": "vision", "lease": "exp1", "namespace": "team-a",
                                         "gpu-model": "NVIDIA-A100-SXM4-80GB"}
    assert train["EffectiveCost"] == "80" and train["x_IdleGPUHours"] == "3" and train["x_GpuUtilAvg"] == "40"
    assert train["SubAccountId"] == train["SubAccountName"] == "team-a" and train["ResourceId"] == "uid-train"
    assert train["ChargePeriodStart"] == "2026-03-10T02:00:00Z" and train["ChargePeriodEnd"] == "2026-03-10T12:00:00Z"


def test_export_splits_windows_at_month_boundaries():
    windows = cli.month_windows((dt.datetime(2026, 2, 15, tzinfo=dt.UTC), NOW))
    assert windows == [(dt.datetime(2026, 2, 15, tzinfo=dt.UTC), dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
                       (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), NOW)]
    recs = [r for w in windows for r in records(w)]
    long_rows = [r for r in recs if r.pod == "long"]
    assert [r.gpu_hours for r in long_rows] == [216, 228]  # Feb 20 -> Mar 1, then March


class FakeKube:
    """Only for the CLI wiring test: returns the fixed state above through Kube's read contract."""

    def get(self, api_version, kind, name, namespace=None):
        from gpu_steward.budgets.publish import CONFIG_KEY, config_json
        from gpu_steward.settings import Settings

        return {"data": {CONFIG_KEY: config_json(TABLE, Settings())}}

    def list(self, api_version, kind, namespace=None, label_selector=None):
        return {"Pod": PODS, "Node": NODES, "ConfigMap": []}[kind]

    def list_optional(self, api_version, kind, namespace=None, label_selector=None):
        return BUDGETS if kind == "GPUBudget" else []


def test_cli_commands_registered_and_run(capsys):
    from gpu_steward.cli import build_parser

    args = build_parser().parse_args(["report", "--by", "namespace", "-o", "json"])
    assert args.func is cli.run_report
    assert cli.run_report(args, now=NOW, kube=FakeKube()) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["namespace"] for r in out] == ["team-a", "team-b"]
    args = build_parser().parse_args(["export", "--format", "focus", "--from", "2026-03-01T00:00:00Z"])
    assert cli.run_export(args, now=NOW, kube=FakeKube()) == 0
    assert capsys.readouterr().out.startswith("BillingAccountId,")
    bad = build_parser().parse_args(["report", "--from", "2026-03-05T00:00:00Z", "--to", "2026-03-01T00:00:00Z"])
    assert cli.run_report(bad, now=NOW, kube=FakeKube()) == 2
