"""A stand-in for the kubelet's pod-resources API on a unix socket (the real v1.PodResourcesLister).

KWOK nodes have no kubelet and no device plugin, so nothing assigns GPU device IDs to pods. For
tests and the local demo this serves exactly what a kubelet would: per pod and container, the
``nvidia.com/gpu`` device IDs assigned to it. The agent's client talks to it as to a kubelet.
Pods are dicts: {"namespace", "name", "containers": [{"name", "devices": [{"resource", "ids"}]}]}.
"""

from __future__ import annotations

import os
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

# This process forks children (agents, the operator) while the server runs; gRPC's fork handlers
# would only print warnings about it.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc

from gpu_steward_agent.podresources import api_pb2, api_pb2_grpc


class _Lister(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self, owner: FakeKubelet) -> None:
        self.owner = owner

    def List(self, request: api_pb2.ListPodResourcesRequest, context: Any) -> api_pb2.ListPodResourcesResponse:
        with self.owner.lock:
            self.owner.calls += 1
            return api_pb2.ListPodResourcesResponse(pod_resources=[_pod(p) for p in self.owner.pods])

    def Get(self, request: api_pb2.GetPodResourcesRequest, context: Any) -> api_pb2.GetPodResourcesResponse:
        with self.owner.lock:
            for p in self.owner.pods:
                if p["name"] == request.pod_name and p["namespace"] == request.pod_namespace:
                    return api_pb2.GetPodResourcesResponse(pod_resources=_pod(p))
        context.abort(grpc.StatusCode.NOT_FOUND, f"pod {request.pod_namespace}/{request.pod_name} not found")
        raise AssertionError("unreachable")


def _pod(p: dict[str, Any]) -> api_pb2.PodResources:
    return api_pb2.PodResources(
        name=p["name"],
        namespace=p["namespace"],
        containers=[
            api_pb2.ContainerResources(
                name=c["name"],
                devices=[api_pb2.ContainerDevices(resource_name=d["resource"], device_ids=d["ids"])
                         for d in c.get("devices", [])],
            )
            for c in p.get("containers", [])
        ],
    )


class FakeKubelet:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self.lock = threading.Lock()
        self.pods: list[dict[str, Any]] = []
        self.calls = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(_Lister(self), self.server)
        if self.server.add_insecure_port(f"unix://{socket_path}") == 0:
            raise RuntimeError(f"cannot listen on unix://{socket_path}")

    def set(self, pods: list[dict[str, Any]]) -> None:
        with self.lock:
            self.pods = list(pods)

    def start(self) -> FakeKubelet:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None).wait()
