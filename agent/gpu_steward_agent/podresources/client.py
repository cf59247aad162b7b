"""Client of the kubelet pod-resources API (v1.PodResourcesLister/List over the kubelet's unix socket)."""

from __future__ import annotations

import os

from ..model import Assignment
from . import api_pb2
from .unary import UnaryCallError, unary_call

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
LIST_PATH = "/v1.PodResourcesLister/List"


class PodResourcesUnavailable(RuntimeError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"pod-resources unavailable: {kind}: {detail}")
        self.kind = kind


def is_gpu_resource(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p) for p in prefixes)


class PodResourcesClient:
    """list_assignments() returns the GPU assignments or raises PodResourcesUnavailable (kind says why)."""

    def __init__(self, socket_path: str, resource_prefixes: tuple[str, ...], timeout_s: float = 5.0) -> None:
        self.socket_path = socket_path
        self.resource_prefixes = resource_prefixes
        self.timeout_s = timeout_s

    def available(self) -> bool:
        return os.path.exists(self.socket_path)

    def list_assignments(self) -> list[Assignment]:
        if not self.available():
            raise PodResourcesUnavailable("NO_SOCKET", self.socket_path)
        request = api_pb2.ListPodResourcesRequest().SerializeToString()
        try:
            raw = unary_call(self.socket_path, LIST_PATH, request, self.timeout_s)
            response = api_pb2.ListPodResourcesResponse.FromString(raw)
        except UnaryCallError as exc:
            raise PodResourcesUnavailable(exc.kind, str(exc)) from exc
        except Exception as exc:  # protobuf DecodeError: not a pod-resources answer
            raise PodResourcesUnavailable("BAD_RESPONSE", str(exc)) from exc
        return assignments_from(response, self.resource_prefixes)

    def close(self) -> None:
        """Nothing held between calls (one connection per call); kept for the agent's shutdown path."""


def assignments_from(response: api_pb2.ListPodResourcesResponse, prefixes: tuple[str, ...]) -> list[Assignment]:
    out = []
    for pod in response.pod_resources:
        for container in pod.containers:
            for dev in container.devices:
                if dev.device_ids and is_gpu_resource(dev.resource_name, prefixes):
                    out.append(
                        Assignment(
                            namespace=pod.namespace,
                            pod=pod.name,
                            container=container.name,
                            resource=dev.resource_name,
                            device_ids=tuple(dev.device_ids),
                        )
                    )
    return out
