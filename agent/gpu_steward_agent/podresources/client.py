"""Client of the kubelet pod-resources API (v1.PodResourcesLister/List over the kubelet's unix socket)."""

from __future__ import annotations

import os

import grpc

from ..model import Assignment
from . import api_pb2, api_pb2_grpc

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
# The kubelet caps pod-resources responses at 16 MiB (podresources.DefaultMaxMsgSize); so do we.
_MAX_MSG = 16 * 1024 * 1024


class PodResourcesUnavailable(RuntimeError):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"pod-resources unavailable: {kind}: {detail}")
        self.kind = kind


def is_gpu_resource(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p) for p in prefixes)


class PodResourcesClient:
    """Keeps one channel to the socket; List() returns the GPU assignments or raises PodResourcesUnavailable."""

    def __init__(self, socket_path: str, resource_prefixes: tuple[str, ...], timeout_s: float = 5.0) -> None:
        self.socket_path = socket_path
        self.resource_prefixes = resource_prefixes
        self.timeout_s = timeout_s
        self._channel: grpc.Channel | None = None
        self._stub: api_pb2_grpc.PodResourcesListerStub | None = None

    def available(self) -> bool:
        return os.path.exists(self.socket_path)

    def _connect(self) -> api_pb2_grpc.PodResourcesListerStub:
        if self._stub is None:
            self._channel = grpc.insecure_channel(
                f"unix://{self.socket_path}", options=[("grpc.max_receive_message_length", _MAX_MSG)]
            )
            self._stub = api_pb2_grpc.PodResourcesListerStub(self._channel)
        return self._stub

    def list_assignments(self) -> list[Assignment]:
        if not self.available():
            raise PodResourcesUnavailable("NO_SOCKET", self.socket_path)
        try:
            response = self._connect().List(api_pb2.ListPodResourcesRequest(), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            self.close()  # reconnect next round: the kubelet may have restarted and recreated its socket
            code = exc.code() if hasattr(exc, "code") else None
            raise PodResourcesUnavailable(code.name if code else "RPC_ERROR", str(exc)) from exc
        return assignments_from(response, self.resource_prefixes)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None


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
