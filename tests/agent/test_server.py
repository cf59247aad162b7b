"""The agent's HTTP port: /metrics, /v1/summary, /healthz, /readyz, served by the real server class."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.agent_helpers import make_agent
from fixtures.fake_nvml import FakeNvml, fake_nvml, fake_nvml_lib  # noqa: F401 - fixtures
from gpu_steward_agent.agent import Agent
from gpu_steward_agent.metrics import AgentMetrics
from gpu_steward_agent.server import AgentHTTPServer
from gpu_steward_testground import fakenvml


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


@pytest.fixture
def served(fake_nvml: FakeNvml, tmp_path: Path) -> Iterator[tuple[Agent, str]]:  # noqa: F811
    agent = make_agent(fake_nvml.lib, tmp_path)
    server = AgentHTTPServer(("127.0.0.1", 0), agent, AgentMetrics(agent))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield agent, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        agent.close()


def test_not_ready_before_the_first_round_then_ready(fake_nvml: FakeNvml, served: tuple[Agent, str]) -> None:  # noqa: F811
    agent, url = served
    assert get(url + "/readyz")[0] == 503
    assert get(url + "/healthz")[0] == 200
    fake_nvml.write({"gpus": [fakenvml.gpu(0, util=33)]})
    agent.sample_once()
    assert get(url + "/readyz")[0] == 200


def test_summary_and_metrics_over_http(fake_nvml: FakeNvml, served: tuple[Agent, str]) -> None:  # noqa: F811
    agent, url = served
    fake_nvml.write({"gpus": [fakenvml.gpu(0, util=33, memUsed=2**30, powerMw=123456, temp=48)]})
    agent.sample_once()
    agent.sample_once()
    status, ctype, body = get(url + "/v1/summary")
    assert status == 200 and ctype == "application/json"
    doc = json.loads(body)
    assert doc["apiVersion"] == "gpusteward.dev/agent-v1"
    assert doc["gpus"][0]["util"] == {"mean": 33.0, "max": 33.0} and doc["gpus"][0]["samples"] == 2

    status, ctype, text = get(url + "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    lines = {line.split("{")[0]: line for line in text.splitlines() if line.startswith("DCGM_FI_DEV_")}
    assert lines["DCGM_FI_DEV_GPU_UTIL"].endswith(" 33")  # integers as integers, as dcgm-exporter writes them
    assert lines["DCGM_FI_DEV_FB_USED"].endswith(" 1024")  # MiB, as dcgm-exporter
    assert lines["DCGM_FI_DEV_POWER_USAGE"].endswith(" 123.456")  # W
    assert lines["DCGM_FI_DEV_GPU_TEMP"].endswith(" 48")
    assert 'Hostname="node-a"' in lines["DCGM_FI_DEV_GPU_UTIL"]
    assert 'modelName="NVIDIA A100-SXM4-80GB"' in lines["DCGM_FI_DEV_GPU_UTIL"]
    assert "gpu_steward_agent_sample_duration_seconds_count 2.0" in text
    assert get(url + "/nope")[0] == 404


def test_healthz_fails_when_the_loop_stalls(served: tuple[Agent, str]) -> None:
    agent, url = served
    agent.last_loop_at = 1.0  # last iteration long ago
    assert get(url + "/healthz")[0] == 503
