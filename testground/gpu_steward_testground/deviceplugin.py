"""Plays the GPU device plugin for simulated nodes: keeps their GPU assignments in step with the pods."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from gpu_steward_testground.gpunode import SimulatedGpuNode


class DevicePluginLoop:
    def __init__(self, api_client: Any, nodes: Sequence[SimulatedGpuNode], interval: float = 0.5) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.nodes = list(nodes)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="device-plugin", daemon=True)

    def start(self) -> DevicePluginLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sync_once(self) -> None:
        pods = self.core.api_client.sanitize_for_serialization(self.core.list_pod_for_all_namespaces().items)
        for node in self.nodes:
            node.sync(pods)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # an apiserver blip: try again next tick
                self.sync_once()
            self._stop.wait(self.interval)
