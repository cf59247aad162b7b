"""Pod attribution through a fake kubelet speaking the real v1.PodResourcesLister gRPC API."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.agent_helpers import T0, UID_A, UID_B, make_agent, samples_of, summary_at
from fixtures.fake_nvml import FakeNvml, fake_nvml, fake_nvml_lib  # noqa: F401 - fixtures
from fixtures.fake_proc import write_proc
from fixtures.podresources import FakeKubelet, fake_kubelet, gpu_pod  # noqa: F401 - fixtures
from gpu_steward_agent.agent import Agent
from gpu_steward_agent.podresources import generate
from gpu_steward_agent.podresources.client import PodResourcesClient, PodResourcesUnavailable
from gpu_steward_testground import fakenvml

PREFIXES = ("nvidia.com/gpu", "nvidia.com/mig-")


def test_generated_stubs_match_the_proto() -> None:
    assert generate.stale_stubs() == []


def test_client_lists_gpu_assignments_only(fake_kubelet: FakeKubelet) -> None:  # noqa: F811
    fake_kubelet.set(
        [
            gpu_pod("ml", "train", ["GPU-1", "GPU-2"]),
            {
                "namespace": "ml",
                "name": "nic",
                "containers": [{"name": "c", "devices": [{"resource": "example.com/sriov", "ids": ["vf0"]}]}],
            },
            gpu_pod("ml", "mig", ["MIG-1"], resource="nvidia.com/mig-1g.10gb"),
            {"namespace": "kube-system", "name": "cpu-only", "containers": [{"name": "c"}]},
        ]
    )
    client = PodResourcesClient(str(fake_kubelet.socket_path), PREFIXES)
    try:
        got = client.list_assignments()
    finally:
        client.close()
    assert [(a.namespace, a.pod, a.container, a.resource, a.device_ids) for a in got] == [
        ("ml", "train", "main", "nvidia.com/gpu", ("GPU-1", "GPU-2")),
        ("ml", "mig", "main", "nvidia.com/mig-1g.10gb", ("MIG-1",)),
    ]


def test_client_reports_a_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(PodResourcesUnavailable) as err:
        PodResourcesClient(str(tmp_path / "absent.sock"), PREFIXES).list_assignments()
    assert err.value.kind == "NO_SOCKET"


@pytest.fixture
def kubelet_agent(fake_nvml: FakeNvml, fake_kubelet: FakeKubelet, tmp_path: Path):  # noqa: F811
    a = make_agent(fake_nvml.lib, tmp_path, socket=str(fake_kubelet.socket_path))
    yield a
    a.close()


def test_agent_attributes_gpus_to_the_right_pods(
    fake_nvml: FakeNvml,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    kubelet_agent: Agent,
    tmp_path: Path,
) -> None:
    gpus = [
        fakenvml.gpu(0, util=91, memUsed=30 * 2**30, processes=[{"pid": 100, "usedMemory": 30 * 2**30}]),
        fakenvml.gpu(1, util=3, memUsed=2**30),
        fakenvml.gpu(2, util=55),
        fakenvml.gpu(3, util=0),
    ]
    fake_nvml.write({"gpus": gpus})
    write_proc(tmp_path / "proc", {100: (UID_A, "a" * 64)})
    fake_kubelet.set(
        [
            gpu_pod("team-a", "trainer-0", [gpus[0]["uuid"]], container="pytorch"),
            gpu_pod("team-b", "notebook", ["1"]),  # device plugin with deviceIDStrategy=index
            gpu_pod("team-a", "eval", [gpus[2]["uuid"]]),
        ]
    )
    kubelet_agent.sample_once(T0)
    kubelet_agent.sample_once(T0 + 1)

    s = summary_at(kubelet_agent, T0 + 1)
    assert s["attributionSource"] == "podresources"
    pods = {(p["namespace"], p["name"]): p for p in s["pods"]}
    assert set(pods) == {("team-a", "trainer-0"), ("team-b", "notebook"), ("team-a", "eval")}
    trainer = pods[("team-a", "trainer-0")]
    assert trainer["container"] == "pytorch" and trainer["uid"] == UID_A  # UID added from the process cgroup
    assert trainer["gpus"] == [gpus[0]["uuid"]] and trainer["util"] == {"mean": 91.0, "max": 91.0}
    assert trainer["memUsedBytes"] == 30 * 2**30 and trainer["samples"] == 2
    assert pods[("team-b", "notebook")]["gpus"] == [gpus[1]["uuid"]]
    assert pods[("team-b", "notebook")]["util"]["max"] == 3.0
    holders = {g["index"]: [(p["namespace"], p["name"]) for p in g["pods"]] for g in s["gpus"]}
    assert holders == {0: [("team-a", "trainer-0")], 1: [("team-b", "notebook")], 2: [("team-a", "eval")], 3: []}

    util = {lbl["gpu"]: lbl for lbl, _ in samples_of(kubelet_agent, "DCGM_FI_DEV_GPU_UTIL")}
    assert (util["0"]["namespace"], util["0"]["pod"], util["0"]["container"]) == ("team-a", "trainer-0", "pytorch")
    assert (util["1"]["namespace"], util["1"]["pod"]) == ("team-b", "notebook")
    assert util["3"]["pod"] == ""


def test_time_sliced_gpu_is_split_per_process_then_marked_shared_without_process_data(
    fake_nvml: FakeNvml,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    kubelet_agent: Agent,
    tmp_path: Path,
) -> None:
    write_proc(tmp_path / "proc", {100: (UID_A, "a" * 64), 200: (UID_B, "b" * 64)})
    uuid = fakenvml.gpu(0)["uuid"]
    # Round 1: each pod alone on its own time-sliced replica set teaches the agent which UID is which pod.
    fake_kubelet.set([gpu_pod("ml", "a", [f"{uuid}::0"]), gpu_pod("ml", "b", [f"{fakenvml.gpu(1)['uuid']}::0"])])
    fake_nvml.write(
        {
            "gpus": [
                fakenvml.gpu(0, util=10, processes=[{"pid": 100, "usedMemory": 100, "smUtil": 10}]),
                fakenvml.gpu(1, util=10, processes=[{"pid": 200, "usedMemory": 100, "smUtil": 10}]),
            ]
        }
    )
    kubelet_agent.sample_once(T0)
    # Round 2: both on GPU 0 (replicas ::0 and ::1), per-process utilization available.
    fake_kubelet.set([gpu_pod("ml", "a", [f"{uuid}::0"]), gpu_pod("ml", "b", [f"{uuid}::1"])])
    procs = [{"pid": 100, "usedMemory": 3000, "smUtil": 70}, {"pid": 200, "usedMemory": 1000, "smUtil": 5}]
    fake_nvml.write({"gpus": [fakenvml.gpu(0, util=75, processes=procs), fakenvml.gpu(1)]})
    kubelet_agent.sample_once(T0 + 1)
    with kubelet_agent.lock:
        latest = {(s.holder.pod): s for s in kubelet_agent.latest_samples}
    assert (latest["a"].util, latest["a"].mem_used, latest["a"].attribution) == (70.0, 3000, "process")
    assert (latest["b"].util, latest["b"].mem_used, latest["b"].attribution) == (5.0, 1000, "process")
    assert latest["a"].holder.uid == UID_A and latest["b"].holder.uid == UID_B
    # The DCGM device series is not labelled with either pod (it would be counted twice).
    [(labels, value)] = [x for x in samples_of(kubelet_agent, "DCGM_FI_DEV_GPU_UTIL") if x[0]["gpu"] == "0"]
    assert labels["pod"] == "" and value == 75.0
    pod_util = {lbl["pod"]: v for lbl, v in samples_of(kubelet_agent, "gpu_steward_agent_pod_gpu_util_percent")}
    assert pod_util == {"a": 70.0, "b": 5.0}

    # Round 3: MPS-like, no per-process utilization: marked shared, never the device value.
    fake_nvml.write({"gpus": [fakenvml.gpu(0, util=75, processes=procs, processUtil=False), fakenvml.gpu(1)]})
    kubelet_agent.sample_once(T0 + 2)
    with kubelet_agent.lock:
        latest = {(s.holder.pod): s for s in kubelet_agent.latest_samples}
    assert latest["a"].shared and latest["a"].util is None and latest["a"].mem_used == 3000
    assert latest["b"].shared and latest["b"].util is None
    pods = {p["name"]: p for p in summary_at(kubelet_agent, T0 + 2)["pods"]}
    assert pods["b"]["shared"] is True and pods["b"]["utilSamples"] == 2 and pods["b"]["samples"] == 3
    assert pods["b"]["util"]["max"] == 10.0  # from rounds 1 and 2, never 75


def test_without_the_kubelet_socket_the_cgroup_fallback_attributes(
    fake_nvml: FakeNvml,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    kubelet_agent: Agent,
    tmp_path: Path,
) -> None:
    uuid = fakenvml.gpu(0)["uuid"]
    fake_kubelet.set([gpu_pod("ml", "a", [uuid])])
    write_proc(tmp_path / "proc", {100: (UID_A, "a" * 64)}, driver="cgroupfs")
    fake_nvml.write({"gpus": [fakenvml.gpu(0, util=42, processes=[{"pid": 100, "usedMemory": 1, "smUtil": 42}])]})
    kubelet_agent.sample_once(T0)
    assert summary_at(kubelet_agent, T0)["attributionSource"] == "podresources"
    fake_kubelet.stop()
    fake_kubelet.socket_path.unlink(missing_ok=True)  # the kubelet is gone and so is its socket
    kubelet_agent.sample_once(T0 + 1)
    s = summary_at(kubelet_agent, T0 + 1)
    assert s["attributionSource"] == "cgroup"
    pods = {(p["name"], p["uid"]): p for p in s["pods"]}
    assert pods[("", UID_A)]["util"]["max"] == 42.0  # known by UID only now
    assert pods[("a", UID_A)]["lastSampleAt"] < pods[("", UID_A)]["lastSampleAt"]


def test_a_broken_socket_is_counted_and_falls_back(fake_nvml: FakeNvml, tmp_path: Path) -> None:  # noqa: F811
    bogus = tmp_path / "kubelet.sock"
    bogus.write_text("not a socket")
    agent: Agent = make_agent(fake_nvml.lib, tmp_path, socket=str(bogus))
    agent.podresources.timeout_s = 2.0
    try:
        fake_nvml.write({"gpus": [fakenvml.gpu(0)]})
        agent.sample_once(T0)
        assert agent.attribution_source == "cgroup" and agent.ready()
        errs = samples_of(agent, "gpu_steward_agent_source_errors_total")
        assert [(lbl["source"], v) for lbl, v in errs] == [("podresources", 1.0)]
        assert errs[0][0]["kind"] == "CONNECT_FAILED"
    finally:
        agent.close()
