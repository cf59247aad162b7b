"""IdlePolicy idle.signal, end to end from the fake NVML: the real agent samples it and builds its summary,
the agents source parses that summary, the idle controller judges the workload on the policy's signal.

A "trivial kernel loop" (a kernel always resident, doing next to nothing) reads 100 % GPU utilization but
1 % SM active: busy under GPUUtil, idle under SMActive. A GPU without GPM cannot give SMActive: the
workload is judged on GPUUtil and the policy's status says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from idle_world import World, job, policy

from fixtures.agent_helpers import make_agent, summary_at
from fixtures.fake_nvml import FakeNvml, fake_nvml, fake_nvml_lib  # noqa: F401 - fixtures
from fixtures.podresources import FakeKubelet, fake_kubelet, gpu_pod  # noqa: F401 - fixtures
from gpu_steward.policy.usage import Usage, select_signal
from gpu_steward.sources.agents import AgentsSource
from gpu_steward.sources.base import PodRef
from gpu_steward_agent.agent import Agent
from gpu_steward_testground import fakenvml


class AgentSummarySource:
    """The agents source over an in-process agent: each fetch samples the last minute at 1 Hz, then parses
    the agent's real /v1/summary document."""

    def __init__(self, agent: Agent) -> None:
        self.agent, self.parser, self.asked = agent, AgentsSource(), []

    async def fetch(self, pods: Sequence[PodRef], now: dt.datetime, signals: Any = ()) -> dict[str, Usage]:
        self.asked.append(frozenset(signals))
        end = now.timestamp()
        for i in range(60, -1, -1):
            self.agent.sample_once(end - i)
        return self.parser._usages(summary_at(self.agent, end), pods, now)

    async def close(self) -> None:
        return None


def _world(fake_nvml: FakeNvml, fake_kubelet: FakeKubelet, tmp_path: Path,  # noqa: F811
           gpu: dict[str, Any], signal: str | None) -> tuple[World, dict[str, Any], AgentSummarySource]:
    fake_nvml.write({"gpus": [gpu]})
    fake_kubelet.set([gpu_pod("ml", "train-0", [gpu["uuid"]])])
    agent = make_agent(fake_nvml.lib, tmp_path, window=300.0, socket=str(fake_kubelet.socket_path))
    pol = policy(["Event"])
    if signal is not None:
        pol["spec"]["idle"]["signal"] = signal
    w = World(pol)
    w.source = AgentSummarySource(agent)  # type: ignore[assignment]
    w.restart()
    return w, w.run(job("train")), w.source  # type: ignore[return-value]


TRIVIAL_LOOP = {"util": 100, "gpm": {"graphicsActive": 100, "smActive": 1, "tensorActive": 0}}


@pytest.mark.parametrize(("signal", "idle"), [(None, False), ("GPUUtil", False), ("SMActive", True),
                                              ("TensorActive", True), ("GraphicsActive", False)])
def test_a_trivial_kernel_loop_is_idle_only_on_the_profiling_signals(
    fake_nvml: FakeNvml, fake_kubelet: FakeKubelet, tmp_path: Path, signal: str | None, idle: bool  # noqa: F811
) -> None:
    w, train, source = _world(fake_nvml, fake_kubelet, tmp_path, fakenvml.h100(0, **TRIVIAL_LOOP), signal)
    try:
        w.passes(40, until=lambda: w.suspended(train))
        assert w.suspended(train) is idle
        status = w.status()
        assert status["watched"] == 1 and status["unknown"] == 0
        if signal in (None, "GPUUtil"):
            assert "signalFallbacks" not in status and all(c["type"] != "SignalFallback" for c in status["conditions"])
            assert source.asked[-1] == frozenset()  # nobody asked for a profiling signal
        else:
            assert status["signalFallbacks"] == 0 and w.condition("SignalFallback")["status"] == "False"
            assert source.asked[-1] == frozenset({signal})
    finally:
        source.agent.close()


def test_a_gpu_without_gpm_falls_back_to_gpu_util_and_says_so(
    fake_nvml: FakeNvml, fake_kubelet: FakeKubelet, tmp_path: Path  # noqa: F811
) -> None:
    a100 = fakenvml.gpu(0, util=100)  # the same loop on an A100: no GPM, GPUUtil reads 100 %
    w, train, source = _world(fake_nvml, fake_kubelet, tmp_path, a100, "SMActive")
    try:
        w.passes(40, until=lambda: w.suspended(train))
        assert not w.suspended(train)  # judged on GPUUtil: busy
        assert w.status()["signalFallbacks"] == 1
        cond = w.condition("SignalFallback")
        assert cond["status"] == "True" and cond["reason"] == "SignalUnavailable"
        assert "SMActive" in cond["message"] and "train" in cond["message"]
    finally:
        source.agent.close()


def test_select_signal_never_replaces_a_reported_but_unknown_signal() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    busy = Usage.ok(100.0, 100.0, 60, now, 60.0)
    stale = Usage.unknown("stale")
    usage = Usage("ok", 100.0, 100.0, 60, now, 60.0, signals=(("SMActive", stale),))
    assert select_signal(usage, "SMActive") == (stale, False)  # no data on the signal: unknown, not GPUUtil
    assert select_signal(busy, "SMActive") == (busy, True)  # the GPU has no such signal: fall back
    assert select_signal(usage, "GPUUtil") == (usage, False)
