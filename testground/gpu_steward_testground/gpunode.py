"""A simulated GPU node for tests and the demo: a KWOK node plus what a real GPU node would run.

KWOK gives the control plane a Node and makes pods "run" on it. What it cannot give is hardware:
here each simulated node gets the fake NVML library (its GPUs and their utilization, from a state
file), a stand-in kubelet pod-resources socket that says which GPU is assigned to which pod, and a
real ``gpu-steward-agent`` process reading both — the same agent binary a cluster runs, on loopback.

``sync(pods)`` plays the device plugin: each Running pod on this node that asks for GPUs gets free
GPU UUIDs. ``set_util(namespace, name, percent)`` sets how busy that pod's GPUs are.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_steward_testground import fakenvml
from gpu_steward_testground.fakekubelet import FakeKubelet
from gpu_steward_testground.processes import die_with_parent, free_port, stop_process
from gpu_steward_testground.runner import GPU_RESOURCE

GPU_MODEL_NAMES = {"NVIDIA-A100-SXM4-80GB": "NVIDIA A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3": "NVIDIA H100 80GB HBM3"}


def pod_gpus(pod: dict[str, Any]) -> int:
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        raw = (res.get("limits") or {}).get(GPU_RESOURCE) or (res.get("requests") or {}).get(GPU_RESOURCE)
        with contextlib.suppress(TypeError, ValueError):
            total += int(raw)
    return total


@dataclass
class SimulatedGpuNode:
    name: str
    gpus: int = 8
    product: str = "NVIDIA-A100-SXM4-80GB"
    interval_seconds: float = 1.0
    window_seconds: float = 60.0
    lib_dir: Path | None = None  # share one compiled fake NVML between nodes
    assignments: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (ns, pod) -> GPU indexes
    # (namespace, pod-name prefix) -> utilization percent of that pod's GPUs; unmatched pods are idle
    util_rules: dict[tuple[str, str], int] = field(default_factory=dict)

    def start(self) -> SimulatedGpuNode:
        # Unix socket paths are limited to 107 bytes: keep the folder short.
        self.dir = Path(tempfile.mkdtemp(prefix=f"gs-{self.name[:12]}-"))
        self.lib = fakenvml.build(self.lib_dir or self.dir)
        self.state_file = self.dir / "nvml-state"
        self.uuids = [f"GPU-{self.name}-{i:02d}" for i in range(self.gpus)]
        self._write_state()
        self.kubelet = FakeKubelet(self.dir / "kubelet.sock").start()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.dir / "agent.log", "ab")  # noqa: SIM115 - closed in stop()
        self.start_agent()
        return self

    def start_agent(self) -> None:
        """(Re)start the agent process on the same port (after ``stop_agent``: its samples start afresh).

        The new process dies with the *thread* that calls this (PR_SET_PDEATHSIG): call it from a thread
        that lives as long as the cluster, not from a short-lived one."""
        env = dict(os.environ, NODE_NAME=self.name, NVML_LIBRARY_PATH=str(self.lib),
                   FAKE_NVML_STATE=str(self.state_file),
                   GPU_STEWARD_AGENT_PORT=str(self.port), GPU_STEWARD_AGENT_BIND="127.0.0.1",
                   GPU_STEWARD_AGENT_INTERVAL_SECONDS=str(self.interval_seconds),
                   GPU_STEWARD_AGENT_WINDOW_SECONDS=str(self.window_seconds),
                   GPU_STEWARD_AGENT_POD_RESOURCES_SOCKET=str(self.dir / "kubelet.sock"),
                   GPU_STEWARD_AGENT_LOG_LEVEL="WARNING")
        self.agent = subprocess.Popen([sys.executable, "-m", "gpu_steward_agent"], env=env, stdout=self.log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      preexec_fn=die_with_parent)
        self._wait_ready()

    def stop_agent(self) -> None:
        """Stop only the agent (the node, its pods and GPUs stay): the operator sees no data for its pods."""
        stop_process(getattr(self, "agent", None), timeout=10)

    def agent_alive(self) -> bool:
        return getattr(self, "agent", None) is not None and self.agent.poll() is None

    def stop(self) -> None:
        stop_process(getattr(self, "agent", None), timeout=10)
        if getattr(self, "kubelet", None) is not None:
            self.kubelet.stop()
        if getattr(self, "log", None) is not None:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.agent.poll() is not None:
                raise RuntimeError(f"agent on {self.name} exited: {(self.dir / 'agent.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + "/healthz", timeout=1):
                return
            time.sleep(0.2)
        raise RuntimeError(f"agent on {self.name} did not answer on {self.url}")

    # ---- the device plugin's part --------------------------------------------------------------
    def sync(self, pods: list[dict[str, Any]]) -> None:
        """Assign GPUs to this node's Running GPU pods; release those of pods that are gone."""
        live: dict[tuple[str, str], dict[str, Any]] = {}
        for pod in pods:
            meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
            if spec.get("nodeName") == self.name and status.get("phase") == "Running" and pod_gpus(pod):
                live[(meta["namespace"], meta["name"])] = pod
        for key in list(self.assignments):
            if key not in live:
                del self.assignments[key]
        used = {i for ids in self.assignments.values() for i in ids}
        for key, pod in live.items():
            if key in self.assignments:
                continue
            free = [i for i in range(self.gpus) if i not in used][: pod_gpus(pod)]
            self.assignments[key] = free
            used.update(free)
        self.kubelet.set([
            {"namespace": ns, "name": name, "containers": [
                {"name": live[(ns, name)]["spec"]["containers"][0]["name"],
                 "devices": [{"resource": GPU_RESOURCE, "ids": [self.uuids[i] for i in ids]}]}]}
            for (ns, name), ids in self.assignments.items() if ids
        ])
        self._write_state()

    def set_util(self, namespace: str, name_prefix: str, percent: int) -> None:
        """GPUs of pods in ``namespace`` whose name starts with ``name_prefix`` run at ``percent``."""
        self.util_rules[(namespace, name_prefix)] = percent
        self._write_state()

    def _util_of(self, namespace: str, name: str) -> int:
        matches = [(len(prefix), pct) for (ns, prefix), pct in self.util_rules.items()
                   if ns == namespace and name.startswith(prefix)]
        return max(matches)[1] if matches else 0

    def _write_state(self) -> None:
        util: dict[int, int] = {}
        for (ns, name), ids in self.assignments.items():
            for i in ids:
                util[i] = self._util_of(ns, name)
        fakenvml.write_state(self.state_file, {"gpus": [
            {"uuid": uuid, "name": GPU_MODEL_NAMES.get(self.product, self.product.replace("-", " ")),
             "util": util.get(i, 0), "memUtil": 5 if i in util else 0,
             "memTotal": 85899345920, "memUsed": 4 * 2**30 if i in util else 0,
             "powerMw": 300000 if util.get(i, 0) else 60000, "temp": 40}
            for i, uuid in enumerate(self.uuids)]})
