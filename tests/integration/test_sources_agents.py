"""AgentsSource against real local HTTP servers serving agent summaries: fast, slow, dead, wrong."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from gpu_steward.policy.usage import merge_usages
from gpu_steward.sources.agents import AgentEndpoint, AgentsSource, endpoints_from_pods
from gpu_steward.sources.base import PodRef

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry(ns, name, uid, mean, peak, *, last=NOW, container="main", status="ok", shared=False, covered=60.0):
    return {
        "namespace": ns,
        "name": name,
        "uid": uid,
        "container": container,
        "gpus": ["GPU-1"],
        "util": {"mean": mean, "max": peak},
        "memUsedBytes": 1 << 30,
        "memUsedBytesMax": 1 << 30,
        "samples": 12,
        "utilSamples": 12,
        "lastSampleAt": iso(last),
        "coveredFrom": iso(last - timedelta(seconds=covered)),
        "coveredSeconds": covered,
        "attribution": "device",
        "shared": shared,
        "status": status,
    }


def summary(node, pods, api="gpusteward.dev/agent-v1"):
    return {
        "apiVersion": api,
        "node": node,
        "generatedAt": iso(NOW),
        "windowSeconds": 60,
        "intervalSeconds": 5,
        "gpus": [],
        "pods": pods,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agents:
    """Local aiohttp servers standing in for agents; `slow_finished` says whether the slow one ever answered."""

    def __init__(self):
        self.runners = []
        self.slow_finished = False
        self.release = asyncio.Event()

    async def serve(self, handler) -> str:
        app = web.Application()
        app.router.add_get("/v1/summary", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.runners.append(runner)
        return f"http://127.0.0.1:{port}"

    def static(self, body):
        async def handler(_):
            return web.json_response(body)

        return self.serve(handler)

    def slow(self, body, delay=30.0):
        async def handler(_):
            try:  # answers only after `delay`, or when the test tears down
                await asyncio.wait_for(self.release.wait(), timeout=delay)
            except TimeoutError:
                self.slow_finished = True
            return web.json_response(body)

        return self.serve(handler)

    async def close(self):
        self.release.set()
        for r in self.runners:
            await r.cleanup()


@pytest.fixture
async def agents():
    a = Agents()
    yield a
    await a.close()


async def test_fast_slow_dead_and_wrong_agents(agents):
    pods = {
        "idle": PodRef("ml", "nb-idle", "u-idle", "node-a"),
        "busy": PodRef("ml", "train", "u-busy", "node-a"),
        "missing": PodRef("ml", "new", "u-missing", "node-a"),
        "stale": PodRef("ml", "old", "u-stale", "node-a"),
        "shared": PodRef("ml", "share", "u-shared", "node-a"),
        "slow": PodRef("ml", "on-slow", "u-slow", "node-b"),
        "dead": PodRef("ml", "on-dead", "u-dead", "node-c"),
        "wrong": PodRef("ml", "on-wrong", "u-wrong", "node-d"),
        "nowhere": PodRef("ml", "pending", "u-nowhere", None),
    }
    url_a = await agents.static(
        summary(
            "node-a",
            [
                entry("ml", "nb-idle", "u-idle", 0.4, 1.0),
                entry("ml", "train", "u-busy", 80.0, 99.0, container="worker"),
                entry("ml", "train", "u-busy", 0.0, 0.0, container="sidecar"),
                entry("ml", "old", "u-stale", 0.0, 0.0, last=NOW - timedelta(minutes=10)),
                entry("ml", "share", "u-shared", None, None, shared=True),
            ],
        )
    )
    url_b = await agents.slow(summary("node-b", [entry("ml", "on-slow", "u-slow", 0.0, 0.0)]))
    url_d = await agents.static(summary("node-d", [entry("ml", "on-wrong", "u-wrong", 0.0, 0.0)], api="v0"))
    endpoints = [
        AgentEndpoint("node-a", url_a),
        AgentEndpoint("node-b", url_b),
        AgentEndpoint("node-c", f"http://127.0.0.1:{free_port()}"),  # nothing listens there
        AgentEndpoint("node-d", url_d),
    ]
    source = AgentsSource(endpoints, timeout_seconds=0.5, max_age_seconds=180)
    try:
        got = await source.fetch(list(pods.values()), NOW)
    finally:
        await source.close()
    # The slow agent never got to answer: fetch did not wait for it.
    assert not agents.slow_finished
    assert set(got) == {p.uid for p in pods.values()}
    idle = got["u-idle"]
    assert (idle.status, idle.util_mean, idle.util_max, idle.samples, idle.window_seconds) == ("ok", 0.4, 1.0, 12, 60)
    assert idle.last_sample_at == NOW
    busy = got["u-busy"]  # two containers merged: the busy one decides the max
    assert busy.status == "ok" and busy.util_max == 99.0 and busy.util_mean == pytest.approx(40.0)
    for key, why in {
        "missing": "not in the summary",
        "stale": "stale",
        "shared": "shared GPU",
        "slow": "timed out",
        "dead": "unreachable",
        "wrong": "expected gpusteward.dev/agent-v1",
        "nowhere": "no agent on node",
    }.items():
        usage = got[pods[key].uid]
        assert usage.status == "unknown" and why in usage.reason, (key, usage)
    # A workload with one unknown pod is unknown.
    assert merge_usages([got["u-idle"], got["u-slow"]]).status == "unknown"


async def test_url_override_sends_every_node_to_one_agent(agents):
    url = await agents.static(summary("local", [entry("ml", "nb", "u1", 2.0, 3.0), entry("ml", "b", "u2", 1.0, 1.0)]))
    source = AgentsSource([], url_override=url, timeout_seconds=2)
    try:
        got = await source.fetch([PodRef("ml", "nb", "u1", "kwok-1"), PodRef("ml", "b", "u2", "kwok-2")], NOW)
    finally:
        await source.close()
    assert [got["u1"].util_mean, got["u2"].util_mean] == [2.0, 1.0]


def test_endpoints_from_agent_pods():
    def pod(node, ip, ready=True, phase="Running"):
        cond = [{"type": "Ready", "status": "True" if ready else "False"}]
        return {"spec": {"nodeName": node}, "status": {"podIP": ip, "phase": phase, "conditions": cond}}

    eps = endpoints_from_pods([pod("b", "10.0.0.2"), pod("a", "fd00::1"), pod("c", "10.0.0.3", ready=False)], 9400)
    assert eps == [AgentEndpoint("a", "http://[fd00::1]:9400"), AgentEndpoint("b", "http://10.0.0.2:9400")]


def test_usage_spans_what_the_samples_cover_not_the_configured_window():
    from gpu_steward.sources.agents import _entry_usage

    max_age = timedelta(minutes=3)
    restarted = entry("ml", "nb", "u", 0.0, 0.0, covered=4.0)  # agent back for 4 s of a 60 s window
    assert _entry_usage(restarted, 60.0, NOW, max_age).window_seconds == 4.0
    full = entry("ml", "nb", "u", 0.0, 0.0, covered=600.0)  # never more than the window
    assert _entry_usage(full, 60.0, NOW, max_age).window_seconds == 60.0
    silent = entry("ml", "nb", "u", 0.0, 0.0)
    del silent["coveredSeconds"]  # an agent that does not say what it covers vouches for no span
    assert _entry_usage(silent, 60.0, NOW, max_age).window_seconds == 0.0
