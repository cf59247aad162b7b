"""Cost history on the real control plane with the operator as a process: a Job's cost is still reported
after the Job and its pods are deleted, a node deleted mid-period keeps its price, and MIG slices and
time-sliced replicas of a simulated A100 (3.50/GPU-hour) reach the pods' cost annotations at their share."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
import yaml

from fixtures.budget_cluster import (
    gpu_job,
    install_crds,
    kubectl,
    new_namespace,
    start_operator,
    stop_operator,
    wait_for,
)
from gpu_steward.cli import build_parser
from gpu_steward.kube import Kube
from gpu_steward.policy import cost as c
from gpu_steward.reports import cli
from gpu_steward_testground.build import RUN_FOREVER_ANNOTATION
from gpu_steward_testground.runner import gpu_node

pytestmark = pytest.mark.cluster
A100 = "NVIDIA-A100-SXM4-80GB"
MIG_NODE, TS_NODE, DOOMED_NODE = "gpu-cost-a100-mig", "gpu-cost-a100-ts", "gpu-cost-a100-doomed"


def add_node(cluster, name, labels=None, extra=None):
    node = gpu_node(name, 8, A100, labels)
    for key in ("capacity", "allocatable"):
        node["status"][key].update(extra or {})
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(node))
    cluster.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")


def pod(ns, name, node, resources, labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {},
                         "annotations": {RUN_FOREVER_ANNOTATION: "true"}},
            "spec": {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
                     "nodeSelector": {"kubernetes.io/hostname": node},
                     "containers": [{"name": "main", "image": "busybox", "resources": {"limits": resources}}]}}


def annotations(kube, ns, name):
    p = kube.get("v1", "Pod", name, ns)
    return ((p or {}).get("metadata") or {}).get("annotations") or {}


def run(fn, argv, kube, capsys):
    capsys.readouterr()
    assert fn(build_parser().parse_args(argv), kube=kube) == 0
    return capsys.readouterr().out


def test_history_outlives_jobs_and_nodes_and_shares_are_priced(cluster, tmp_path, capsys):
    install_crds(cluster)
    add_node(cluster, MIG_NODE, extra={"nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-3g.40gb": "2"})
    add_node(cluster, TS_NODE, labels={"nvidia.com/gpu.replicas": "4"})
    add_node(cluster, DOOMED_NODE, labels={"gpusteward.dev/gpu-hour-price": "9.00"})
    kube = Kube(cluster.api_client())
    ns = new_namespace(cluster, "costhist")
    kube.create(pod(ns, "mig1", MIG_NODE, {"nvidia.com/mig-1g.10gb": "1"}), dry_run=False)
    kube.create(pod(ns, "mig3", MIG_NODE, {"nvidia.com/mig-3g.40gb": "1"}), dry_run=False)
    kube.create(pod(ns, "shared", TS_NODE, {"nvidia.com/gpu": "1"}), dry_run=False)
    kube.create(pod(ns, "on-doomed", DOOMED_NODE, {"nvidia.com/gpu": "1"}, {"team": "vision"}), dry_run=False)
    job = gpu_job(ns, "train", 2, {"team": "nlp"})
    job["spec"]["template"]["metadata"]["annotations"] = {RUN_FOREVER_ANNOTATION: "true"}
    job["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": MIG_NODE}
    kube.create(job, dry_run=False)
    env = {"namespaces": json.dumps([ns]), "evaluation_interval_seconds": "1",
           "cost_annotation_min_interval_seconds": "1", "gpu_hour_prices": json.dumps({A100: "3.50"})}
    proc = start_operator(cluster, tmp_path / "operator.log", **env)
    try:
        # MIG slices and a time-sliced replica at their share of 3.50/GPU-hour, on the pods' annotations
        for name, rate in (("mig1", "0.5"), ("mig3", "1.5"), ("shared", "0.875"), ("on-doomed", "9")):
            wait_for(lambda n=name, r=rate: annotations(kube, ns, n).get(c.ANN_HOURLY_RATE) == r, 60,
                     what=f"{name} priced at {rate}/h")
        job_pod = wait_for(lambda: next(iter(kube.list("v1", "Pod", ns, label_selector="job-name=train")), None), 60,
                           what="the Job's pod")["metadata"]["name"]
        wait_for(lambda: Decimal(annotations(kube, ns, job_pod).get(c.ANN_COST) or "0") > 0, 60,
                 what="the Job's pod accruing cost")
        wait_for(lambda: Decimal(annotations(kube, ns, "on-doomed").get(c.ANN_COST) or "0") > 0, 60,
                 what="the doomed node's pod accruing cost")
        # the node goes away, and its pod with it; the Job and its pods are deleted
        kubectl(cluster, "delete", "node", DOOMED_NODE, "--wait=true")
        kubectl(cluster, "-n", ns, "delete", "pod", "on-doomed", "--grace-period=0", "--force", check=False)
        kubectl(cluster, "-n", ns, "delete", "job", "train", "--cascade=foreground", "--wait=true")
        wait_for(lambda: not kube.list("v1", "Pod", ns, label_selector="job-name=train")
                 and kube.get("v1", "Pod", "on-doomed", ns) is None, 60, what="the pods gone")

        def settled():  # both gone pods are in the history (not open parts any more)
            text = run(cli.run_export, ["export", "-n", ns, "--since", "1d"], kube, capsys)
            rows = list(csv.DictReader(io.StringIO(text)))
            gone = [r for r in rows if r["x_Workload"] == "train" or r["ResourceName"] == f"{ns}/on-doomed"]
            return rows if gone and all(r["x_Settled"] == "true" for r in gone) else None

        rows = wait_for(settled, 60, what="the deleted pods settled")
        train = [r for r in rows if r["x_Workload"] == "train"]
        assert train and {r["x_WorkloadKind"] for r in train} == {"Job"}
        assert all(r["ContractedUnitPrice"] == "3.5" and r["x_GPUs"] == "2" for r in train)
        assert sum(Decimal(r["EffectiveCost"]) for r in train) > 0
        doomed = [r for r in rows if r["ResourceName"] == f"{ns}/on-doomed"]
        assert doomed and all(r["ContractedUnitPrice"] == "9" and r["x_PriceSource"] == "node"
                              and r["x_Node"] == DOOMED_NODE for r in doomed)
        shares = {r["ResourceName"].split("/")[1]: r for r in rows}
        assert shares["mig1"]["ContractedUnitPrice"] == "3.5" and shares["mig1"]["x_GpuResources"].startswith(
            "nvidia.com/mig-1g.10gb")
        # the report still counts them, by team, from the history
        report = json.loads(run(cli.run_report, ["report", "-n", ns, "--by", "team", "--since", "1d", "-o", "json"],
                                kube, capsys))
        by_team = {r["team"]: r for r in report}
        assert Decimal(by_team["nlp"]["cost"]) > 0 and Decimal(by_team["vision"]["cost"]) > 0
        assert proc.alive()
    finally:
        stop_operator(proc)
        kubectl(cluster, "delete", "node", MIG_NODE, TS_NODE, "--ignore-not-found", check=False)
