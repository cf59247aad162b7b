"""Attribution of device figures to pods: exclusive, shared (time-slicing/MPS), cgroup fallback, MIG."""

from __future__ import annotations

import pytest

from gpu_steward_agent.attribution import attribute, learn_uid_names, resolve_device_id
from gpu_steward_agent.model import Assignment, GpuReading, Holder, MigReading, PodRef, ProcessReading

G0, G1 = "GPU-aaaaaaaa-0000-4000-8000-000000000000", "GPU-bbbbbbbb-0000-4000-8000-000000000001"
UID_A, UID_B = "aaaaaaaa-1111-4111-8111-111111111111", "bbbbbbbb-2222-4222-8222-222222222222"


def gpu(
    index: int,
    uuid: str,
    util: float,
    procs: list[ProcessReading] | None = None,
    process_util: bool = True,
    mem: int = 1000,
) -> GpuReading:
    return GpuReading(
        index=index,
        uuid=uuid,
        model="A100",
        util=util,
        mem_util=0.0,
        mem_used=mem,
        mem_total=10_000,
        processes=procs or [],
        process_util=process_util,
    )


def proc(pid: int, sm: float | None, mem: int = 100) -> ProcessReading:
    return ProcessReading(pid=pid, used_memory=mem, sm_util=sm)


def assign(ns: str, pod: str, *ids: str, container: str = "main") -> Assignment:
    return Assignment(namespace=ns, pod=pod, container=container, resource="nvidia.com/gpu", device_ids=ids)


def by_pod(samples):  # type: ignore[no-untyped-def]
    return {(s.holder.namespace, s.holder.pod, s.holder.uid): s for s in samples}


def test_device_ids_resolve_replicas_and_indices() -> None:
    assert resolve_device_id(f"{G0}::3", {}) == G0
    assert resolve_device_id("1", {"1": G1}) == G1
    assert resolve_device_id("MIG-x", {}) == "MIG-x"


def test_exclusive_gpu_gets_device_figures_and_uid_from_cgroup() -> None:
    gpus = [gpu(0, G0, 73.0, [proc(10, 20.0)]), gpu(1, G1, 5.0)]
    result = attribute(gpus, [assign("ml", "train", G0), assign("ml", "idle", "1")], {10: PodRef(UID_A)})
    s = by_pod(result.samples)
    train = s[("ml", "train", UID_A)]
    assert (train.util, train.mem_used, train.attribution, train.shared) == (73.0, 1000, "device", False)
    idle = s[("ml", "idle", "")]
    assert (idle.util, idle.gpus) == (5.0, [G1])


def test_pod_with_two_gpus_averages_utilization_and_sums_memory() -> None:
    gpus = [gpu(0, G0, 80.0, mem=1000), gpu(1, G1, 20.0, mem=3000)]
    [s] = attribute(gpus, [assign("ml", "big", G0, G1)], {}).samples
    assert (s.util, s.mem_used, sorted(s.gpus)) == (50.0, 4000, sorted([G0, G1]))


def test_shared_gpu_with_process_figures_splits_per_pod() -> None:
    gpus = [gpu(0, G0, 90.0, [proc(10, 60.0, 500), proc(11, 25.0, 200), proc(20, 5.0, 300)])]
    pid_pods = {10: PodRef(UID_A), 11: PodRef(UID_A), 20: PodRef(UID_B)}
    known = {UID_A: Holder("ml", "a", "main", UID_A), UID_B: Holder("ml", "b", "main", UID_B)}
    result = attribute(gpus, [assign("ml", "a", f"{G0}::0"), assign("ml", "b", f"{G0}::1")], pid_pods, known)
    s = by_pod(result.samples)
    assert (s[("ml", "a", UID_A)].util, s[("ml", "a", UID_A)].mem_used) == (85.0, 700)
    assert (s[("ml", "b", UID_B)].util, s[("ml", "b", UID_B)].mem_used) == (5.0, 300)
    assert all(x.attribution == "process" and not x.shared for x in result.samples)


def test_shared_gpu_holder_without_processes_is_zero_when_every_process_is_named() -> None:
    gpus = [gpu(0, G0, 90.0, [proc(10, 90.0)])]
    known = {UID_A: Holder("ml", "a", "main", UID_A)}
    result = attribute(gpus, [assign("ml", "a", G0), assign("ml", "idle", G0)], {10: PodRef(UID_A)}, known)
    s = by_pod(result.samples)
    assert s[("ml", "idle", "")].util == 0.0
    assert s[("ml", "a", UID_A)].util == 90.0


def test_shared_gpu_names_the_last_pod_by_elimination() -> None:
    gpus = [gpu(0, G0, 40.0, [proc(10, 30.0), proc(20, 10.0)])]
    pid_pods = {10: PodRef(UID_A), 20: PodRef(UID_B)}
    known = {UID_A: Holder("ml", "a", "main", UID_A)}
    result = attribute(gpus, [assign("ml", "a", G0), assign("ml", "b", G0)], pid_pods, known)
    s = by_pod(result.samples)
    assert s[("ml", "b", UID_B)].util == 10.0
    learned: dict[str, Holder] = {}
    learn_uid_names(result, learned)
    assert learned[UID_B].pod == "b"


