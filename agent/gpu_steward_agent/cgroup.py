"""Maps a process to its pod through /proc/<pid>/cgroup — the fallback when the kubelet socket is absent.

Kubelet cgroup paths carry the pod UID and the container ID, in both cgroup drivers:
  cgroupfs: /kubepods/burstable/pod1f2e.../0123abcd...                         (UID with dashes)
  systemd:  /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1f2e_....slice/
            cri-containerd-0123abcd....scope                                   (UID with underscores)
NVML reports host PIDs, so in a pod the agent needs hostPID and the host's /proc (proc_root).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .model import PodRef

_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")
_CONTAINER = re.compile(r"(?:^|[-/])([0-9a-f]{64})(?:\.scope)?$")


def parse(text: str) -> PodRef | None:
    """The pod a cgroup file's content points at, or None for a process outside any pod."""
    for line in text.splitlines():
        path = line.rsplit(":", 1)[-1].strip()
        match = _UID.search(path)
        if not match:
            continue
        container = _CONTAINER.search(path)
        return PodRef(uid=match.group(1).replace("_", "-"), container_id=container.group(1) if container else "")
    return None


def pods_of(pids: Iterable[int], proc_root: str | Path = "/proc") -> dict[int, PodRef]:
    """pid -> PodRef for the pids whose cgroup names a pod; vanished or foreign processes are skipped."""
    root = Path(proc_root)
    found: dict[int, PodRef] = {}
    for pid in pids:
        try:
            text = (root / str(pid) / "cgroup").read_text()
        except OSError:  # the process ended, or we may not read it
            continue
        ref = parse(text)
        if ref is not None:
            found[pid] = ref
    return found
