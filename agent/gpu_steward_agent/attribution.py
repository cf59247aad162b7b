"""Pure attribution of one round's GPU readings to pods (no I/O: readings and lookups come in as arguments).

Who holds a device comes from the kubelet (pod-resources), or, when that is unavailable, from the cgroups
of the processes NVML sees. A device held by one container gets the device's figures. A device held by
several (time-slicing, MPS) gets per-process figures summed per pod when NVML has them; otherwise every
holder is marked shared with no utilization — copying the device value to each pod would make an idle
pod look busy (or a busy one idle).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from .fields import SIGNALS
from .model import Assignment, GpuReading, Holder, PodRef, PodSample, ProcessReading

_REPLICA = re.compile(r"::\d+$")  # NVIDIA device plugin time-slicing replicas: "<uuid>::<n>"


@dataclass(slots=True)
class Attribution:
    samples: list[PodSample]
    holders: dict[str, list[Holder]] = field(default_factory=dict)  # device UUID (GPU or MIG) -> holders


def resolve_device_id(device_id: str, by_index: dict[str, str]) -> str:
    """A device plugin ID to a UUID: strips a replica suffix, maps a bare index ("0") to its GPU UUID."""
    base = _REPLICA.sub("", device_id)
    return by_index.get(base, base)


def _holders_from_kubelet(assignments: list[Assignment], by_index: dict[str, str]) -> dict[str, list[Holder]]:
    holders: dict[str, list[Holder]] = defaultdict(list)
    for a in assignments:
        holder = Holder(namespace=a.namespace, pod=a.pod, container=a.container)
        for device_id in a.device_ids:
            uuid = resolve_device_id(device_id, by_index)
            if holder not in holders[uuid]:
                holders[uuid].append(holder)
    return holders


def _uid_groups(procs: list[ProcessReading], pid_pods: dict[int, PodRef]) -> dict[str, list[ProcessReading]]:
    groups: dict[str, list[ProcessReading]] = defaultdict(list)
    for p in procs:
        ref = pid_pods.get(p.pid)
        if ref is not None:
            groups[ref.uid].append(p)
    return groups


def signals_of(prof: dict[str, float] | None) -> dict[str, float] | None:
    """GPM figures (DCGM ratios) -> the idle signals in percent; None without GPM."""
    if prof is None:
        return None
    out = {signal: prof[name] * 100.0 for signal, name in SIGNALS.items() if name in prof}
    return out or None


def _sum_mem(procs: list[ProcessReading]) -> int | None:
    values = [p.used_memory for p in procs if p.used_memory is not None]
    return sum(values) if values else None


def _with_uid(holder: Holder, uid: str) -> Holder:
    if holder.uid or not uid:
        return holder
    return Holder(namespace=holder.namespace, pod=holder.pod, container=holder.container, uid=uid)


def _attribute_gpu(
    gpu: GpuReading, holders: list[Holder], pid_pods: dict[int, PodRef], uid_names: dict[str, Holder]
) -> list[PodSample]:
    if not gpu.ok:
        return [PodSample(h, [gpu.uuid], None, None, "none", unknown=True) for h in holders]
    groups = _uid_groups(gpu.processes, pid_pods)
    if len(holders) == 1:
        uid = next(iter(groups)) if len(groups) == 1 else ""
        return [PodSample(_with_uid(holders[0], uid), [gpu.uuid], gpu.util, gpu.mem_used, "device",
                          signals=signals_of(gpu.prof))]
    # Shared device. Name each process group after its holder where we know which holder that UID is.
    by_name = {(h.namespace, h.pod, h.container): h for h in holders}
    by_uid = {h.uid: h for h in holders if h.uid}  # the cgroup fallback's holders are UIDs
    names: dict[str, Holder] = {}
    for uid in groups:
        known = uid_names.get(uid)
        holder = by_uid.get(uid) or (by_name.get((known.namespace, known.pod, known.container)) if known else None)
        if holder is not None:
            names[uid] = holder
    unnamed = [uid for uid in groups if uid not in names]
    unmatched = [h for h in holders if h not in names.values()]
    if len(unnamed) == 1 and len(unmatched) == 1:  # by elimination
        names[unnamed[0]] = unmatched[0]
        unnamed, unmatched = [], []
    samples: list[PodSample] = []
    for uid, procs in groups.items():
        named = _with_uid(names[uid], uid) if uid in names else Holder(uid=uid)
        if gpu.process_util:
            util = min(100.0, sum(p.sm_util or 0.0 for p in procs))
            samples.append(PodSample(named, [gpu.uuid], util, _sum_mem(procs), "process"))
        else:
            samples.append(PodSample(named, [gpu.uuid], None, _sum_mem(procs), "none", shared=True))
    for h in unmatched:
        if gpu.processes_known and (not gpu.processes or (gpu.process_util and not unnamed)):
            # No process on the GPU belongs to this holder: it ran nothing here this round.
            samples.append(PodSample(h, [gpu.uuid], 0.0, 0, "process"))
        else:
            samples.append(PodSample(h, [gpu.uuid], None, None, "none", shared=True))
    return samples


def _attribute_mig(gpu: GpuReading, holders_by_uuid: dict[str, list[Holder]]) -> list[PodSample]:
    # NVML has no utilization counters per MIG instance: memory, and GPM figures where the GPU has GPM
    # (nvmlGpmMigSampleGet) and one container holds the instance.
    samples = []
    for mig in gpu.migs:
        holders = holders_by_uuid.get(mig.uuid, [])
        for h in holders:
            unknown = not gpu.ok
            signals = None if unknown or len(holders) != 1 else signals_of(mig.prof)
            samples.append(PodSample(h, [mig.uuid], None, None if unknown else mig.mem_used, "none", unknown=unknown,
                                     signals=signals))
    return samples


def attribute(
    gpus: list[GpuReading],
    assignments: list[Assignment] | None,
    pid_pods: dict[int, PodRef],
    uid_names: dict[str, Holder] | None = None,
) -> Attribution:
    """Per-container samples for one round.

    assignments=None means pod-resources is unavailable: holders then come from process cgroups (pods
    known by UID only). uid_names is what earlier rounds learned about which UID is which named pod.
    """
    uid_names = uid_names if uid_names is not None else {}
    by_index = {str(g.index): g.uuid for g in gpus if g.uuid}
    if assignments is not None:
        holders = _holders_from_kubelet(assignments, by_index)
    else:
        holders = defaultdict(list)
        for g in gpus:
            for uid in _uid_groups(g.processes, pid_pods):
                holders[g.uuid].append(Holder(uid=uid))
            for mig in g.migs:
                procs = [
                    p
                    for p in g.processes
                    if (p.gpu_instance_id, p.compute_instance_id) == (mig.gpu_instance_id, mig.compute_instance_id)
                ]
                holders[mig.uuid].extend(Holder(uid=uid) for uid in _uid_groups(procs, pid_pods))
    per_gpu: list[PodSample] = []
    for g in gpus:
        if g.migs:
            per_gpu.extend(_attribute_mig(g, holders))
        elif holders.get(g.uuid):
            per_gpu.extend(_attribute_gpu(g, holders[g.uuid], pid_pods, uid_names))
    # Name-only holders get the UID learned in earlier rounds, so series keep one identity.
    uid_of = {(h.namespace, h.pod, h.container): uid for uid, h in uid_names.items()}
    for s in per_gpu:
        if s.holder.pod and not s.holder.uid:
            s.holder = _with_uid(s.holder, uid_of.get((s.holder.namespace, s.holder.pod, s.holder.container), ""))
    return Attribution(samples=merge_by_holder(per_gpu), holders=dict(holders))


def merge_by_holder(samples: list[PodSample]) -> list[PodSample]:
    """One sample per container: utilization is the mean over its GPUs (unknown if any is), memory the sum."""
    merged: dict[tuple[str, ...], list[PodSample]] = {}
    for s in samples:
        h = s.holder
        key = (h.namespace, h.pod, h.container) if h.pod else (h.uid,)
        merged.setdefault(key, []).append(s)
    out = []
    for parts in merged.values():
        if len(parts) == 1:
            out.append(parts[0])
            continue
        holder = next((p.holder for p in parts if p.holder.uid), parts[0].holder)
        utils = [p.util for p in parts]
        mems = [p.mem_used for p in parts if p.mem_used is not None]
        kinds = {p.attribution for p in parts}
        signals: dict[str, float] | None = None
        if all(p.signals for p in parts):  # a signal only where every GPU of the container gives it
            common = set.intersection(*(set(p.signals or {}) for p in parts))
            signals = {k: sum((p.signals or {})[k] for p in parts) / len(parts) for k in common} or None
        out.append(
            PodSample(
                holder=holder,
                gpus=[u for p in parts for u in p.gpus],
                util=None if any(u is None for u in utils) else sum(u for u in utils if u is not None) / len(utils),
                mem_used=sum(mems) if mems else None,
                attribution=kinds.pop() if len(kinds) == 1 else "none",
                shared=any(p.shared for p in parts),
                unknown=any(p.unknown for p in parts),
                signals=signals,
            )
        )
    return out


def learn_uid_names(attribution: Attribution, known: dict[str, Holder]) -> None:
    """Remember UID -> named holder from samples that carry both (a device held by one named container)."""
    for s in attribution.samples:
        h = s.holder
        if h.uid and h.pod:
            known[h.uid] = h
