"""The versioned JSON summary the operator reads (GET /v1/summary): one request per node.

Schema (apiVersion gpusteward.dev/agent-v1). Statistics are over the last `windowSeconds` (at most); what
the samples actually cover is per entry: `coveredFrom`..`lastSampleAt` (`coveredSeconds`), the unbroken run
of utilization samples ending at the latest one (an agent restart, an NVML error or a pause in sampling
breaks it; `coveredFrom` is null when the latest sample carried no utilization):
  gpus[]: uuid, index, model, status ok|unknown, error (NVML error name when unknown), util {mean, max}
          (percent, null without data), memUsedBytes (latest), memUsedBytesMax, memTotalBytes, samples,
          lastSampleAt, pods [{namespace, name, container, uid}] (current holders), mig [{uuid, ...}]
  pods[]: namespace, name, uid, container (any may be "" where the source cannot say: the cgroup fallback
          knows only the UID; join on it), gpus [uuid], util {mean, max}, memUsedBytes, memUsedBytesMax,
          samples, utilSamples, lastSampleAt, coveredFrom, coveredSeconds, attribution device|process|none,
          shared (utilization could not be split on a shared GPU: util is null, never the device's value),
          status ok|unknown, signals (only for containers whose GPUs or MIG instances are theirs alone and
          have GPM, Hopper and later): {GraphicsActive|SMActive|TensorActive: {mean, max (percent 0..100),
          samples, lastSampleAt, coveredFrom, coveredSeconds}} — the profiling figures an IdlePolicy's
          idle.signal chooses; a pod without them has no "signals" key (the operator falls back to util)
An operator must treat util null, status unknown or an old lastSampleAt as "no data" — never as idle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import Agent
    from .model import Holder
    from .window import Stats

API_VERSION = "gpusteward.dev/agent-v1"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _util(stats: Stats) -> dict[str, float | None]:
    return {"mean": None if stats.util_mean is None else round(stats.util_mean, 3), "max": stats.util_max}


def _holder(h: Holder) -> dict[str, str]:
    return {"namespace": h.namespace, "name": h.pod, "container": h.container, "uid": h.uid}


def _coverage(stats: Stats) -> dict[str, Any]:
    return {"coveredFrom": None if stats.covered_from is None else iso(stats.covered_from),
            "coveredSeconds": round(stats.covered_seconds, 3)}


def _signals(agent: Agent, key: Holder, now: float, max_gap: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for signal, window in agent.signal_windows.items():
        stats = window.stats(key, now, max_gap)
        if stats is None or stats.util_samples == 0:
            continue
        out[signal] = {**_util(stats), "samples": stats.util_samples, "lastSampleAt": iso(stats.last_at),
                       **_coverage(stats)}
    return out


def build(agent: Agent, now: float) -> dict[str, Any]:
    """Assemble the summary; the caller holds agent.lock."""
    # Sampling that paused for more than a few rounds (a stalled or restarted agent) covers nothing in between.
    max_gap = 3 * agent.config.interval_seconds
    gpus = []
    for key, info in sorted(agent.gpu_info.items(), key=lambda kv: kv[1].index):
        stats = agent.gpu_window.stats(key, now, max_gap)
        if stats is None:
            continue
        gpus.append(
            {
                "uuid": info.uuid,
                "index": info.index,
                "model": info.model,
                "status": "ok" if info.ok else "unknown",
                "error": None if info.ok else info.error_kind,
                "util": _util(stats),
                "memUsedBytes": stats.mem_last,
                "memUsedBytesMax": stats.mem_max,
                "memTotalBytes": info.mem_total,
                "samples": stats.samples,
                "lastSampleAt": iso(stats.last_at),
                **_coverage(stats),
                "pods": [_holder(h) for h in agent.latest_holders.get(info.uuid, [])],
                "mig": [
                    {
                        "uuid": m.uuid,
                        "name": m.name,
                        "gpuInstanceId": m.gpu_instance_id,
                        "computeInstanceId": m.compute_instance_id,
                        "memUsedBytes": m.mem_used,
                        "memTotalBytes": m.mem_total,
                        "pods": [_holder(h) for h in agent.latest_holders.get(m.uuid, [])],
                    }
                    for m in info.migs
                ],
            }
        )
    pods = []
    for key, sample in agent.pod_info.items():
        stats = agent.pod_window.stats(key, now, max_gap)
        if stats is None:
            continue
        pods.append(
            {
                **_holder(sample.holder),
                "gpus": sample.gpus,
                "util": _util(stats),
                "memUsedBytes": stats.mem_last,
                "memUsedBytesMax": stats.mem_max,
                "samples": stats.samples,
                "utilSamples": stats.util_samples,
                "lastSampleAt": iso(stats.last_at),
                **_coverage(stats),
                "attribution": sample.attribution,
                "shared": sample.shared,
                "status": "unknown" if sample.unknown else "ok",
            }
        )
        signals = _signals(agent, key, now, max_gap)
        if signals:
            pods[-1]["signals"] = signals
    pods.sort(key=lambda p: (p["namespace"], p["name"], p["container"], p["uid"]))
    return {
        "apiVersion": API_VERSION,
        "node": agent.config.node_name,
        "generatedAt": iso(now),
        "windowSeconds": agent.config.window_seconds,
        "intervalSeconds": agent.config.interval_seconds,
        "nvml": {"status": "ok" if agent.nvml_ok else "unavailable", "driverVersion": agent.reader.driver_version},
        "attributionSource": agent.attribution_source,
        "gpus": gpus,
        "pods": pods,
    }
