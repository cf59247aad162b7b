"""The sampling round: NVML + pod-resources (or cgroups) -> attributed samples -> windows and counters.

`Agent.sample_once(now)` takes the time as an argument so tests drive window maths with explicit times;
the loop in `run_forever` passes the wall clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from . import attribution, cgroup
from .config import AgentConfig
from .fields import SIGNALS
from .model import GpuReading, Holder, NodeReading, PodSample
from .nvml import NvmlReader, NvmlUnavailable
from .podresources.client import PodResourcesClient, PodResourcesUnavailable
from .window import Window

log = structlog.get_logger("gpu_steward_agent")


@dataclass(slots=True)
class Counters:
    """Monotonic counts the metrics endpoint exposes (read under the agent's lock)."""

    nvml_errors: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (gpu index, UUID, kind)
    source_errors: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, kind)
    rounds: int = 0

    def nvml(self, index: int | None, uuid: str, kind: str) -> None:
        key = ("" if index is None else str(index), uuid, kind)
        self.nvml_errors[key] = self.nvml_errors.get(key, 0) + 1

    def source(self, source: str, kind: str) -> None:
        self.source_errors[(source, kind)] = self.source_errors.get((source, kind), 0) + 1


def gpu_key(gpu: GpuReading) -> str:
    return gpu.uuid or f"index-{gpu.index}"


def series_key(holder: Holder) -> Holder:
    """A container's window key: by name when the kubelet named it (the UID may be learned only later,
    when a process runs), by UID when only the cgroup fallback knows it."""
    if holder.pod:
        return Holder(namespace=holder.namespace, pod=holder.pod, container=holder.container)
    return holder


