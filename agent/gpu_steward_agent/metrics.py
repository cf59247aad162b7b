"""Prometheus exposition: dcgm-exporter's metric names, types, units and labels for the latest round, and
the agent's own metrics.

The DCGM series are written by hand rather than through prometheus_client: dcgm-exporter publishes its
counters (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, ...) under their bare names with `# TYPE ... counter`,
where prometheus_client would append `_total` and break every dashboard query. Labels follow dcgm-exporter:
gpu, UUID, pci_bus_id, device, modelName, GPU_I_PROFILE/GPU_I_ID (MIG instances), Hostname,
DCGM_FI_DRIVER_VERSION, and container/namespace/pod where one container holds the device (on a shared
GPU a device value labelled with every pod would be counted once per pod by sum() queries; per-pod figures,
including the per-process split on shared GPUs, are in gpu_steward_agent_pod_gpu_util_percent). Empty
labels (no pod, not a MIG instance) are written as "", which Prometheus drops.
`GPU_STEWARD_AGENT_DCGM_METRICS=false` publishes no DCGM_FI_* series at all, for nodes where dcgm-exporter already runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from .fields import BY_NAME, EXPORTED

if TYPE_CHECKING:
    from .agent import Agent
    from .model import GpuReading, Holder

MIB = 1024 * 1024

def _free(g: GpuReading) -> float | None:
    if g.mem_free is not None:
        return g.mem_free / MIB
    return None if g.mem_used is None or g.mem_total is None else max(0, g.mem_total - g.mem_used) / MIB


# Fields read straight off a GpuReading (the rest are in GpuReading.hw and .prof) — dcgm-exporter's units.
_DEVICE_FIELDS: tuple[tuple[str, Callable[[GpuReading], float | None]], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", lambda g: g.util),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", lambda g: g.mem_util),
    ("DCGM_FI_DEV_FB_USED", lambda g: None if g.mem_used is None else g.mem_used / MIB),
    ("DCGM_FI_DEV_FB_FREE", _free),
)
# Device-wide figures also published on a GPU in MIG mode (its instances carry FB and profiling figures).
_WHOLE_GPU_FIELDS: tuple[tuple[str, Callable[[GpuReading], float | None]], ...] = (
    ("DCGM_FI_DEV_POWER_USAGE", lambda g: g.power_w),
    ("DCGM_FI_DEV_GPU_TEMP", lambda g: g.temp_c),
)
_ORDER = {f.name: i for i, f in enumerate(EXPORTED)}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(v: float) -> str:
    if v != v:  # NaN
        return "NaN"
    if float(v).is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(float(v))


def _labels(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


def _pod_pairs(holders: list[Holder]) -> list[tuple[str, str]]:
    if len(holders) != 1:
        return [("container", ""), ("namespace", ""), ("pod", "")]
    h = holders[0]
    return [("container", h.container), ("namespace", h.namespace), ("pod", h.pod)]


def dcgm_exposition(agent: Agent) -> str:
    """The DCGM_FI_* series of the latest round in Prometheus text format (empty when turned off)."""
    if not agent.config.dcgm_metrics:
        return ""
    with agent.lock:
        reading = agent.latest
        holders = dict(agent.latest_holders)
        nvml_ok = agent.nvml_ok
    if reading is None or not nvml_ok:
        return ""
    host, driver = agent.config.node_name, agent.reader.driver_version
    series: dict[str, list[str]] = {}

    def add(name: str, labels: str, value: float | None) -> None:
        if value is not None:
            series.setdefault(name, []).append(f"{name}{{{labels}}} {_number(value)}\n")

    for g in reading.gpus:
        if not g.ok:
            continue  # no value rather than a stale one: consumers see the series vanish
        ident = [("gpu", str(g.index)), ("UUID", g.uuid), ("pci_bus_id", g.pci_bus_id), ("device", f"nvidia{g.index}"),
                 ("modelName", g.model)]
        node = [("Hostname", host), ("DCGM_FI_DRIVER_VERSION", driver)]
        pods = _pod_pairs([] if g.migs else holders.get(g.uuid, []))
        labels = _labels([*ident, ("GPU_I_PROFILE", ""), ("GPU_I_ID", ""), *node, *pods])
        for name, value in _WHOLE_GPU_FIELDS:
            add(name, labels, value(g))
        for name, v in g.hw.items():
            add(name, labels, v)
        if not g.migs:
            for name, value in _DEVICE_FIELDS:
                add(name, labels, value(g))
            for name, v in (g.prof or {}).items():
                add(name, labels, v)
        for m in g.migs:
            instance = [("GPU_I_PROFILE", m.name), ("GPU_I_ID", str(m.gpu_instance_id))]
            mig = _labels([*ident, *instance, *node, *_pod_pairs(holders.get(m.uuid, []))])
            if m.mem_used is not None:
                add("DCGM_FI_DEV_FB_USED", mig, m.mem_used / MIB)
                if m.mem_total is not None:
                    add("DCGM_FI_DEV_FB_FREE", mig, max(0, m.mem_total - m.mem_used) / MIB)
            for name, v in (m.prof or {}).items():
                add(name, mig, v)
    out: list[str] = []
    for name in sorted(series, key=lambda n: _ORDER.get(n, len(_ORDER))):
        field = BY_NAME.get(name)
        if field is None:
            continue
        out.append(f"# HELP {name} {field.help}\n# TYPE {name} {field.type}\n")
        out.extend(series[name])
    return "".join(out)


class AgentCollector:
    """The agent's own metrics (gpu_steward_agent_*), through prometheus_client."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        with agent.lock:
            reading = agent.latest
            samples = list(agent.latest_samples)
            counters = agent.counters
            nvml_errors = dict(counters.nvml_errors)
            source_errors = dict(counters.source_errors)
            rounds = counters.rounds
            nvml_ok = agent.nvml_ok
            last = agent.last_round_at
        host = agent.config.node_name
        gpus: list[GpuReading] = reading.gpus if reading is not None and nvml_ok else []
        up = GaugeMetricFamily(
            "gpu_steward_agent_gpu_up",
            "1 when the GPU answered NVML this round, else 0.",
            labels=["gpu", "UUID", "Hostname", "error"],
        )
        for g in gpus:
            up.add_metric([str(g.index), g.uuid, host, g.error_kind or ""], 1.0 if g.ok else 0.0)
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
        pod_signal = GaugeMetricFamily(
            "gpu_steward_agent_pod_gpu_signal_percent",
            "GPM idle signals (GraphicsActive, SMActive, TensorActive) attributed to a container this round, "
            "in percent; only where the container holds its GPUs or MIG instances alone and they have GPM.",
            labels=["namespace", "pod", "container", "pod_uid", "signal", "Hostname"],
        )
        for s in samples:
            h = s.holder
            for signal, v in (s.signals or {}).items():
                pod_signal.add_metric([h.namespace, h.pod, h.container, h.uid, signal, host], v)
        yield pod_util
        yield pod_mem
        yield pod_signal

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
        self.registry.register(AgentCollector(agent))
        agent.observe_duration = self.duration.observe

    def render(self) -> bytes:
        """The whole /metrics body: the DCGM series, then the agent's own."""
        return dcgm_exposition(self.agent).encode() + generate_latest(self.registry)
