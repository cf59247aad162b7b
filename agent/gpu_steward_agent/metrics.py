"""Prometheus exposition: dcgm-exporter's metric names and labels for the latest round, and the agent's own.

Device series carry pod/namespace/container only when exactly one container holds the device: on a
shared GPU a device value labelled with every pod would be counted once per pod by sum() queries. Per-pod
figures (including the per-process split on shared GPUs) are in gpu_steward_agent_pod_gpu_util_percent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from .agent import Agent
    from .model import GpuReading, Holder

DCGM_LABELS = [
    "gpu",
    "UUID",
    "device",
    "modelName",
    "Hostname",
    "GPU_I_ID",
    "GPU_I_PROFILE",
    "container",
    "namespace",
    "pod",
]
MIB = 1024 * 1024

# (metric, help, value from a GpuReading) — units as dcgm-exporter publishes them.
_DEVICE_FIELDS: tuple[tuple[str, str, Callable[[GpuReading], float | None]], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", lambda g: g.util),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", lambda g: g.mem_util),
    (
        "DCGM_FI_DEV_FB_USED",
        "Framebuffer memory used (in MiB).",
        lambda g: None if g.mem_used is None else g.mem_used / MIB,
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        "Framebuffer memory free (in MiB).",
        lambda g: None if g.mem_used is None or g.mem_total is None else max(0, g.mem_total - g.mem_used) / MIB,
    ),
    ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", lambda g: g.power_w),
    ("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", lambda g: g.temp_c),
)


def _pod_labels(holders: list[Holder]) -> list[str]:
    if len(holders) != 1:
        return ["", "", ""]
    h = holders[0]
    return [h.container, h.namespace, h.pod]


class DcgmCollector:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        with agent.lock:
            reading = agent.latest
            holders = dict(agent.latest_holders)
            samples = list(agent.latest_samples)
            counters = agent.counters
            nvml_errors = dict(counters.nvml_errors)
            source_errors = dict(counters.source_errors)
            rounds = counters.rounds
            nvml_ok = agent.nvml_ok
            last = agent.last_round_at
        host = agent.config.node_name
        gpus: list[GpuReading] = reading.gpus if reading is not None and nvml_ok else []
        families = {name: GaugeMetricFamily(name, doc, labels=DCGM_LABELS) for name, doc, _ in _DEVICE_FIELDS}
        up = GaugeMetricFamily(
            "gpu_steward_agent_gpu_up",
            "1 when the GPU answered NVML this round, else 0.",
            labels=["gpu", "UUID", "Hostname", "error"],
        )
        for g in gpus:
            up.add_metric([str(g.index), g.uuid, host, g.error_kind or ""], 1.0 if g.ok else 0.0)
            if not g.ok:
                continue  # no value rather than a stale one: consumers see the series vanish
            base = [str(g.index), g.uuid, f"nvidia{g.index}", g.model, host]
            if not g.migs:
                pod = _pod_labels(holders.get(g.uuid, []))
                for name, _, value in _DEVICE_FIELDS:
                    v = value(g)
                    if v is not None:
                        families[name].add_metric([*base, "", "", *pod], float(v))
            for m in g.migs:
                labels = [*base, str(m.gpu_instance_id), m.name, *_pod_labels(holders.get(m.uuid, []))]
                if m.mem_used is not None:
                    families["DCGM_FI_DEV_FB_USED"].add_metric(labels, m.mem_used / MIB)
                    if m.mem_total is not None:
                        families["DCGM_FI_DEV_FB_FREE"].add_metric(labels, max(0, m.mem_total - m.mem_used) / MIB)
        yield from families.values()
        yield up

        pod_util = GaugeMetricFamily(
            "gpu_steward_agent_pod_gpu_util_percent",
            "GPU utilization attributed to a container this round (device: it holds the GPU alone; "
            "process: summed from its processes on a shared GPU).",
            labels=["namespace", "pod", "container", "pod_uid", "attribution", "Hostname"],
        )
        pod_mem = GaugeMetricFamily(
            "gpu_steward_agent_pod_gpu_memory_used_bytes",
            "GPU memory attributed to a container this round.",
            labels=["namespace", "pod", "container", "pod_uid", "Hostname"],
        )
        for s in samples:
            h = s.holder
            if s.util is not None:
                pod_util.add_metric([h.namespace, h.pod, h.container, h.uid, s.attribution, host], s.util)
            if s.mem_used is not None:
                pod_mem.add_metric([h.namespace, h.pod, h.container, h.uid, host], float(s.mem_used))
        yield pod_util
        yield pod_mem

        errors = CounterMetricFamily(
            "gpu_steward_agent_nvml_errors", "NVML call failures by GPU and error kind.", labels=["gpu", "UUID", "kind"]
        )
        for (index, uuid, kind), n in sorted(nvml_errors.items()):
            errors.add_metric([index, uuid, kind], n)
        yield errors
        src = CounterMetricFamily(
            "gpu_steward_agent_source_errors",
            "Failures of a whole source (nvml init, pod-resources, a sampling round).",
            labels=["source", "kind"],
        )
        for (source, kind), n in sorted(source_errors.items()):
            src.add_metric([source, kind], n)
        yield src
        yield CounterMetricFamily("gpu_steward_agent_sample_rounds", "Sampling rounds completed.", value=rounds)
        yield GaugeMetricFamily(
            "gpu_steward_agent_nvml_up", "1 when NVML is initialised and answering.", value=1.0 if nvml_ok else 0.0
        )
        if last is not None:
            yield GaugeMetricFamily(
                "gpu_steward_agent_last_sample_timestamp_seconds", "Unix time of the last completed round.", value=last
            )


class AgentMetrics:
    """The registry served on /metrics; the agent reports each round's duration to the histogram."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.registry = CollectorRegistry(auto_describe=False)
        self.duration = Histogram(
            "gpu_steward_agent_sample_duration_seconds",
            "Wall time of one sampling round.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.registry.register(DcgmCollector(agent))
        agent.observe_duration = self.duration.observe
