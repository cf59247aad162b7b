"""Cost history that survives the pods: settlement, deleted Jobs and nodes, price changes, budgets agreeing
with reports to the cent, monotonic counters, FOCUS 1.1 column rules (injected clock, in-memory API)."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal

from gpu_steward.budgets import history as store
from gpu_steward.budgets.budget import history_costs
from gpu_steward.budgets.costs import CostLedger, Prices, history_counters, reconcile_pod_costs
from gpu_steward.cli import build_parser
from gpu_steward.policy import cost as c
from gpu_steward.policy import history as h
from gpu_steward.reports import cli
from gpu_steward.reports.focus import FOCUS_COLUMNS
from gpu_steward.settings import Settings

A100 = "NVIDIA-A100-SXM4-80GB"
T0 = dt.datetime(2026, 3, 9, 22, 0, tzinfo=dt.UTC)
SETTINGS = Settings(gpu_hour_prices={A100: Decimal("3.50")}, default_gpu_hour_price=Decimal("2.50"),
                    platform_namespace="gpu-steward", focus_provider_name="Example Cloud")


class FakeKube:
    """Kube's contract over dicts: get/list (label selectors k=v and k in (a,b)), create, merge patch, apply."""

    def __init__(self):
        self.objs: dict[tuple[str, str | None, str], dict] = {}
        self.rv = 0

    def _sel(self, obj, selector):
        labels = obj["metadata"].get("labels") or {}
        for part in re.split(r",(?![^(]*\))", selector or ""):
            if not part:
                continue
            m = re.fullmatch(r"(\S+) in \((.*)\)", part)
            if m:
                if labels.get(m.group(1)) not in m.group(2).split(","):
                    return False
            else:
                k, v = part.split("=")
                if labels.get(k) != v:
                    return False
        return True

    def get(self, api_version, kind, name, namespace=None):
        o = self.objs.get((kind, namespace, name))
        return copy.deepcopy(o) if o else None

    def list(self, api_version, kind, namespace=None, label_selector=None):
        return [copy.deepcopy(o) for (k, ns, _), o in sorted(self.objs.items(), key=lambda x: x[0][2])
                if k == kind and (namespace is None or ns == namespace) and self._sel(o, label_selector)]

    list_optional = list

    def create(self, body, *, dry_run):
        body = copy.deepcopy(body)
        key = (body["kind"], body["metadata"].get("namespace"), body["metadata"]["name"])
        assert key not in self.objs
        self.rv += 1
        body["metadata"]["resourceVersion"] = str(self.rv)
        self.objs[key] = body
        return copy.deepcopy(body)

    def patch(self, api_version, kind, name, namespace, body, *, dry_run, subresource=None):
        obj = self.objs[(kind, namespace, name)]
        want = (body.get("metadata") or {}).get("resourceVersion")
        assert want is None or want == obj["metadata"]["resourceVersion"], "409"

        def merge(dst, src):
            for k, v in src.items():
                if v is None:
                    dst.pop(k, None)
                elif isinstance(v, dict):
                    merge(dst.setdefault(k, {}), v)
                else:
                    dst[k] = v
        merge(obj, {k: v for k, v in body.items() if k != "metadata"})
        merge(obj["metadata"], {k: v for k, v in (body.get("metadata") or {}).items() if k != "resourceVersion"})
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(obj)

    def apply(self, desired, *, dry_run):
        key = (desired["kind"], desired["metadata"].get("namespace"), desired["metadata"]["name"])
        if key not in self.objs:
            self.create(desired, dry_run=dry_run)
            return "created"
        self.patch("v1", desired["kind"], key[2], key[1], {"data": desired.get("data")}, dry_run=dry_run)
        return "patched"

    def delete(self, kind, name, namespace):
        self.objs.pop((kind, namespace, name), None)

    def put(self, obj):
        obj = copy.deepcopy(obj)
        obj.setdefault("kind", "Pod" if "spec" in obj and "containers" in obj["spec"] else "Node")
        self.objs[(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj


def node(name, price=None, **labels):
    labels = {"nvidia.com/gpu.product": A100, **labels}
    if price:
        labels["gpusteward.dev/gpu-hour-price"] = price
    return {"kind": "Node", "metadata": {"name": name, "labels": labels}}


def pod(ns, name, resources, node_name, start, labels=None, phase="Running", finished=None, job=None):
    status = {"phase": phase, "startTime": c.format_time(start)}
    if finished:
        status["containerStatuses"] = [{"state": {"terminated": {"finishedAt": c.format_time(finished)}}}]
    meta = {"namespace": ns, "name": name, "uid": f"uid-{name}", "labels": labels or {}}
    if job:
        meta["ownerReferences"] = [{"kind": "Job", "name": job, "controller": True}]
    return {"kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node_name, "containers": [{"name": "m", "resources": {"limits": resources}}]},
            "status": status}


class World:
    def __init__(self):
        self.kube = FakeKube()
        self.history = store.CostHistory(self.kube, "gpu-steward", seen_flush=dt.timedelta(0))
        self.ledger = CostLedger()

    def pass_(self, now):
        pods = [o for (k, _, _), o in self.kube.objs.items() if k == "Pod"]
        reconcile_pod_costs(self.kube, SETTINGS, now, self.ledger, pods=copy.deepcopy(pods), history=self.history)

    def report(self, argv, now):
        import contextlib

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = cli.run_report(build_parser().parse_args(["report", *argv]), now=now, kube=self.kube) \
                if argv[:1] != ["export"] else None
        assert rc == 0
        return buf.getvalue()

    def export(self, argv, now):
        import contextlib

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert cli.run_export(build_parser().parse_args(["export", *argv]), now=now, kube=self.kube) == 0
        return list(csv.DictReader(io.StringIO(buf.getvalue())))


def test_job_cost_survives_deletion_and_node_keeps_its_price():
    w = World()
    w.kube.put(node("a100", price="3.00"))
    w.kube.put(pod("ml", "train-x", {"nvidia.com/gpu": "2"}, "a100", T0, {"team": "vision"}, job="train"))
    w.pass_(T0 + dt.timedelta(minutes=30))
    # the job finishes at 23:00; the node is deleted; a day later the pod and its Job are gone too
    w.kube.put(pod("ml", "train-x", {"nvidia.com/gpu": "2"}, "a100", T0, {"team": "vision"}, phase="Succeeded",
                   finished=T0 + dt.timedelta(hours=1), job="train"))
    w.kube.delete("Node", "a100", None)
    w.pass_(T0 + dt.timedelta(hours=1, minutes=1))
    w.kube.delete("Pod", "train-x", "ml")
    later = T0 + dt.timedelta(days=1, hours=2)
    w.pass_(later)
    rows = json.loads(w.report(["--by", "team", "--from", "2026-03-09T00:00:00Z", "-o", "json"], later))
    assert rows == [{"team": "vision", "pods": 1, "gpuHours": "2", "idleGpuHours": "0", "cost": "6",
                     "idleCost": "0", "budget": None, "forecast": None, "currency": "USD"}]
    focus = w.export(["--from", "2026-03-09T00:00:00Z"], later)
    assert len(focus) == 1 and focus[0]["x_Workload"] == "train" and focus[0]["x_WorkloadKind"] == "Job"
    assert focus[0]["ContractedUnitPrice"] == "3" and focus[0]["x_PriceSource"] == "node"


def test_running_pod_settles_per_day_and_a_price_change_applies_forward():
    w = World()
    w.kube.put(node("a100"))
    w.kube.put(pod("ml", "nb", {"nvidia.com/mig-1g.10gb": "1"}, "a100", T0))  # 0.50/h
    w.pass_(T0 + dt.timedelta(hours=1))
    w.pass_(T0 + dt.timedelta(hours=3))  # midnight passed: 22:00-24:00 settled
    day1 = [r for r in store.list_records(w.kube, "gpu-steward", (T0, T0 + dt.timedelta(days=1)))]
    assert [(r.start, r.end, r.cost) for r in day1] == [(T0, T0 + dt.timedelta(hours=2), Decimal("1.000000"))]
    # the node's price changes at 01:00: hours before keep 0.50/h, after are priced 4.20/7 = 0.60/h
    w.kube.put(node("a100", price="4.20"))
    w.pass_(T0 + dt.timedelta(hours=3))
    now = T0 + dt.timedelta(hours=5)
    w.pass_(now)
    rows = json.loads(w.report(["--from", "2026-03-09T00:00:00Z", "-o", "json"], now))
    assert rows[0]["cost"] == "2.7"  # 3 h x 0.50 + 2 h x 0.60
    assert rows[0]["gpuHours"] == "0.7143"  # 5 h of 1/7 GPU


def test_budget_spend_agrees_with_report_to_the_cent_and_counters_only_grow():
    w = World()
    w.kube.put(node("a100"))
    w.kube.put(node("spot", **{"karpenter.sh/capacity-type": "spot"}))
    w.kube.put(pod("ml", "a", {"nvidia.com/gpu": "1"}, "a100", T0 - dt.timedelta(days=2), {"team": "nlp"}))
    w.kube.put(pod("ml", "b", {"nvidia.com/mig-3g.40gb": "1"}, "spot", T0 + dt.timedelta(minutes=7),
                   {"team": "nlp"}))
    w.kube.put(pod("ml", "gone", {"nvidia.com/gpu": "3"}, "a100", T0 - dt.timedelta(hours=5)))
    seen = []
    for minutes in (13, 77, 131, 200):
        now = T0 + dt.timedelta(minutes=minutes)
        if minutes == 131:
            w.kube.delete("Pod", "gone", "ml")  # deleted while running: settled up to when it was last seen
        w.pass_(now)
        pods = [o for (k, _, _), o in w.kube.objs.items() if k == "Pod"]
        counters = history_counters(w.history, pods, Prices(c.PriceTable("USD", Decimal("2.5"), {A100: Decimal("3.5")}),
                                                            [o for (k, _, _), o in w.kube.objs.items() if k == "Node"]),
                                    SETTINGS, now)
        seen.append(sum(v[0] for v in counters.values()))
    assert seen == sorted(seen) and seen[-1] > seen[0]
    now = T0 + dt.timedelta(minutes=200)
    month = c.period_bounds("Monthly", now)
    pods = [o for (k, _, _), o in w.kube.objs.items() if k == "Pod"]
    prices = Prices.load(w.kube, SETTINGS)
    spend = c.q_money(sum(history_costs(w.history, pods, prices, SETTINGS, "ml", month, now).values(), Decimal(0)))
    rows = json.loads(w.report(["-o", "json"], now))
    assert rows[0]["cost"] == c.fmt_decimal(spend)
    # and the counter of the namespace equals the history's total for all time
    assert c.q_money(seen[-1]) == spend


def test_idle_spend_by_team_last_week_in_one_command():
    w = World()
    w.kube.put(node("a100"))
    p = pod("ml", "idle", {"nvidia.com/gpu": "1"}, "a100", T0, {"team": "vision"})
    w.kube.put(p)
    w.ledger.observe(p, 0.0, T0)
    w.ledger.observe(p, 0.0, T0 + dt.timedelta(hours=2))  # 2 idle GPU-hours
    now = T0 + dt.timedelta(hours=2)
    w.pass_(now)
    out = w.report(["--by", "team", "--since", "7d", "--idle"], now)
    assert out.splitlines()[0].split()[:4] == ["TEAM", "PODS", "IDLE", "GPU-HOURS"]
    assert re.match(r"vision\s+1\s+2\s+7\s+2\s+7\s+USD", out.splitlines()[1])


def test_report_refuses_without_the_operators_configuration(capsys):
    w = World()
    args = build_parser().parse_args(["report"])
    assert cli.run_report(args, now=T0, kube=w.kube) == 2
    assert "gpu-steward-cost-config" in capsys.readouterr().err


# ---- FOCUS 1.1 column rules for the columns we emit ------------------------------------------------
# Written from the FOCUS 1.1 specification's column definitions (the FOCUS_Spec repository's
# specification/columns/*.md): data type, whether nulls are allowed, allowed values.
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
RULES: dict[str, tuple[str, bool, tuple[str, ...] | None]] = {
    # column: (type, nullable, allowed values)
    "BillingAccountId": ("string", False, None), "BillingAccountName": ("string", False, None),
    "BillingPeriodStart": ("datetime", False, None), "BillingPeriodEnd": ("datetime", False, None),
    "ChargePeriodStart": ("datetime", False, None), "ChargePeriodEnd": ("datetime", False, None),
    "ChargeCategory": ("string", False, ("Usage", "Purchase", "Tax", "Credit", "Adjustment")),
    "ChargeClass": ("string", True, ("Correction",)),
    "ChargeDescription": ("string", True, None),
    "ChargeFrequency": ("string", True, ("One-Time", "Recurring", "Usage-Based")),
    "BilledCost": ("decimal", False, None), "EffectiveCost": ("decimal", False, None),
    "ListCost": ("decimal", False, None), "ContractedCost": ("decimal", False, None),
    "ListUnitPrice": ("decimal", True, None), "ContractedUnitPrice": ("decimal", True, None),
    "PricingCategory": ("string", True, ("Standard", "Dynamic", "Committed", "Other")),
    "PricingQuantity": ("decimal", True, None), "PricingUnit": ("string", True, None),
    "ConsumedQuantity": ("decimal", True, None), "ConsumedUnit": ("string", True, None),
    "CommitmentDiscountId": ("string", True, None),
    "ResourceId": ("string", True, None), "ResourceName": ("string", True, None),
    "ResourceType": ("string", True, None),
    "ServiceCategory": ("string", False, ("AI and Machine Learning", "Analytics", "Business Applications", "Compute",
                                         "Databases", "Developer Tools", "Multicloud", "Identity", "Integration",
                                         "Internet of Things", "Management and Governance", "Media", "Migration",
                                         "Mobile", "Networking", "Security", "Storage", "Web", "Other")),
    "ServiceSubcategory": ("string", True, ("Virtual Machines", "Serverless Compute", "Containers",
                                            "End User Computing", "Quantum Compute", "Other (Compute)")),
    "ServiceName": ("string", False, None), "SkuId": ("string", True, None), "SkuPriceId": ("string", True, None),
    "RegionId": ("string", True, None), "RegionName": ("string", True, None),
    "AvailabilityZone": ("string", True, None),
    "ProviderName": ("string", False, None), "PublisherName": ("string", False, None),
    "InvoiceIssuerName": ("string", False, None), "SubAccountId": ("string", True, None),
    "SubAccountName": ("string", True, None), "Tags": ("json", True, None), "BillingCurrency": ("string", False, None),
}


def check_focus(rows):
    for row in rows:
        for col, (typ, nullable, allowed) in RULES.items():
            v = row[col]
            if v == "":
                assert nullable, f"{col} must not be null"
                continue
            if typ == "datetime":
                assert ISO_Z.match(v), (col, v)
            elif typ == "decimal":
                assert DECIMAL.match(v), (col, v)
            elif typ == "json":
                assert isinstance(json.loads(v), dict), col
            if allowed is not None:
                assert v in allowed, (col, v)
        assert re.fullmatch(r"[A-Z]{3}", row["BillingCurrency"])
        assert row["ChargePeriodStart"] < row["ChargePeriodEnd"]
        assert row["BillingPeriodStart"] <= row["ChargePeriodStart"]
        assert row["ChargePeriodEnd"] <= row["BillingPeriodEnd"]
        # Usage rows: PricingCategory not null; quantities/units set; costs consistent with unit prices
        assert row["PricingCategory"] and row["PricingUnit"] and row["ConsumedUnit"]
        qty = Decimal(row["PricingQuantity"])
        assert abs(Decimal(row["ContractedCost"]) - Decimal(row["ContractedUnitPrice"]) * qty) <= Decimal("0.00001")
        assert abs(Decimal(row["ListCost"]) - Decimal(row["ListUnitPrice"]) * qty) <= Decimal("0.00001")
        if row["PricingCategory"] == "Committed":
            assert row["CommitmentDiscountId"]
        for col in row:
            assert col in RULES or col.startswith("x_"), f"{col} is neither FOCUS nor x_-prefixed"


def test_focus_export_follows_the_column_rules_and_is_not_an_invoice():
    w = World()
    w.kube.put(node("a100", **{"topology.kubernetes.io/region": "eu-west1",
                               "topology.kubernetes.io/zone": "eu-west1-b"}))
    w.kube.put(node("spot", **{"cloud.google.com/gke-spot": "true"}))
    w.kube.put(node("rsv", price="2.00", **{"gpusteward.dev/pricing-category": "Committed",
                                            "cloud.google.com/gke-nodepool": "reserved"}))
    w.kube.put(pod("ml", "a", {"nvidia.com/gpu": "1"}, "a100", T0 - dt.timedelta(days=1), {"team": "x"}))
    w.kube.put(pod("ml", "b", {"nvidia.com/mig-1g.10gb": "2"}, "spot", T0))
    w.kube.put(pod("ml", "c", {"nvidia.com/gpu": "1"}, "rsv", T0))
    now = T0 + dt.timedelta(hours=4)
    w.pass_(now)
    rows = w.export(["--from", "2026-03-01T00:00:00Z"], now)
    assert list(rows[0]) == list(FOCUS_COLUMNS)
    check_focus(rows)
    assert {r["BilledCost"] for r in rows} == {"0"}
    assert sum(Decimal(r["EffectiveCost"]) for r in rows) > 0
    by = {r["ResourceName"]: r for r in rows if r["x_Settled"] == "false"}
    assert by["ml/a"]["RegionId"] == "eu-west1" and by["ml/a"]["AvailabilityZone"] == "eu-west1-b"
    assert by["ml/b"]["PricingCategory"] == "Dynamic" and by["ml/c"]["PricingCategory"] == "Committed"
    assert by["ml/c"]["ListUnitPrice"] == "3.5" and by["ml/c"]["ContractedUnitPrice"] == "2"
    assert by["ml/b"]["SkuId"] == f"{A100}/nvidia.com/mig-1g.10gb"
    assert {r["ProviderName"] for r in rows} == {"Example Cloud"} and rows[0]["ServiceSubcategory"] == "Containers"
    assert h.days_between(T0, now) == ["20260309", "20260310"]


def test_idle_hours_and_util_average_come_from_the_operators_records_not_the_pod_annotations():
    w = World()
    w.kube.put(node("a100"))
    w.kube.put(pod("ml", "nb", {"nvidia.com/gpu": "2"}, "a100", T0 - dt.timedelta(hours=1), {"team": "vision"}))
    util = {"nb": 1.0}
    # The mirror refreshed every 10 minutes (not hourly): this test is about where its values come from.
    settings = SETTINGS.model_copy(update={"cost_annotation_refresh_seconds": 600.0})

    def pass_(now):
        pods = [o for (k, _, _), o in w.kube.objs.items() if k == "Pod"]
        reconcile_pod_costs(w.kube, settings, now, w.ledger, lambda _ns, name: util.get(name),
                            pods=copy.deepcopy(pods), history=w.history)

    for minutes in range(0, 61, 10):  # an hour at 1 %: 2 idle GPU-hours
        pass_(T0 + dt.timedelta(minutes=minutes))
    mirror = w.kube.get("v1", "Pod", "nb", "ml")["metadata"]["annotations"]
    assert mirror[c.ANN_IDLE_GPU_HOURS] == "2" and mirror[c.ANN_UTIL_AVG] == "1"
    # The owner zeroes the mirror; the operator restarts (a new ledger, the history read back from its ConfigMaps).
    w.kube.objs[("Pod", "ml", "nb")]["metadata"]["annotations"].update(
        {c.ANN_IDLE_GPU_HOURS: "0", c.ANN_UTIL_AVG: "99", c.ANN_UTIL_OBSERVED_HOURS: "1000"})
    w.ledger, w.history = CostLedger(), store.CostHistory(w.kube, "gpu-steward", seen_flush=dt.timedelta(0))
    util["nb"] = 3.0
    for minutes in range(70, 131, 10):  # the first sample after the restart only starts the clock
        pass_(T0 + dt.timedelta(minutes=minutes))
    [cur] = store.list_cursors(w.kube, "gpu-steward").values()
    # 1 h at 1 % and 1 h at 3 %, 2 GPUs
    assert c.q_hours(cur.util.idle_gpu_hours) == 4 and c.q_hours(cur.util.util_avg) == 2
    mirror = w.kube.get("v1", "Pod", "nb", "ml")["metadata"]["annotations"]
    assert mirror[c.ANN_IDLE_GPU_HOURS] == "4" and mirror[c.ANN_UTIL_AVG] == "2"  # the mirror is put back
    # A report in between reads the records: zeroing the mirror again hides nothing.
    w.kube.objs[("Pod", "ml", "nb")]["metadata"]["annotations"][c.ANN_IDLE_GPU_HOURS] = "0"
    now = T0 + dt.timedelta(minutes=131)
    rows = json.loads(w.report(["--from", "2026-03-09T00:00:00Z", "-o", "json"], now))
    assert rows[0]["idleGpuHours"] == "4"
    focus = w.export(["--from", "2026-03-09T00:00:00Z"], now)
    assert sum(Decimal(r["x_IdleGPUHours"]) for r in focus) == 4 and {r["x_GpuUtilAvg"] for r in focus} == {"2"}


def test_a_simulated_month_counter_delta_equals_report_and_budget_spend_across_a_restart():
    """March, passes every 3 h on an injected clock: Jobs start, finish and are garbage-collected, one pod is
    deleted while running, a team is relabelled, a node's price changes, and on the 15th the operator
    restarts (a new controller: fresh history view and ledger over the same records). The raw delta of the
    money counter over the month equals the report's total and the budget's spend, to the cent."""
    from gpu_steward.budgets.metrics import COLLECTOR

    w = World()
    w.kube.put({"kind": "Namespace", "metadata": {"name": "ml"}})
    w.kube.put(node("a100"))
    w.kube.put(node("spot", **{"karpenter.sh/capacity-type": "spot"}))
    start, end = dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    # running since February: the counter already holds its February cost when the month starts
    w.kube.put(pod("ml", "serve", {"nvidia.com/gpu": "1"}, "a100", start - dt.timedelta(days=3, hours=5),
                   {"team": "nlp"}))

    def counter():
        return sum((v[0] for k, v in COLLECTOR.counters.items() if k[0] == "ml"), Decimal(0))

    restarted = False
    t, step, n = start - dt.timedelta(hours=3), dt.timedelta(hours=3), 0
    counter_start = None
    while t <= end:
        hour = t.hour
        if t == start:
            w.pass_(t)
            counter_start = counter()
        if dt.datetime(2026, 3, 1, tzinfo=dt.UTC) <= t < end and hour in (3, 15):  # a Job pod starts
            n += 1
            res = ({"nvidia.com/gpu": "2"}, {"nvidia.com/mig-1g.10gb": "1"}, {"nvidia.com/gpu.shared": "1"})[n % 3]
            w.kube.put(pod("ml", f"job-{n}", res, "spot" if n % 4 == 0 else "a100", t - dt.timedelta(minutes=17),
                           {"team": "vision" if n % 2 else "nlp"}, job=f"job-{n}"))
        for (k, _, name), o in list(w.kube.objs.items()):
            if k != "Pod" or not name.startswith("job-"):
                continue
            began = c.parse_time(o["status"]["startTime"])
            if o["status"]["phase"] == "Running" and t - began >= dt.timedelta(hours=7, minutes=31):
                fin = began + dt.timedelta(hours=7, minutes=31)
                o["status"] = {"phase": "Succeeded", "startTime": o["status"]["startTime"],
                               "containerStatuses": [{"state": {"terminated": {"finishedAt": c.format_time(fin)}}}]}
            elif o["status"]["phase"] == "Succeeded" and t - began >= dt.timedelta(days=1, hours=1):
                w.kube.delete("Pod", name, "ml")  # the Job is garbage-collected
        if t == start + dt.timedelta(days=8, hours=9):
            assert w.kube.objs[("Pod", "ml", "job-17")]["status"]["phase"] == "Running"
            w.kube.delete("Pod", "job-17", "ml")  # deleted while it ran: settled up to when it was last seen
        if t == start + dt.timedelta(days=12):
            serve = w.kube.objs[("Pod", "ml", "serve")]
            serve["metadata"]["labels"]["team"] = "vision"  # relabelled: the open part is cut at this time
        if t == start + dt.timedelta(days=20, hours=9):
            w.kube.put(node("a100", price="4.20"))  # applies from now on
        if not restarted and t >= start + dt.timedelta(days=14, hours=13):
            w.history = store.CostHistory(w.kube, "gpu-steward", seen_flush=dt.timedelta(0))
            w.ledger = CostLedger()
            restarted = True
        if t != start:
            w.pass_(t)
        t += step
    now = end
    assert restarted and n > 50 and counter_start > 0
    delta = counter() - counter_start
    rows = json.loads(w.report(["--from", c.format_time(start), "--to", c.format_time(end), "-o", "json"], now))
    assert [r["namespace"] for r in rows] == ["ml"]
    pods = [o for (k, _, _), o in w.kube.objs.items() if k == "Pod"]
    spend = sum(history_costs(w.history, pods, Prices.load(w.kube, SETTINGS), SETTINGS, "ml", (start, end),
                              now).values(), Decimal(0))
    assert c.fmt_decimal(c.q_money(delta)) == rows[0]["cost"] == c.fmt_decimal(c.q_money(spend))
    by_team = json.loads(w.report(["--by", "team", "--from", c.format_time(start), "--to", c.format_time(end),
                                   "-o", "json"], now))
    assert {r["team"] for r in by_team} == {"nlp", "vision"}
    assert sum(Decimal(r["cost"]) for r in by_team) - Decimal(rows[0]["cost"]) in (Decimal(0), Decimal("0.01"),
                                                                                  Decimal("-0.01"))
    # the FOCUS export of the month sums to the same allocation
    focus = w.export(["--from", c.format_time(start), "--to", c.format_time(end)], now)
    assert c.fmt_decimal(c.q_money(sum(Decimal(r["EffectiveCost"]) for r in focus))) == rows[0]["cost"]
    assert {r["x_Workload"] for r in focus if r["x_WorkloadKind"] == "Job"} >= {"job-1", "job-17"}


def test_sharded_histories_write_their_own_configmaps_and_a_namespace_keeps_its_spend_when_shards_change():
    from gpu_steward.policy.shards import Shard

    kube = FakeKube()
    kube.put(node("a100"))
    shards = [Shard(i, 2) for i in (0, 1)]  # team-a -> shard 0, team-c -> shard 1
    histories = [store.CostHistory(kube, "gpu-steward", seen_flush=dt.timedelta(0), prefix=s.name(store.PREFIX),
                                   owns=s.owns) for s in shards]
    ledgers = [CostLedger(), CostLedger()]
    for ns in ("team-a", "team-c"):
        kube.put(pod(ns, f"train-{ns}", {"nvidia.com/gpu": "1"}, "a100", T0))
    for now in (T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=3)):  # past midnight: 22:00-24:00 settles
        for s, hist, ledger in zip(shards, histories, ledgers, strict=True):
            pods = [o for (k, ns, _), o in kube.objs.items() if k == "Pod" and s.owns(ns)]
            reconcile_pod_costs(kube, SETTINGS, now, ledger, pods=copy.deepcopy(pods), history=hist)
    # (the cost configuration, gpu-steward-cost-config, is one object: every shard publishes the same one)
    names = sorted(n for (k, _, n) in kube.objs if k == "ConfigMap" and n != "gpu-steward-cost-config")
    assert names and all(n.startswith(("gpusteward-cost-shard-0-", "gpusteward-cost-shard-1-")) for n in names)
    assert any("shard-0-2026" in n for n in names) and any("shard-1-2026" in n for n in names)
    day = (T0, T0 + dt.timedelta(days=1))
    # each shard counts its own namespace's spend ...
    for s, ns in zip(shards, ("team-a", "team-c"), strict=True):
        fresh = store.CostHistory(kube, "gpu-steward", prefix=s.name(store.PREFIX), owns=s.owns)
        fresh.load()
        assert sum(fresh.period_costs(ns, day).values()) == 7  # 22:00-24:00 at 3.50 an hour (A100)
        other = "team-c" if ns == "team-a" else "team-a"
        assert fresh.period_costs(other, day) == {} and all(c.terms["namespace"] == ns for c in fresh.cursors.values())
    # ... and back to one operator, nothing is lost: every shard's records count
    single = store.CostHistory(kube, "gpu-steward")
    single.load()
    assert sum(single.period_costs("team-a", day).values()) + sum(single.period_costs("team-c", day).values()) \
        == 14
    assert len(single.cursors) == 2
