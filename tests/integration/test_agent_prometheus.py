"""Real Prometheus scrapes a standalone agent process (fake NVML, fake kubelet): every DCGM metric is
queryable with PromQL and carries the pod and namespace the kubelet assigned the GPU to."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_api_client import PrometheusConnect

from fixtures.agent_process import start_agent
from fixtures.fake_nvml import FakeNvml, fake_nvml, fake_nvml_lib  # noqa: F401 - fixtures
from fixtures.podresources import FakeKubelet, fake_kubelet, gpu_pod  # noqa: F401 - fixtures
from fixtures.prometheus import prometheus_factory, wait_for  # noqa: F401 - fixtures
from gpu_steward_testground import fakenvml

DCGM_METRICS = [
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_GPU_TEMP",
]


@pytest.mark.slow
def test_prometheus_scrapes_the_agent_with_pod_labels(
    fake_nvml: FakeNvml,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    prometheus_factory,  # noqa: F811
    tmp_path: Path,
) -> None:
    gpus = [fakenvml.gpu(0, util=64, memUtil=21, memUsed=8 * 2**30, powerMw=301000, temp=66), fakenvml.gpu(1)]
    fake_nvml.write({"gpus": gpus})
    fake_kubelet.set([gpu_pod("research", "bert-finetune-0", [gpus[0]["uuid"]], container="trainer")])
    agent = start_agent(
        tmp_path / "agent",
        {
            **fake_nvml.env(),
            "NODE_NAME": "gpu-node-1",
            "GPU_STEWARD_AGENT_POD_RESOURCES_SOCKET": str(fake_kubelet.socket_path),
            "GPU_STEWARD_AGENT_PROC_ROOT": str(tmp_path / "proc"),
        },
    )
    try:
        prom = prometheus_factory([f"127.0.0.1:{agent.port}"])
        client = PrometheusConnect(url=prom.url, disable_ssl=True)
        expected = {
            "DCGM_FI_DEV_GPU_UTIL": 64.0,
            "DCGM_FI_DEV_MEM_COPY_UTIL": 21.0,
            "DCGM_FI_DEV_FB_USED": 8192.0,
            "DCGM_FI_DEV_FB_FREE": 73728.0,
            "DCGM_FI_DEV_POWER_USAGE": 301.0,
            "DCGM_FI_DEV_GPU_TEMP": 66.0,
        }
        for metric in DCGM_METRICS:
            query = f'{metric}{{namespace="research", pod!=""}}'
            result = wait_for(lambda q=query: client.custom_query(q), timeout_s=30)
            assert len(result) == 1, (metric, result)
            labels = result[0]["metric"]
            assert (labels["pod"], labels["namespace"], labels["container"]) == (
                "bert-finetune-0",
                "research",
                "trainer",
            )
            assert (labels["gpu"], labels["UUID"], labels["Hostname"]) == ("0", gpus[0]["uuid"], "gpu-node-1")
            assert labels["device"] == "nvidia0" and labels["modelName"] == "NVIDIA A100-SXM4-80GB"
            assert float(result[0]["value"][1]) == expected[metric], metric
        # The unassigned GPU is scraped too, without pod labels.
        [free] = client.custom_query('DCGM_FI_DEV_GPU_UTIL{gpu="1"}')
        assert "pod" not in free["metric"]

        # A change in the "hardware" reaches Prometheus through the agent.
        gpus[0]["util"] = 7
        fake_nvml.write({"gpus": gpus})
        wait_for(lambda: client.custom_query('DCGM_FI_DEV_GPU_UTIL{gpu="0"} == 7'), timeout_s=30)
        with urllib.request.urlopen(agent.url + "/v1/summary", timeout=5) as resp:
            doc = json.load(resp)
        assert doc["node"] == "gpu-node-1"
        assert doc["pods"][0]["name"] == "bert-finetune-0" and doc["pods"][0]["util"]["max"] == 64.0
    finally:
        agent.stop()
    assert agent.process.returncode == 0, agent.log()


# The queries of NVIDIA's "NVIDIA DCGM Exporter Dashboard" (grafana.com dashboard 12239), with its
# $instance and $gpu variables set to "All". Written from the published dashboard as we know it: every
# panel must show data when Prometheus scrapes the agent instead of dcgm-exporter.
SEL = '{instance=~".*", gpu=~".*"}'
DASHBOARD_12239 = {
    "GPU Temperature": f"DCGM_FI_DEV_GPU_TEMP{SEL}",
    "GPU Avg. Temp": f"avg(DCGM_FI_DEV_GPU_TEMP{SEL})",
    "GPU Power Usage": f"DCGM_FI_DEV_POWER_USAGE{SEL}",
    "GPU Power Total": f"sum(DCGM_FI_DEV_POWER_USAGE{SEL})",
    "GPU SM Clocks": f"DCGM_FI_DEV_SM_CLOCK{SEL} * 1000000",
    "GPU Memory Clocks": f"DCGM_FI_DEV_MEM_CLOCK{SEL} * 1000000",
    "GPU Utilization": f"DCGM_FI_DEV_GPU_UTIL{SEL}",
    "Tensor Core Utilization": f"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{SEL}",
    "GPU Framebuffer Mem Used": f"DCGM_FI_DEV_FB_USED{SEL}",
    "GPU Framebuffer Mem Free": f"DCGM_FI_DEV_FB_FREE{SEL}",
}


@pytest.mark.slow
def test_every_panel_of_nvidias_dashboard_has_data(
    fake_nvml: FakeNvml,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    prometheus_factory,  # noqa: F811
    tmp_path: Path,
) -> None:
    gpus = [fakenvml.h100(0, util=64, gpm={"tensorActive": 25}), fakenvml.h100(1)]
    fake_nvml.write({"gpus": gpus})
    fake_kubelet.set([gpu_pod("research", "llm-0", [gpus[0]["uuid"]], container="trainer")])
    agent = start_agent(
        tmp_path / "agent",
        {
            **fake_nvml.env(),
            "NODE_NAME": "gpu-node-1",
            "GPU_STEWARD_AGENT_POD_RESOURCES_SOCKET": str(fake_kubelet.socket_path),
            "GPU_STEWARD_AGENT_PROC_ROOT": str(tmp_path / "proc"),
        },
    )
    try:
        prom = prometheus_factory([f"127.0.0.1:{agent.port}"])
        client = PrometheusConnect(url=prom.url, disable_ssl=True)
        for panel, query in DASHBOARD_12239.items():
            result = wait_for(lambda q=query: client.custom_query(q), timeout_s=30)
            assert result, (panel, query)
        [tensor] = client.custom_query('DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{pod="llm-0"}')
        assert float(tensor["value"][1]) == 0.25
        labels = tensor["metric"]
        assert labels["DCGM_FI_DRIVER_VERSION"] == "550.54.15" and labels["pci_bus_id"] == "00000000:07:00.0"
        assert (labels["namespace"], labels["container"], labels["Hostname"]) == ("research", "trainer", "gpu-node-1")
        # A counter keeps its bare name and works with rate().
        wait_for(lambda: client.custom_query("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"), timeout_s=30)
        url = prom.url + "/api/v1/metadata?metric=DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
        with urllib.request.urlopen(url, timeout=5) as resp:
            meta = json.load(resp)["data"]["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
        assert meta[0]["type"] == "counter"
    finally:
        agent.stop()
    assert agent.process.returncode == 0, agent.log()