class Agent:
    def __init__(
        self, config: AgentConfig, reader: NvmlReader | None = None, podresources: PodResourcesClient | None = None
    ) -> None:
        self.config = config
        self.reader = reader or NvmlReader(config.nvml_library_path)
        self.podresources = podresources or PodResourcesClient(
            config.pod_resources_socket, config.gpu_resource_prefixes
        )
        self.lock = threading.Lock()
        self.gpu_window: Window[str] = Window(config.window_seconds)
        self.pod_window: Window[Holder] = Window(config.window_seconds)
        # GPM idle signals per container (percent), for pods whose GPUs have GPM
        self.signal_windows: dict[str, Window[Holder]] = {s: Window(config.window_seconds) for s in SIGNALS}
        self.gpu_info: dict[str, GpuReading] = {}  # latest reading per GPU still in the window
        self.pod_info: dict[Holder, PodSample] = {}
        self.latest: NodeReading | None = None
        self.latest_holders: dict[str, list[Holder]] = {}
        self.latest_samples: list[PodSample] = []
        self.counters = Counters()
        self.uid_names: dict[str, Holder] = {}
        self.nvml_ok = False
        self.attribution_source = "none"  # "podresources" | "cgroup" | "none"
        self.last_round_at: float | None = None
        self.last_loop_at: float | None = None
        self._podresources_state = ""  # last logged state, so the fallback is logged once, not every second
        self._stop = threading.Event()
        self._gpu_states: dict[int, str] = {}
        self.observe_duration: Callable[[float], None] | None = None  # the metrics histogram hooks in here

    # --- one round -------------------------------------------------------------------------------------
    def sample_once(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        started = time.perf_counter()
        try:
            reading = self.reader.read(int(now * 1_000_000))
        except NvmlUnavailable as exc:
            self._nvml_down(exc, now)
            return
        assignments = self._assignments()
        pids = {p.pid for g in reading.gpus for p in g.processes}
        pid_pods = cgroup.pods_of(pids, self.config.proc_root)
        result = attribution.attribute(reading.gpus, assignments, pid_pods, self.uid_names)
        attribution.learn_uid_names(result, self.uid_names)
        with self.lock:
            self._record(now, reading, result)
        if self.observe_duration is not None:
            self.observe_duration(time.perf_counter() - started)
        self._log_gpu_changes(reading)

    def _log_gpu_changes(self, reading: NodeReading) -> None:
        """Log a GPU going unknown or coming back once, not on every round (the metric counts every error)."""
        for gpu in reading.gpus:
            state = "ok" if gpu.ok else (gpu.error_kind or "unknown")
            if self._gpu_states.get(gpu.index, "ok") != state:
                calls = sorted({e.call for e in reading.errors if e.index == gpu.index})
                if gpu.ok:
                    log.info("gpu_recovered", gpu=gpu.index, uuid=gpu.uuid)
                else:
                    log.warning("gpu_unknown", gpu=gpu.index, uuid=gpu.uuid, kind=state, calls=calls)
            self._gpu_states[gpu.index] = state

    def _nvml_down(self, exc: NvmlUnavailable, now: float) -> None:
        with self.lock:
            if self.nvml_ok or self.counters.rounds == 0:
                log.error("nvml_unavailable", kind=exc.kind, error=str(exc))
            self.nvml_ok = False
            self.counters.source("nvml", exc.kind)
            for info in self.gpu_info.values():  # every GPU, and so every pod on one, is unknown while NVML is down
                info.ok, info.error_kind = False, exc.kind
            for sample in self.pod_info.values():
                sample.unknown = True
            self.last_loop_at = now

    def _assignments(self) -> Any:
        try:
            assignments = self.podresources.list_assignments()
        except PodResourcesUnavailable as exc:
            state = f"cgroup:{exc.kind}"
            if exc.kind != "NO_SOCKET":  # a socket that exists but fails is an error; an absent one is a mode
                with self.lock:
                    self.counters.source("podresources", exc.kind)
            if state != self._podresources_state:
                log.warning(
                    "podresources_unavailable_using_cgroups", kind=exc.kind, socket=self.podresources.socket_path
                )
            self._podresources_state = state
            self.attribution_source = "cgroup"
            return None
        if self._podresources_state != "podresources":
            log.info("podresources_connected", socket=self.podresources.socket_path)
        self._podresources_state = "podresources"
        self.attribution_source = "podresources"
        return assignments

    def _record(self, now: float, reading: NodeReading, result: attribution.Attribution) -> None:
        self.nvml_ok = True
        seen = {gpu_key(g) for g in reading.gpus}
        for key, info in self.gpu_info.items():
            if key not in seen:  # fell off the bus or was removed: unknown until it ages out of the window
                info.ok, info.error_kind = False, "GPU_NOT_FOUND"
        for gpu in reading.gpus:
            key = gpu_key(gpu)
            self.gpu_window.add(key, now, gpu.util if gpu.ok else None, gpu.mem_used if gpu.ok else None)
            self.gpu_info[key] = gpu
        for err in reading.errors:
            self.counters.nvml(err.index, err.uuid, err.kind)
        for sample in result.samples:
            key = series_key(sample.holder)
            previous = self.pod_info.get(key)
            if previous is not None and previous.holder.uid and not sample.holder.uid:
                sample.holder = previous.holder  # keep the UID learned earlier for this container
            self.pod_window.add(key, now, sample.util, sample.mem_used)
            self.pod_info[key] = sample
            for signal, window in self.signal_windows.items():
                value = None if sample.signals is None or sample.unknown else sample.signals.get(signal)
                if value is not None or window.has(key):  # a gap breaks the run; no GPM ever: no series
                    window.add(key, now, value, None)
        for key in self.gpu_window.prune(now):
            self.gpu_info.pop(key, None)
        for holder in self.pod_window.prune(now):
            self.pod_info.pop(holder, None)
        for window in self.signal_windows.values():
            window.prune(now)
        self.latest = reading
        self.latest_holders = result.holders
        self.latest_samples = result.samples
        self.last_round_at = self.last_loop_at = now
        self.counters.rounds += 1

    # --- health ----------------------------------------------------------------------------------------
    def ready(self) -> bool:
        return self.nvml_ok and self.last_round_at is not None

    def healthy(self, now: float | None = None) -> bool:
        """The loop is alive: it finished an iteration recently (NVML being down is not-ready, not unhealthy)."""
        now = time.time() if now is None else now
        if self.last_loop_at is None:
            return True  # still starting
        return now - self.last_loop_at <= max(30.0, 5 * self.config.interval_seconds)

    # --- loop ------------------------------------------------------------------------------------------
    def run_forever(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # keep sampling whatever one round did; the error is logged with its trace
                log.exception("sample_round_failed")
                with self.lock:
                    self.counters.source("agent", "round_failed")
                    self.last_loop_at = time.time()
            next_at += self.config.interval_seconds
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (slow NVML): skip missed ticks instead of bursting
                next_at = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def stop(self) -> None:
        """Ask run_forever to return after the current round (call close() once it has)."""
        self._stop.set()

    def close(self) -> None:
        self.podresources.close()
        self.reader.shutdown()
