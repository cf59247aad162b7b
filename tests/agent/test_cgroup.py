from __future__ import annotations

from pathlib import Path

from fixtures.fake_proc import cgroup_text, write_proc
from gpu_steward_agent import cgroup

UID = "1f2e3d4c-5b6a-4789-9abc-def012345678"
CID = "ab" * 32


def test_systemd_driver_path_gives_uid_with_dashes_and_container() -> None:
    ref = cgroup.parse(cgroup_text(UID, CID, driver="systemd", qos="besteffort"))
    assert ref is not None
    assert (ref.uid, ref.container_id) == (UID, CID)


def test_cgroupfs_v1_path() -> None:
    ref = cgroup.parse(cgroup_text(UID, CID, driver="cgroupfs"))
    assert ref is not None
    assert (ref.uid, ref.container_id) == (UID, CID)


def test_guaranteed_pod_without_qos_slice() -> None:
    text = f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/cri-containerd-{CID}.scope\n"
    ref = cgroup.parse(text)
    assert ref is not None and ref.uid == UID


def test_host_process_is_no_pod() -> None:
    assert cgroup.parse("0::/system.slice/containerd.service\n") is None
    assert cgroup.parse("") is None


def test_pods_of_skips_vanished_and_host_processes(tmp_path: Path) -> None:
    root = write_proc(tmp_path, {100: (UID, CID)})
    found = cgroup.pods_of([1, 100, 999], root)
    assert list(found) == [100]
    assert found[100].uid == UID
