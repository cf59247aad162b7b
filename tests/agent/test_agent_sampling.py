"""The agent end to end in-process against the fake NVML: rounds are driven with explicit timestamps."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from fixtures.agent_helpers import T0, UID_A, UID_B, make_agent, samples_of, summary_at
from fixtures.fake_nvml import FakeNvml, fake_nvml, fake_nvml_lib  # noqa: F401 - fixtures
from fixtures.fake_proc import write_proc
from fixtures.podresources import FakeKubelet, gpu_pod
from gpu_steward_agent import summary
from gpu_steward_agent.agent import Agent
from gpu_steward_testground import fakenvml


@pytest.fixture
def agent(fake_nvml: FakeNvml, tmp_path: Path):  # noqa: F811 - the fixture above
    a = make_agent(fake_nvml.lib, tmp_path)
    yield a
    a.close()


def test_several_gpus_windowed_statistics_match_what_was_written(fake_nvml: FakeNvml, agent: Agent) -> None:  # noqa: F811
    series = {0: [10, 30, 50, 70], 1: [0, 0, 100, 0], 2: [5, 5, 5, 5]}
    for step in range(4):
        gpus = [fakenvml.gpu(i, util=series[i][step], memUsed=(step + 1) * 2**30) for i in range(3)]
        fake_nvml.write({"gpus": gpus})
        agent.sample_once(T0 + 20 * step)  # T0, +20, +40, +60

    s = summary_at(agent, T0 + 60)
    assert s["apiVersion"] == "gpusteward.dev/agent-v1"
    assert s["node"] == "node-a" and s["windowSeconds"] == 60.0
    g = {x["index"]: x for x in s["gpus"]}
    assert g[0]["util"] == {"mean": 40.0, "max": 70.0}
    assert g[1]["util"] == {"mean": 25.0, "max": 100.0}
    assert g[2]["util"] == {"mean": 5.0, "max": 5.0}
    assert g[0]["samples"] == 4 and g[0]["status"] == "ok"
    assert g[0]["memUsedBytes"] == 4 * 2**30 and g[0]["memTotalBytes"] == 80 * 2**30
    assert g[0]["lastSampleAt"] == summary.iso(T0 + 60)
    # Rounds 20 s apart at a 1 s interval: each pause breaks the coverage, so only the latest sample is
    # vouched for — the summary never claims the whole 60 s window.
    assert (g[0]["coveredFrom"], g[0]["coveredSeconds"]) == (summary.iso(T0 + 60), 0.0)

    # 70 s on, the window (60 s) holds only the samples at +20, +40, +60 ... and the new one at +70.
    fake_nvml.write({"gpus": [fakenvml.gpu(i, util=90) for i in range(3)]})
    agent.sample_once(T0 + 70)
    g = {x["index"]: x for x in summary_at(agent, T0 + 70)["gpus"]}
    assert g[0]["samples"] == 4
    assert g[0]["util"] == {"mean": pytest.approx((30 + 50 + 70 + 90) / 4), "max": 90.0}


def test_processes_appearing_and_leaving_through_cgroups(fake_nvml: FakeNvml, agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    write_proc(tmp_path / "proc", {100: (UID_A, "a" * 64), 200: (UID_B, "b" * 64)})
    gpu0 = fakenvml.gpu(0, util=0)
    fake_nvml.write({"gpus": [gpu0]})
    agent.sample_once(T0)
    assert summary_at(agent, T0)["pods"] == []

    gpu0.update(util=80, memUsed=5 * 2**30, processes=[{"pid": 100, "usedMemory": 4 * 2**30, "smUtil": 80}])
    fake_nvml.write({"gpus": [gpu0]})
    agent.sample_once(T0 + 1)
    agent.sample_once(T0 + 2)
    [pod] = summary_at(agent, T0 + 2)["pods"]
    assert pod["uid"] == UID_A and pod["name"] == ""  # the cgroup fallback knows the UID only
    assert pod["util"] == {"mean": 80.0, "max": 80.0} and pod["samples"] == 2
    assert pod["attribution"] == "device" and pod["shared"] is False
    assert summary_at(agent, T0 + 2)["attributionSource"] == "cgroup"

    # B joins A on the same GPU: per-process figures split it.
    gpu0["processes"] = [
        {"pid": 100, "usedMemory": 2**30, "smUtil": 60},
        {"pid": 200, "usedMemory": 2**30, "smUtil": 15},
    ]
    gpu0["util"] = 75
    fake_nvml.write({"gpus": [gpu0]})
    agent.sample_once(T0 + 3)
    pods = {p["uid"]: p for p in summary_at(agent, T0 + 3)["pods"]}
    assert pods[UID_B]["util"] == {"mean": 15.0, "max": 15.0} and pods[UID_B]["attribution"] == "process"
    assert pods[UID_A]["util"]["max"] == 80.0 and pods[UID_A]["samples"] == 3

    # Both leave: their entries stay until their samples age out of the window.
    gpu0.update(util=0, processes=[])
    fake_nvml.write({"gpus": [gpu0]})
    agent.sample_once(T0 + 4)
    pods = {p["uid"]: p for p in summary_at(agent, T0 + 4)["pods"]}
    assert pods[UID_B]["lastSampleAt"] == summary.iso(T0 + 3)
    agent.sample_once(T0 + 64)
    assert summary_at(agent, T0 + 64)["pods"] == []


def test_error_on_one_gpu_marks_it_unknown_counts_it_and_keeps_sampling(fake_nvml: FakeNvml, agent: Agent) -> None:  # noqa: F811
    gpus = [fakenvml.gpu(i, util=20 * (i + 1)) for i in range(3)]
    fake_nvml.write({"gpus": gpus})
    agent.sample_once(T0)
    gpus[1]["error"] = "GPU_IS_LOST"
    gpus[2]["util"] = 99
    fake_nvml.write({"gpus": gpus})
    agent.sample_once(T0 + 1)
    agent.sample_once(T0 + 2)

    s = summary_at(agent, T0 + 2)
    g = {x["index"]: x for x in s["gpus"]}
    assert g[1]["status"] == "unknown" and g[1]["error"] == "GPU_IS_LOST"
    assert g[1]["uuid"] == gpus[1]["uuid"]  # remembered from the round before it was lost
    assert g[1]["util"] == {"mean": 40.0, "max": 40.0} and g[1]["samples"] == 3  # only the good sample has util
    assert g[2]["status"] == "ok" and g[2]["util"]["max"] == 99.0
    assert agent.ready()

    errors = samples_of(agent, "gpu_steward_agent_nvml_errors_total")
    assert [(lbl["gpu"], lbl["UUID"], lbl["kind"], v) for lbl, v in errors] == [
        ("1", gpus[1]["uuid"], "GPU_IS_LOST", 2.0)
    ]
    up = {lbl["gpu"]: v for lbl, v in samples_of(agent, "gpu_steward_agent_gpu_up")}
    assert up == {"0": 1.0, "1": 0.0, "2": 1.0}
    assert "1" not in {lbl["gpu"] for lbl, _ in samples_of(agent, "DCGM_FI_DEV_GPU_UTIL")}  # no stale value

    del gpus[1]["error"]
    fake_nvml.write({"gpus": gpus})
    agent.sample_once(T0 + 3)
    assert {x["index"]: x["status"] for x in summary_at(agent, T0 + 3)["gpus"]} == {0: "ok", 1: "ok", 2: "ok"}


def test_driver_mismatch_at_init_leaves_the_agent_running_and_not_ready(fake_nvml: FakeNvml, agent: Agent) -> None:  # noqa: F811
    fake_nvml.write({"initError": "LIB_RM_VERSION_MISMATCH", "gpus": [fakenvml.gpu(0)]})
    agent.sample_once(T0)
    agent.sample_once(T0 + 1)
    assert not agent.ready()
    assert agent.healthy(T0 + 1)
    src = {(lbl["source"], lbl["kind"]): v for lbl, v in samples_of(agent, "gpu_steward_agent_source_errors_total")}
    assert src == {("nvml", "LIB_RM_VERSION_MISMATCH"): 2.0}
    assert summary_at(agent, T0 + 1)["nvml"]["status"] == "unavailable"

    fake_nvml.write({"gpus": [fakenvml.gpu(0, util=12)]})
    agent.sample_once(T0 + 2)
    assert agent.ready()
    assert summary_at(agent, T0 + 2)["gpus"][0]["util"]["max"] == 12.0


def test_mig_instances_are_listed_with_their_memory(fake_nvml: FakeNvml, agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    migs = [
        {
            "uuid": "MIG-aaaaaaaa-0000-4000-8000-000000000001",
            "name": "1g.10gb",
            "gpuInstanceId": 1,
            "computeInstanceId": 0,
            "memTotal": 10 * 2**30,
            "memUsed": 3 * 2**30,
        },
        {
            "uuid": "MIG-aaaaaaaa-0000-4000-8000-000000000002",
            "name": "1g.10gb",
            "gpuInstanceId": 2,
            "computeInstanceId": 0,
            "memTotal": 10 * 2**30,
            "memUsed": 0,
        },
    ]
    write_proc(tmp_path / "proc", {100: (UID_A, "a" * 64)})
    procs = [{"pid": 100, "usedMemory": 3 * 2**30, "gpuInstanceId": 1, "computeInstanceId": 0}]
    fake_nvml.write({"gpus": [fakenvml.gpu(0, mig=migs, processes=procs), fakenvml.gpu(1, util=50)]})
    agent.sample_once(T0)
    s = summary_at(agent, T0)
    g0 = s["gpus"][0]
    assert [(m["uuid"], m["gpuInstanceId"], m["memUsedBytes"]) for m in g0["mig"]] == [
        (migs[0]["uuid"], 1, 3 * 2**30),
        (migs[1]["uuid"], 2, 0),
    ]
    [pod] = s["pods"]  # the cgroup fallback finds the process in MIG instance 1
    assert pod["uid"] == UID_A and pod["gpus"] == [migs[0]["uuid"]]
    assert pod["memUsedBytes"] == 3 * 2**30 and pod["util"] == {"mean": None, "max": None}
    fb = {lbl["GPU_I_ID"]: v for lbl, v in samples_of(agent, "DCGM_FI_DEV_FB_USED") if lbl["gpu"] == "0"}
    assert fb == {"1": 3072.0, "2": 0.0}


def test_a_gpu_that_disappears_becomes_unknown(fake_nvml: FakeNvml, agent: Agent) -> None:  # noqa: F811
    gpus = [fakenvml.gpu(0, util=10), fakenvml.gpu(1, util=20)]
    fake_nvml.write({"gpus": gpus})
    agent.sample_once(T0)
    fake_nvml.write({"gpus": gpus[:1]})
    agent.sample_once(T0 + 1)
    g = {x["index"]: x for x in summary_at(agent, T0 + 1)["gpus"]}
    assert g[0]["status"] == "ok"
    assert (g[1]["status"], g[1]["error"], g[1]["samples"]) == ("unknown", "GPU_NOT_FOUND", 1)


def test_pods_turn_unknown_while_nvml_is_down(fake_nvml: FakeNvml, agent: Agent, tmp_path: Path) -> None:  # noqa: F811
    write_proc(tmp_path / "proc", {100: (UID_A, "a" * 64)})
    fake_nvml.write({"gpus": [fakenvml.gpu(0, util=50, processes=[{"pid": 100, "usedMemory": 1, "smUtil": 50}])]})
    agent.sample_once(T0)
    assert summary_at(agent, T0)["pods"][0]["status"] == "ok"
    agent.reader.shutdown()  # as after a driver reload: the next init fails
    fake_nvml.write({"initError": "DRIVER_NOT_LOADED", "gpus": []})
    agent.sample_once(T0 + 1)
    s = summary_at(agent, T0 + 1)
    assert s["pods"][0]["status"] == "unknown" and s["gpus"][0]["status"] == "unknown"
    assert s["gpus"][0]["error"] == "DRIVER_NOT_LOADED"


def test_one_series_per_container_across_idle_and_busy_rounds(
    fake_nvml: FakeNvml,  # noqa: F811
    tmp_path: Path,
) -> None:

    folder = Path(tempfile.mkdtemp(prefix="kl-"))
    kubelet = FakeKubelet(folder / "kubelet.sock").start()
    agent = make_agent(fake_nvml.lib, tmp_path, socket=str(kubelet.socket_path))
    try:
        write_proc(tmp_path / "proc", {100: (UID_A, "a" * 64)})
        uuid = fakenvml.gpu(0)["uuid"]
        kubelet.set([gpu_pod("ml", "notebook", [uuid])])
        fake_nvml.write({"gpus": [fakenvml.gpu(0, util=0)]})  # idle: no process, the UID is not known yet
        agent.sample_once(T0)
        fake_nvml.write({"gpus": [fakenvml.gpu(0, util=80, processes=[{"pid": 100, "usedMemory": 1}])]})
        agent.sample_once(T0 + 1)
        fake_nvml.write({"gpus": [fakenvml.gpu(0, util=0)]})
        agent.sample_once(T0 + 2)
        [pod] = summary_at(agent, T0 + 2)["pods"]
        assert (pod["name"], pod["uid"], pod["samples"]) == ("notebook", UID_A, 3)
        assert pod["util"] == {"mean": pytest.approx(80 / 3, abs=1e-3), "max": 80.0}
    finally:
        agent.close()
        kubelet.stop()
