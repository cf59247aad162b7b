"""The agent as a drop-in for dcgm-exporter: every default-counters.csv field, its type and labels, what
happens where NVML cannot give a field, XIDs, GPM profiling figures (device and MIG) and the idle signals
they feed into /v1/summary."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from fixtures.agent_helpers import T0, UID_A, UID_B, exposition, make_agent, samples_of, summary_at
from fixtures.fake_nvml import FakeNvml, fake_nvml, fake_nvml_lib  # noqa: F401 - fixtures
from fixtures.fake_proc import write_proc
from gpu_steward_agent.agent import Agent
from gpu_steward_agent.fields import DEFAULT_COUNTERS, EXTRA_PROFILING
from gpu_steward_testground import fakenvml

# dcgm-exporter 4.x etc/default-counters.csv, in its order (name, type). Written down here so a change to
# the agent's catalogue cannot silently drop one.
DCGM_EXPORTER_DEFAULT_COUNTERS = [
    ("DCGM_FI_DEV_SM_CLOCK", "gauge"),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge"),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge"),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge"),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge"),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter"),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter"),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge"),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge"),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge"),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge"),
    ("DCGM_FI_DEV_FB_FREE", "gauge"),
    ("DCGM_FI_DEV_FB_USED", "gauge"),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge"),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter"),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge"),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter"),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter"),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge"),
    ("DCGM_FI_DRIVER_VERSION", "label"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge"),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge"),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge"),
    ("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge"),
    ("DCGM_FI_PROF_PCIE_RX_BYTES", "gauge"),
]
NOT_FROM_NVML = {"DCGM_FI_DEV_VGPU_LICENSE_STATUS"}
DCGM_LABELS = {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"}


@pytest.fixture
def agent(fake_nvml: FakeNvml, tmp_path: Path):  # noqa: F811 - the fixture above
    a = make_agent(fake_nvml.lib, tmp_path)
    yield a
    a.close()


def _families(agent: Agent) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(exposition(agent))}


def test_every_default_counter_is_exported_or_says_why_not(fake_nvml: FakeNvml, agent: Agent) -> None:  # noqa: F811
    assert [(f.name, f.type) for f in DEFAULT_COUNTERS] == DCGM_EXPORTER_DEFAULT_COUNTERS
    table = []
    for f in DEFAULT_COUNTERS:
        status = "exported" if f.source else "not available from NVML"
        table.append(f"{f.name:42} {f.type:8} {status}: {f.source or f.unavailable}")
        assert bool(f.source) != bool(f.unavailable), f.name
        assert (f.name in NOT_FROM_NVML) == (not f.source), f.name
    print("\n".join(table))  # the list, with where each comes from (pytest -s shows it)
    exported = [f for f in DEFAULT_COUNTERS if f.source]
    assert (len(DEFAULT_COUNTERS), len(exported)) == (26, 25)

    # On an H100 (GPM) with every hardware field, every exported series is there with its type and labels.
    fake_nvml.write({"gpus": [fakenvml.h100(0, util=40, gpm={"graphicsActive": 50, "tensorActive": 20})]})
    agent.sample_once(T0)
    agent.sample_once(T0 + 1)  # GPM needs two samples
    text = exposition(agent)
    for f in exported + list(EXTRA_PROFILING):
        if f.type == "label":
            continue
        assert f"# TYPE {f.name} {f.type}\n" in text, f.name
        [(labels, _value)] = samples_of(agent, f.name)
        assert set(labels) >= DCGM_LABELS, (f.name, labels)
        assert labels["DCGM_FI_DRIVER_VERSION"] == "550.54.15" and labels["pci_bus_id"] == "00000000:07:00.0"
    # Counters keep dcgm-exporter's bare names (no _total): dashboards query them as they are.
    assert "\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" in text and "CONSUMPTION_total" not in text
    values = {f.name: samples_of(agent, f.name)[0][1] for f in exported + list(EXTRA_PROFILING) if f.type != "label"}
    assert values["DCGM_FI_DEV_SM_CLOCK"] == 1980 and values["DCGM_FI_DEV_MEM_CLOCK"] == 2619
    assert values["DCGM_FI_PROF_GR_ENGINE_ACTIVE"] == pytest.approx(0.5)  # ratios, like DCGM
    assert values["DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"] == pytest.approx(0.2)
    assert values["DCGM_FI_DEV_XID_ERRORS"] == 0


def test_values_and_units(fake_nvml: FakeNvml, agent: Agent) -> None:  # noqa: F811
    gpu = fakenvml.h100(0, memTotal=80 * 2**30, memUsed=10 * 2**30, memReserved=2**30, energyMj=123_456_789_012,
                        pcieReplay=3, encUtil=7, decUtil=9, memTemp=51,
                        remappedRows={"correctable": 2, "uncorrectable": 1, "pending": 0, "failure": 1},
                        nvlink={"links": 18, "txKiB": 10, "rxKiB": 5},
                        gpm={"pcieTxMiBs": 2.0, "pcieRxMiBs": 0.5, "dramActive": 30, "smOccupancy": 25})
    fake_nvml.write({"gpus": [gpu]})
    agent.sample_once(T0)
    agent.sample_once(T0 + 1)
    v = {name: samples_of(agent, name)[0][1] for name in (
        "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "DCGM_FI_DEV_ENC_UTIL", "DCGM_FI_DEV_DEC_UTIL", "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE", "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_PROF_PCIE_TX_BYTES",
        "DCGM_FI_PROF_PCIE_RX_BYTES", "DCGM_FI_PROF_DRAM_ACTIVE", "DCGM_FI_PROF_SM_OCCUPANCY")}
    assert (v["DCGM_FI_DEV_FB_USED"], v["DCGM_FI_DEV_FB_RESERVED"], v["DCGM_FI_DEV_FB_FREE"]) == (10240, 1024, 70656)
    assert v["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] == 123_456_789_012  # mJ
    assert (v["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"], v["DCGM_FI_DEV_ENC_UTIL"], v["DCGM_FI_DEV_DEC_UTIL"]) == (3, 7, 9)
    assert v["DCGM_FI_DEV_MEMORY_TEMP"] == 51
    assert (v["DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"], v["DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"],
            v["DCGM_FI_DEV_ROW_REMAP_FAILURE"]) == (2, 1, 1)
    assert v["DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"] == 18 * 15  # KiB over every link
    assert (v["DCGM_FI_PROF_PCIE_TX_BYTES"], v["DCGM_FI_PROF_PCIE_RX_BYTES"]) == (2 * 2**20, 2**19)  # bytes/s
    assert v["DCGM_FI_PROF_DRAM_ACTIVE"] == pytest.approx(0.3) and v["DCGM_FI_PROF_SM_OCCUPANCY"] == pytest.approx(0.25)


def test_unsupported_fields_are_absent_and_logged_once(fake_nvml: FakeNvml, agent: Agent) -> None:  # noqa: F811
    # An A100 (no GPM) whose board answers NOT_SUPPORTED for clocks, memory temperature, energy, enc/dec,
    # remapped rows, NVLink and XID events; and an H100 with everything.
    bare = fakenvml.gpu(0, smClock=None, memClock=None, memTemp=None, energyMj=None, pcieReplay=None, encUtil=None,
                        decUtil=None, remappedRows=None, nvlink=None, xid=None)
    fake_nvml.write({"gpus": [bare, fakenvml.h100(1)]})
    with capture_logs() as logs:
        for i in range(3):
            agent.sample_once(T0 + i)
    for name in ("DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK", "DCGM_FI_DEV_MEMORY_TEMP",
                 "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "DCGM_FI_DEV_ENC_UTIL",
                 "DCGM_FI_DEV_DEC_UTIL", "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_ROW_REMAP_FAILURE",
                 "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
                 "DCGM_FI_PROF_SM_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_PCIE_TX_BYTES"):
        assert [lbl["gpu"] for lbl, _ in samples_of(agent, name)] == ["1"], name  # never a made-up 0 on GPU 0
    assert [lbl["gpu"] for lbl, _ in samples_of(agent, "DCGM_FI_DEV_GPU_UTIL")] == ["0", "1"]
    notes = [e for e in logs if e["event"] in ("nvml_field_not_supported", "nvml_gpm_not_supported")]
    assert notes and all(e.get("gpu") == 0 for e in notes)
    keys = [(e["event"], e.get("call")) for e in notes]
    assert len(keys) == len(set(keys)), keys  # once each, not every round
    assert ("nvml_gpm_not_supported", None) in keys and ("nvml_field_not_supported", "sm_clock") in keys
    assert not agent.counters.nvml_errors  # NOT_SUPPORTED is not an error


def test_xid_errors_report_the_last_xid_since_the_agent_started(
    fake_nvml: FakeNvml, agent: Agent  # noqa: F811
) -> None:
    gpus = [fakenvml.gpu(0, xid=[13]), fakenvml.gpu(1)]  # XID 13 happened before the agent started
    fake_nvml.write({"gpus": gpus})
    agent.sample_once(T0)
    assert {lbl["gpu"]: v for lbl, v in samples_of(agent, "DCGM_FI_DEV_XID_ERRORS")} == {"0": 0, "1": 0}
    gpus[0]["xid"] = [13, 48, 79]
    fake_nvml.write({"gpus": gpus})
    with capture_logs() as logs:
        agent.sample_once(T0 + 1)
    assert {lbl["gpu"]: v for lbl, v in samples_of(agent, "DCGM_FI_DEV_XID_ERRORS")} == {"0": 79, "1": 0}
    assert [e["xid"] for e in logs if e["event"] == "gpu_xid"] == [48, 79]
    agent.sample_once(T0 + 2)  # stays the last one seen
    assert {lbl["gpu"]: v for lbl, v in samples_of(agent, "DCGM_FI_DEV_XID_ERRORS")} == {"0": 79, "1": 0}


def test_gpm_signals_reach_the_summary_per_pod(
    fake_nvml: FakeNvml, agent: Agent, tmp_path: Path  # noqa: F811
) -> None:
    """A trivial kernel loop: utilization 100 % (a kernel is always resident), SM active 1 %."""
    write_proc(tmp_path / "proc", {100: (UID_A, "a" * 64), 200: (UID_B, "b" * 64)})
    looping = fakenvml.h100(0, util=100, processes=[{"pid": 100, "usedMemory": 2**30, "smUtil": 100}],
                            gpm={"graphicsActive": 100, "smActive": 1, "tensorActive": 0})
    a100 = fakenvml.gpu(1, util=100, processes=[{"pid": 200, "usedMemory": 2**30, "smUtil": 100}])
    fake_nvml.write({"gpus": [looping, a100]})
    for i in range(5):
        agent.sample_once(T0 + i)
    pods = {p["uid"]: p for p in summary_at(agent, T0 + 4)["pods"]}
    looping_pod, a100_pod = pods[UID_A], pods[UID_B]
    assert looping_pod["util"]["mean"] == 100.0
    sig = looping_pod["signals"]
    assert set(sig) == {"GraphicsActive", "SMActive", "TensorActive"}
    assert sig["SMActive"]["mean"] == pytest.approx(1.0) and sig["GraphicsActive"]["max"] == pytest.approx(100.0)
    assert sig["SMActive"]["samples"] == 4  # the first round has no GPM figure (two samples needed)
    assert sig["SMActive"]["coveredSeconds"] == 3.0
    assert "signals" not in a100_pod  # no GPM: no signal, never a copy of util
    per_pod = {(lbl["pod_uid"], lbl["signal"]): v
               for lbl, v in samples_of(agent, "gpu_steward_agent_pod_gpu_signal_percent")}
    assert per_pod[(UID_A, "SMActive")] == pytest.approx(1.0) and not any(uid == UID_B for uid, _ in per_pod)


def test_mig_instances_carry_profiling_figures_with_their_labels(
    fake_nvml: FakeNvml, agent: Agent, tmp_path: Path  # noqa: F811
) -> None:
    write_proc(tmp_path / "proc", {100: (UID_A, "a" * 64)})
    mig = [{"uuid": "MIG-aaaa", "name": "1g.10gb", "gpuInstanceId": 7, "computeInstanceId": 0,
            "memTotal": 10 * 2**30, "memUsed": 2**30, "gpm": {"smActive": 40, "graphicsActive": 60}},
           {"uuid": "MIG-bbbb", "name": "3g.40gb", "gpuInstanceId": 2, "computeInstanceId": 0,
            "memTotal": 40 * 2**30, "memUsed": 0}]
    gpu = fakenvml.h100(0, mig=mig, processes=[{"pid": 100, "usedMemory": 2**30, "gpuInstanceId": 7,
                                                "computeInstanceId": 0}])
    fake_nvml.write({"gpus": [gpu]})
    for i in range(3):
        agent.sample_once(T0 + i)
    sm = {lbl["GPU_I_ID"]: (lbl, v) for lbl, v in samples_of(agent, "DCGM_FI_PROF_SM_ACTIVE")}
    assert set(sm) == {"7", "2"}
    labels, value = sm["7"]
    assert value == pytest.approx(0.4) and labels["GPU_I_PROFILE"] == "1g.10gb" and labels["gpu"] == "0"
    assert sm["2"][1] == 0
    # The instance's holder gets the instance's signals (NVML has no utilization per MIG instance).
    [pod] = summary_at(agent, T0 + 2)["pods"]
    assert pod["util"]["mean"] is None and pod["signals"]["SMActive"]["mean"] == pytest.approx(40.0)


def test_dcgm_metrics_off_publishes_no_dcgm_series(fake_nvml: FakeNvml, agent: Agent) -> None:  # noqa: F811
    fake_nvml.write({"gpus": [fakenvml.h100(0)]})
    agent.config = dataclasses.replace(agent.config, dcgm_metrics=False)
    agent.sample_once(T0)
    agent.sample_once(T0 + 1)
    text = exposition(agent)
    assert "DCGM_FI_" not in text
    assert "gpu_steward_agent_gpu_up{" in text  # the agent's own metrics stay
