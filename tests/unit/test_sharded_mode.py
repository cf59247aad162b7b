"""Sharded mode: namespaces split among shards, per-shard names and caps, and two shard controllers over one
in-memory cluster, each acting only in its own namespaces, with one writer for a shared policy's status."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections import Counter

import pytest
from idle_world import POLICY, T0, FakeKube, IdleSource, gpu_pod, job
from pydantic import ValidationError

from gpu_steward.cluster_view import WatchView
from gpu_steward.idle.controller import IdleController
from gpu_steward.index import Registry
from gpu_steward.kube_watch import ObjectCache
from gpu_steward.policy.shard_status import merge
from gpu_steward.policy.shards import Shard, shard_of
from gpu_steward.settings import Settings

PLATFORM = "gpu-steward"
# shard_of(…, 2): team-a -> 0, team-c -> 1, gpu-steward -> 0 (the policy's namespace: shard 0 writes its status)
NS0, NS1 = "team-a", "team-c"


def test_every_namespace_belongs_to_exactly_one_shard_and_the_split_is_even():
    names = [f"team-{i}" for i in range(4000)]
    shards = [Shard(i, 4) for i in range(4)]
    for ns in names:
        assert sum(s.owns(ns) for s in shards) == 1
    counts = Counter(shard_of(ns, 4) for ns in names)
    assert min(counts.values()) > 900  # ~1000 each
    assert shard_of(NS0, 2) == 0 and shard_of(NS1, 2) == 1 and shard_of(PLATFORM, 2) == 0
    assert Shard().owns("anything") and Shard().name("gpusteward-idle") == "gpusteward-idle"


def test_per_shard_names_and_caps_add_up_to_the_configured_figure():
    assert Shard(2, 4).name("gpu-steward-leader") == "gpu-steward-leader-shard-2"
    for count in (1, 3, 4, 7):
        for cap in (0, 7, 20, 100):
            assert sum(Shard(i, count).share(cap) for i in range(count)) == cap
    assert Shard(1, 4).share_rate(2.0) == 0.5
    with pytest.raises(ValueError, match="shard index"):
        Shard(4, 4)


def test_settings_refuse_a_shard_index_out_of_range_and_a_cap_some_shard_would_get_none_of():
    with pytest.raises(ValidationError, match="shard index"):
        Settings(shard_count=2, shard_index=2)
    with pytest.raises(ValidationError, match="suspensions_per_pass"):
        Settings(shard_count=8, shard_index=0, suspensions_per_pass=5)
    s = Settings(shard_count=4, shard_index=3, suspensions_per_hour=100, suspensions_per_pass=0)
    assert s.shard() == Shard(3, 4)


def test_the_index_and_the_workload_view_keep_only_the_shards_namespaces():
    reg = Registry(owns=Shard(0, 2).owns)
    for ns in (NS0, NS1):
        pod = gpu_pod(job(f"train-{ns}", namespace=ns, uid=f"uid-{ns}"))
        pod["metadata"]["namespace"] = ns
        pod["metadata"]["uid"] = f"pod-{ns}"
        reg.pod_event("ADDED", pod)
    assert [p.namespace for p in reg.pods()] == [NS0]

    view = WatchView(watches=None, owns=Shard(1, 2).owns)  # type: ignore[arg-type]
    cache = ObjectCache(view._workload)
    for ns in (NS0, NS1, None):
        meta = {"name": "w", "uid": f"u-{ns}", **({"namespace": ns} if ns else {})}
        cache.apply("ADDED", {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {}})
    kept = sorted((o["metadata"].get("namespace") or "-") for o in cache.items())
    assert kept == ["-", NS1]  # its namespace's workloads, and cluster-scoped objects


def test_merge_adds_counts_and_money_and_keeps_a_true_condition_from_any_shard():
    own = {"mode": "Enforcing", "currency": "USD", "watched": 3, "suspended": 1, "reclaimedCost": "1.50"}
    other = {"fields": {"mode": "Enforcing", "currency": "USD", "watched": 2, "suspended": 0,
                        "reclaimedCost": "2.25", "deferred": 4},
             "conditions": [["Degraded", "True", "CircuitBreakerOpen", "breaker open in shard 1"]]}
    fields, conditions = merge(own, [("Degraded", "False", "ChannelsAvailable", "ok")], [other])
    assert fields == {"mode": "Enforcing", "currency": "USD", "watched": 5, "suspended": 1,
                      "reclaimedCost": "3.75", "deferred": 4}
    assert conditions == [("Degraded", "True", "CircuitBreakerOpen", "breaker open in shard 1")]


# ---- two shard controllers over one cluster ------------------------------------------------------------


class Cluster:
    """One in-memory cluster, a policy in the platform namespace over NS0 and NS1, and one controller per
    shard, each fed the same pod events through its own (filtered) index."""

    def __init__(self) -> None:
        self.kube = FakeKube()
        self.policy = {"apiVersion": POLICY, "kind": "IdlePolicy",
                       "metadata": {"name": "idle", "namespace": PLATFORM, "uid": "uid-idle", "generation": 1},
                       "spec": {"selector": {"namespaces": [NS0, NS1]}, "idle": {"gpuUtilPercent": 5, "for": "5m"},
                                "notice": {"before": "15m", "maxSnooze": "1h", "channels": ["Event"]},
                                "dryRun": False}}
        self.kube.add(self.policy)
        for ns in (NS0, NS1, PLATFORM):
            self.kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, namespaced=False)
        self.kube.add({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1"}}, namespaced=False)
        self.source, self.now = IdleSource(), T0
        self.controllers, self.registries = [], []
        for index in (0, 1):
            settings = Settings(metrics_port=0, platform_namespace=PLATFORM, shard_count=2, shard_index=index,
                                suspensions_per_hour=100, suspensions_per_pass=20)
            reg = Registry(owns=settings.shard().owns)
            reg.policy_event("ADDED", self.policy)
            self.registries.append(reg)
            self.controllers.append(IdleController(self.kube, settings, self.source, reg,  # type: ignore[arg-type]
                                                   clock=lambda: self.now))
        self.jobs = {}
        for ns in (NS0, NS1):
            wl = self.kube.add(job("train", namespace=ns, uid=f"uid-job-{ns}"))
            pod = gpu_pod(wl)
            pod["metadata"].update(namespace=ns, uid=f"pod-{ns}")
            self.kube.add(pod)
            for reg in self.registries:
                reg.pod_event("ADDED", copy.deepcopy(pod))
            self.jobs[ns] = wl

    def passes(self, shards: tuple[int, ...], minutes: int) -> None:
        for _ in range(minutes):
            for i in shards:
                asyncio.run(self.controllers[i].run_pass(self.now))
            self.now += dt.timedelta(minutes=1)

    def suspended(self, ns: str) -> bool:
        return bool(self.kube.obj("batch/v1", "Job", "train", ns)["spec"].get("suspend"))

    def configmaps(self) -> list[str]:
        return sorted(name for (av, kind, ns, name) in self.kube.objects if (av, kind, ns) == ("v1", "ConfigMap",
                                                                                              PLATFORM))

    def status(self) -> dict:
        return self.kube.obj(POLICY, "IdlePolicy", "idle", PLATFORM).get("status") or {}


def test_each_shard_acts_only_in_its_own_namespaces_with_its_own_store_and_record():
    c = Cluster()
    c.passes((1,), 60)  # shard 1 alone: its namespace's job goes through warning and suspension
    assert c.suspended(NS1) and not c.suspended(NS0)
    assert not [e for e in c.kube.events if e["name"] == "train" and "team-a" in e["message"]]
    touched = {name for kind, name, _ in c.kube.patches if kind == "Job"}
    assert touched == {"train"} and all(c.kube.obj("batch/v1", "Job", "train", NS0)["spec"]["suspend"] is False
                                        for _ in (0,))
    # shard 1 never wrote the policy's status (shard 0 owns gpu-steward): it published its part instead
    assert not [p for p in c.kube.patches if p[0] == "IdlePolicy"]
    assert c.status() == {}

    c.passes((0,), 60)
    assert c.suspended(NS0)
    names = c.configmaps()
    assert any(n.startswith("gpusteward-idle-shard-0-") for n in names)
    assert any(n.startswith("gpusteward-idle-shard-1-") for n in names)
    assert not any(n.startswith("gpusteward-idle-0") for n in names)  # no unsharded store
    assert {"gpu-steward-blast-radius-shard-0", "gpu-steward-blast-radius-shard-1"} <= set(names)
    assert {"gpusteward-idle-report-shard-0", "gpusteward-idle-report-shard-1"} <= set(names)
    # the caps were split: 50 an hour each
    assert [ctl._limits().per_hour for ctl in c.controllers] == [50, 50]


def test_a_policy_spanning_shards_has_one_writer_and_counts_every_shards_workloads():
    c = Cluster()
    c.passes((0,), 1)  # only shard 0 has reported
    status = c.status()
    assert status["watched"] == 1
    ready = next(x for x in status["conditions"] if x["type"] == "Ready")
    assert "(1 of 2 shards reported)" in ready["message"]

    c.passes((1, 0), 1)  # shard 1 publishes, then shard 0 merges
    status = c.status()
    assert status["watched"] == 2
    ready = next(x for x in status["conditions"] if x["type"] == "Ready")
    assert ready["message"] == "2 GPU workloads watched"

    c.passes((1, 0), 60)
    assert c.suspended(NS0) and c.suspended(NS1)
    for ns in (NS0, NS1):  # the Job controller's part: a suspended Job's pods go
        for reg in c.registries:
            reg.pod_event("DELETED", {"metadata": {"uid": f"pod-{ns}", "namespace": ns}})
    c.passes((1, 0), 2)
    assert c.status()["suspended"] == 2 and c.status()["watched"] == 2
    # Steady, with both suspended: their reclaimed GPU-hours grow every minute, but the status's figures move
    # in steps of ten evaluation intervals (5 min here), so ten passes write the status at most twice.
    status_writes = sum(1 for p in c.kube.patches if p[0] == "IdlePolicy")
    c.passes((1, 0), 10)
    assert sum(1 for p in c.kube.patches if p[0] == "IdlePolicy") - status_writes <= 2


def test_another_shards_report_reaches_the_status_between_the_writers_passes():
    c = Cluster()
    c.passes((0,), 1)  # the writer's first pass: only its own part
    c.passes((1,), 1)  # then the other shard publishes
    assert c.status()["watched"] == 1
    writer = c.controllers[0].reports
    assert writer is not None and writer.merge_reported(c.now) == 1  # no pass of the writer needed
    status = c.status()
    assert status["watched"] == 2
    assert next(x for x in status["conditions"] if x["type"] == "Ready")["message"] == "2 GPU workloads watched"
    assert writer.merge_reported(c.now) == 0  # nothing changed since: nothing written
    assert c.controllers[1].reports.merge_reported(c.now) == 0  # not the writer of this policy
