"""Foundation: the fake NVML library is read by the real pynvml, and the real Prometheus scrapes and
answers PromQL through prometheus-api-client."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pynvml
import pytest
from prometheus_api_client import PrometheusConnect

from fixtures.fake_nvml import FakeNvml, fake_nvml, fake_nvml_lib  # noqa: F401 - fixtures
from fixtures.prometheus import prometheus_factory, wait_for  # noqa: F401 - fixtures
from gpu_steward_agent.nvml import load_library
from gpu_steward_testground import fakenvml


@pytest.fixture
def nvml(fake_nvml: FakeNvml) -> Iterator[FakeNvml]:  # noqa: F811 - the fixture above
    load_library(str(fake_nvml.lib))
    fake_nvml.write({"driver": "550.54.15", "gpus": [fakenvml.gpu(0, util=10)]})
    pynvml.nvmlInit()
    try:
        yield fake_nvml
    finally:
        pynvml.nvmlShutdown()


def test_pynvml_loads_the_fake_in_place_of_libnvidia_ml(nvml: FakeNvml) -> None:
    assert isinstance(pynvml.nvmlLib, ctypes.CDLL)
    assert pynvml.nvmlLib._name == str(nvml.lib)
    assert pynvml.nvmlSystemGetDriverVersion() == "550.54.15"


def test_pynvml_reads_values_and_sees_a_rewrite(nvml: FakeNvml) -> None:
    gpus = [
        fakenvml.gpu(
            0,
            util=37,
            memUtil=12,
            memUsed=3 * 2**30,
            powerMw=212500,
            temp=61,
            processes=[{"pid": 4242, "usedMemory": 2**30, "smUtil": 30}],
        ),
        fakenvml.gpu(1, name="NVIDIA H100 80GB HBM3", util=0),
    ]
    nvml.write({"gpus": gpus})
    assert pynvml.nvmlDeviceGetCount() == 2
    h0 = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetUUID(h0) == gpus[0]["uuid"]
    util = pynvml.nvmlDeviceGetUtilizationRates(h0)
    assert (util.gpu, util.memory) == (37, 12)
    mem = pynvml.nvmlDeviceGetMemoryInfo(h0)
    assert (mem.used, mem.total, mem.free) == (3 * 2**30, 80 * 2**30, 77 * 2**30)
    assert pynvml.nvmlDeviceGetPowerUsage(h0) == 212500
    assert pynvml.nvmlDeviceGetTemperature(h0, pynvml.NVML_TEMPERATURE_GPU) == 61
    procs = pynvml.nvmlDeviceGetComputeRunningProcesses(h0)
    assert [(p.pid, p.usedGpuMemory) for p in procs] == [(4242, 2**30)]
    assert [(s.pid, s.smUtil) for s in pynvml.nvmlDeviceGetProcessUtilization(h0, 0)] == [(4242, 30)]
    assert pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(1)) == "NVIDIA H100 80GB HBM3"

    gpus[0]["util"] = 88
    gpus[0]["processes"] = []
    nvml.write({"gpus": gpus})
    assert pynvml.nvmlDeviceGetUtilizationRates(h0).gpu == 88
    assert pynvml.nvmlDeviceGetComputeRunningProcesses(h0) == []


def test_injected_error_is_the_real_nvml_error_class(nvml: FakeNvml) -> None:
    nvml.write({"gpus": [fakenvml.gpu(0), fakenvml.gpu(1, error="GPU_IS_LOST")]})
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetUtilizationRates(pynvml.nvmlDeviceGetHandleByIndex(1))
    assert pynvml.nvmlDeviceGetUtilizationRates(pynvml.nvmlDeviceGetHandleByIndex(0)).gpu == 0


def test_mig_devices_enumerate(nvml: FakeNvml) -> None:
    mig = {
        "uuid": "MIG-11111111-2222-3333-4444-555555555555",
        "name": "NVIDIA A100-SXM4-80GB MIG 1g.10gb",
        "gpuInstanceId": 7,
        "computeInstanceId": 0,
        "memTotal": 10 * 2**30,
        "memUsed": 2**30,
    }
    nvml.write(
        {
            "gpus": [
                fakenvml.gpu(
                    0,
                    mig=[mig],
                    processes=[{"pid": 9, "usedMemory": 2**30, "gpuInstanceId": 7, "computeInstanceId": 0}],
                )
            ]
        }
    )
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetMigMode(h) == [1, 1]
    m = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, 0)
    assert pynvml.nvmlDeviceGetUUID(m) == mig["uuid"]
    assert pynvml.nvmlDeviceGetGpuInstanceId(m) == 7
    assert pynvml.nvmlDeviceGetMemoryInfo(m).used == 2**30
    assert [p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(m)] == [9]
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetUtilizationRates(m)


class _Gauge(BaseHTTPRequestHandler):
    value = 42.5

    def do_GET(self) -> None:
        body = f'# TYPE foundation_probe gauge\nfoundation_probe{{source="test"}} {self.value}\n'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_prometheus_scrapes_a_local_endpoint(prometheus_factory) -> None:  # noqa: F811 - the fixture above
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gauge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prom = prometheus_factory([f"127.0.0.1:{server.server_address[1]}"])
        client = PrometheusConnect(url=prom.url, disable_ssl=True)
        result = wait_for(lambda: client.custom_query('foundation_probe{source="test"}'), timeout_s=30)
        assert float(result[0]["value"][1]) == 42.5
        assert result[0]["metric"]["job"] == "test"
    finally:
        server.shutdown()
