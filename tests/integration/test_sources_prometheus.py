"""PrometheusSource against the real Prometheus binary scraping a DCGM-style exporter (prometheus_client)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from fixtures.prometheus import free_port, prometheus_factory  # noqa: F401 - fixture
from gpu_steward.sources.base import PodRef
from gpu_steward.sources.prometheus import PrometheusSource

LABELS = ["gpu", "UUID", "modelName", "Hostname", "container", "namespace", "pod"]


@pytest.fixture
def exporter():
    registry = CollectorRegistry()
    prof = Gauge(
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "Ratio of time the graphics engine is active.", LABELS, registry=registry
    )
    dev = Gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", LABELS, registry=registry)
    # pod a: two GPUs, profiling metric (ratio); pod b: only the device metric (percent); pod c: nothing.
    prof.labels("0", "GPU-0", "A100", "n1", "main", "ml", "nb-a").set(0.002)
    prof.labels("1", "GPU-1", "A100", "n1", "main", "ml", "nb-a").set(0.004)
    dev.labels("0", "GPU-0", "A100", "n1", "main", "ml", "nb-a").set(1)
    dev.labels("2", "GPU-2", "A100", "n1", "main", "ml", "train-b").set(55)
    dev.labels("3", "GPU-3", "A100", "n1", "", "", "").set(0)  # an unassigned GPU carries no pod label
    port = free_port()
    started = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}"
    if isinstance(started, tuple):
        started[0].shutdown()


@pytest.mark.slow
async def test_prometheus_source_reads_dcgm_metrics_with_fallback(exporter, prometheus_factory):  # noqa: F811
    prom = prometheus_factory([exporter])
    source = PrometheusSource(prom.url, window_seconds=60, max_age_seconds=120)
    pods = [PodRef("ml", "nb-a", "ua"), PodRef("ml", "train-b", "ub"), PodRef("ml", "gone-c", "uc")]

    async def ready():
        got = await source.fetch(pods, datetime.now(UTC))
        return got if got["ua"].status == "ok" and got["ub"].status == "ok" else None

    got = None
    for _ in range(60):
        got = await ready()
        if got:
            break
        await asyncio.sleep(0.5)  # Prometheus scrapes every second
    assert got, "prometheus never had the series"
    a, b, c = got["ua"], got["ub"], got["uc"]
    # Ratio → percent, averaged over the pod's two GPUs; the max is the busier GPU.
    assert a.util_mean == pytest.approx(0.3) and a.util_max == pytest.approx(0.4)
    assert a.samples >= 2 and a.window_seconds == 60
    assert (datetime.now(UTC) - a.last_sample_at).total_seconds() < 60
    # No profiling series for b: the device metric (already percent) is used.
    assert b.util_mean == pytest.approx(55.0) and b.util_max == pytest.approx(55.0)
    assert c.status == "unknown" and "no DCGM utilization series" in c.reason


async def test_unreachable_prometheus_makes_every_pod_unknown():
    source = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout_seconds=1)
    got = await source.fetch([PodRef("ml", "a", "ua"), PodRef("ml", "b", "ub")], datetime.now(UTC))
    assert {u.status for u in got.values()} == {"unknown"}
    assert all("prometheus query failed" in u.reason for u in got.values())
