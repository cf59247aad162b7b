"""AgentsSource reads the real agent (its own process, fake NVML, fake kubelet): the summary contract holds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fixtures.agent_process import start_agent
from fixtures.fake_nvml import FakeNvml, fake_nvml, fake_nvml_lib  # noqa: F401 - fixtures
from fixtures.podresources import FakeKubelet, fake_kubelet, gpu_pod  # noqa: F401 - fixtures
from gpu_steward.sources.agents import AgentEndpoint, AgentsSource
from gpu_steward.sources.base import PodRef
from gpu_steward_testground import fakenvml


@pytest.mark.slow
async def test_agents_source_reads_a_real_agent(
    fake_nvml: FakeNvml,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    tmp_path: Path,
) -> None:
    gpus = [fakenvml.gpu(0, util=0), fakenvml.gpu(1, util=73)]
    fake_nvml.write({"gpus": gpus})
    fake_kubelet.set(
        [
            gpu_pod("ml", "nb-idle", [gpus[0]["uuid"]]),
            gpu_pod("ml", "train", [gpus[1]["uuid"]], container="trainer"),
        ]
    )
    agent = start_agent(
        tmp_path / "agent",
        {
            **fake_nvml.env(),
            "NODE_NAME": "gpu-node-1",
            "GPU_STEWARD_AGENT_POD_RESOURCES_SOCKET": str(fake_kubelet.socket_path),
            "GPU_STEWARD_AGENT_PROC_ROOT": str(tmp_path / "proc"),
        },
    )
    source = AgentsSource([AgentEndpoint("gpu-node-1", agent.url)], timeout_seconds=5)
    pods = [
        PodRef("ml", "nb-idle", "uid-1", "gpu-node-1"),
        PodRef("ml", "train", "uid-2", "gpu-node-1"),
        PodRef("ml", "cpu-only", "uid-3", "gpu-node-1"),
    ]
    try:
        got = {}
        for _ in range(60):
            got = await source.fetch(pods, datetime.now(UTC))
            # Right after start the agent vouches for one sample (a span of 0 s); wait for a second one.
            if got["uid-1"].status == "ok" and got["uid-2"].status == "ok" and got["uid-1"].window_seconds > 0:
                break
            await asyncio.sleep(0.5)  # the agent samples every few seconds
    finally:
        await source.close()
        agent.stop()
    assert got["uid-1"].status == "ok", (got, agent.log())
    assert got["uid-1"].util_max == 0 and got["uid-1"].samples >= 1
    assert got["uid-2"].util_mean == pytest.approx(73.0)
    # The span its samples cover (seconds since it started), not the configured window.
    assert 0 < got["uid-1"].window_seconds < 60
    assert got["uid-3"].status == "unknown" and "not in the summary" in got["uid-3"].reason