def test_shared_gpu_without_process_figures_is_marked_shared_not_copied() -> None:
    gpus = [gpu(0, G0, 90.0, [proc(10, None, 500), proc(20, None, 300)], process_util=False)]
    pid_pods = {10: PodRef(UID_A), 20: PodRef(UID_B)}
    known = {UID_A: Holder("ml", "a", "main", UID_A), UID_B: Holder("ml", "b", "main", UID_B)}
    result = attribute(gpus, [assign("ml", "a", G0), assign("ml", "b", G0)], pid_pods, known)
    assert len(result.samples) == 2
    for s in result.samples:
        assert s.shared and s.util is None and s.attribution == "none"
        assert s.util != 90.0
    assert {s.mem_used for s in result.samples} == {500, 300}


def test_shared_gpu_without_any_process_is_idle_for_everyone() -> None:
    gpus = [gpu(0, G0, 0.0, [], process_util=False)]
    result = attribute(gpus, [assign("ml", "a", G0), assign("ml", "b", G0)], {})
    assert [(s.util, s.shared) for s in result.samples] == [(0.0, False), (0.0, False)]


def test_cgroup_fallback_names_pods_by_uid() -> None:
    gpus = [gpu(0, G0, 64.0, [proc(10, 50.0)]), gpu(1, G1, 30.0, [proc(20, 20.0), proc(30, 10.0)])]
    pid_pods = {10: PodRef(UID_A), 20: PodRef(UID_B), 30: PodRef("cccccccc-3333-4333-8333-333333333333")}
    result = attribute(gpus, None, pid_pods)
    s = by_pod(result.samples)
    a = s[("", "", UID_A)]
    assert (a.util, a.attribution) == (64.0, "device")
    assert s[("", "", UID_B)].util == 20.0  # G1 is shared by two pods: per-process figures
    assert s[("", "", UID_B)].attribution == "process"


def test_unknown_gpu_gives_its_holders_no_figures() -> None:
    lost = GpuReading(index=0, uuid=G0, ok=False, error_kind="GPU_IS_LOST")
    [s] = attribute([lost], [assign("ml", "a", G0)], {}).samples
    assert s.unknown and s.util is None and s.mem_used is None


def test_mig_instances_are_attributed_by_mig_uuid_memory_only() -> None:
    migs = [MigReading("MIG-1", "1g.10gb", 1, 0, 2048, 10_000), MigReading("MIG-2", "1g.10gb", 2, 0, 0, 10_000)]
    g = gpu(0, G0, 0.0)
    g.migs = migs
    result = attribute(
        [g],
        [
            Assignment("ml", "m1", "main", "nvidia.com/mig-1g.10gb", ("MIG-1",)),
            Assignment("ml", "m2", "main", "nvidia.com/mig-1g.10gb", ("MIG-2",)),
        ],
        {},
    )
    s = by_pod(result.samples)
    assert (s[("ml", "m1", "")].mem_used, s[("ml", "m1", "")].gpus, s[("ml", "m1", "")].util) == (2048, ["MIG-1"], None)
    assert s[("ml", "m2", "")].mem_used == 0


@pytest.mark.parametrize("util", [0.0, 100.0])
def test_process_sum_is_capped_at_100(util: float) -> None:
    gpus = [gpu(0, G0, util, [proc(10, 80.0), proc(11, 70.0), proc(20, 0.0)])]
    pid_pods = {10: PodRef(UID_A), 11: PodRef(UID_A), 20: PodRef(UID_B)}
    result = attribute(gpus, None, pid_pods)
    assert by_pod(result.samples)[("", "", UID_A)].util == 100.0


def test_a_container_keeps_one_identity_when_only_one_of_its_gpus_runs_processes() -> None:
    gpus = [gpu(0, G0, 60.0, [proc(10, 60.0)]), gpu(1, G1, 0.0)]
    [s] = attribute(gpus, [assign("ml", "big", G0, G1)], {10: PodRef(UID_A)}).samples
    assert (s.holder.pod, s.holder.uid, s.util, sorted(s.gpus)) == ("big", UID_A, 30.0, sorted([G0, G1]))


def test_a_learned_uid_stays_with_the_container_when_its_processes_stop() -> None:
    known: dict[str, Holder] = {}
    first = attribute([gpu(0, G0, 50.0, [proc(10, 50.0)])], [assign("ml", "nb", G0)], {10: PodRef(UID_A)}, known)
    learn_uid_names(first, known)
    [later] = attribute([gpu(0, G0, 0.0)], [assign("ml", "nb", G0)], {}, known).samples
    assert (later.holder.pod, later.holder.uid, later.util) == ("nb", UID_A, 0.0)
