"""The evaluation pass in-process on the real control plane: a steady cluster costs zero API writes,
and a policy the schema admitted but the operator cannot use is marked Invalid, not fatal."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from fixtures.idle_env import REPO, job, policy
from gpu_steward.idle.controller import IdleController
from gpu_steward.index import Registry
from gpu_steward.kube import Kube
from gpu_steward.settings import Settings
from gpu_steward.sources.factory import make_source
from gpu_steward_testground.deviceplugin import DevicePluginLoop
from gpu_steward_testground.gpunode import SimulatedGpuNode
from gpu_steward_testground.processes import wait_for
from gpu_steward_testground.runner import ControlPlane

pytestmark = pytest.mark.cluster
NODE, NS = "steady-gpu", "idle-steady"


@pytest.fixture(scope="module")
def node(cluster: ControlPlane) -> Iterator[SimulatedGpuNode]:
    cluster.apply_crds(*sorted((REPO / "crds").glob("*.yaml")))
    cluster.add_gpu_node(NODE, gpus=8)
    sim = SimulatedGpuNode(NODE, gpus=8, window_seconds=5).start()
    plugin = DevicePluginLoop(cluster.api_client(), [sim]).start()
    try:
        yield sim
    finally:
        plugin.stop()
        sim.stop()


def _registry(kube: Kube) -> Registry:
    reg = Registry()
    for pod in kube.list("v1", "Pod", NS):
        reg.pod_event("ADDED", pod)
    for pol in kube.list("gpusteward.dev/v1alpha1", "IdlePolicy", NS):
        reg.policy_event("ADDED", pol)
    return reg


def test_busy_workloads_cost_no_writes_and_a_bad_policy_is_marked_invalid(cluster: ControlPlane,
                                                                         node: SimulatedGpuNode) -> None:
    cluster.create_namespace(NS)
    for name in ("busy-a", "busy-b", "busy-c"):
        cluster.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(job(name, NODE)))
        node.set_util(NS, name, 70)
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(policy("busy", before="1m")))
    # Admitted by the schema, unusable by the operator: an unknown time zone.
    bad = policy("bad-zone", extra={"schedule": {"timeZone": "Mars/Olympus_Mons",
                                                 "windows": [{"cron": "0 9 * * 1-5", "duration": "8h"}]}})
    cluster.kubectl("apply", "-n", NS, "-f", "-", input=yaml.safe_dump(bad))
    kube = Kube(cluster.api_client())
    wait_for(lambda: len([p for p in kube.list("v1", "Pod", NS) if p["status"].get("phase") == "Running"]) == 3,
             what="three Running GPU pods")
    settings = Settings(agent_endpoints={NODE: node.url}, sample_max_age_seconds=30, metrics_port=0)
    wait_for(lambda: len(_attributed(node.url)) == 3, what="the agent to attribute the three pods")

    async def passes() -> list[int]:
        source = make_source(kube, settings)
        controller = IdleController(kube, settings, source, _registry(kube))
        writes = []
        try:
            for _ in range(3):
                before = kube.writes.count
                result = await controller.run_pass()
                # The three Jobs this namespace's policy governs (the pass also looks after workloads other
                # tests on this shared cluster left suspended by us: they stay resumable).
                assert result.decisions_by_policy[(NS, "busy")] == 3, result.decisions_by_policy
                writes.append(kube.writes.count - before)
                controller.registry = _registry(kube)  # what the watch would have delivered meanwhile
        finally:
            await source.close()
        return writes

    writes = asyncio.run(passes())
    assert writes[1:] == [0, 0], writes  # the first pass writes the policies' status; then nothing
    for name in ("busy-a", "busy-b", "busy-c"):  # busy workloads are never annotated
        ann = kube.get("batch/v1", "Job", name, NS)["metadata"].get("annotations") or {}
        assert "gpusteward.dev/idle-state" not in ann
    status = kube.get("gpusteward.dev/v1alpha1", "IdlePolicy", "busy", NS)["status"]
    assert status["watched"] == 3 and status["idle"] == 0 and status["mode"] == "Enforcing"
    assert status["active"] == 3, status  # measured busy, not merely unknown
    bad_status = kube.get("gpusteward.dev/v1alpha1", "IdlePolicy", "bad-zone", NS)["status"]
    invalid = next(c for c in bad_status["conditions"] if c["type"] == "Invalid")
    assert invalid["status"] == "True" and "timeZone" in invalid["message"], invalid


def _attributed(url: str) -> set[str]:
    """Names of this namespace's pods the agent's summary has samples for."""
    with urllib.request.urlopen(url + "/v1/summary", timeout=5) as resp:
        summary = json.loads(resp.read().decode())
    return {p["name"] for p in summary.get("pods") or [] if p.get("namespace") == NS and p.get("samples")}

