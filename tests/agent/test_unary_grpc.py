"""The agent's minimal gRPC unary client against grpcio's real server (the fake kubelet), edge cases included."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from fixtures.podresources import FakeKubelet, fake_kubelet, gpu_pod  # noqa: F401 - fixtures
from gpu_steward_agent.podresources import api_pb2
from gpu_steward_agent.podresources.client import PodResourcesClient
from gpu_steward_agent.podresources.unary import UnaryCallError, _hpack_int, unary_call


def test_get_sends_request_fields_the_server_reads(fake_kubelet: FakeKubelet) -> None:  # noqa: F811
    fake_kubelet.set([gpu_pod("ml", "a", ["GPU-1"]), gpu_pod("ml", "b", ["GPU-2"])])
    req = api_pb2.GetPodResourcesRequest(pod_name="b", pod_namespace="ml").SerializeToString()
    raw = unary_call(str(fake_kubelet.socket_path), "/v1.PodResourcesLister/Get", req)
    got = api_pb2.GetPodResourcesResponse.FromString(raw)
    assert got.pod_resources.name == "b"
    assert list(got.pod_resources.containers[0].devices[0].device_ids) == ["GPU-2"]


def test_a_failed_call_is_reported(fake_kubelet: FakeKubelet) -> None:  # noqa: F811
    req = api_pb2.GetPodResourcesRequest(pod_name="absent", pod_namespace="ml").SerializeToString()
    with pytest.raises(UnaryCallError) as err:  # the server answers NOT_FOUND as trailers only
        unary_call(str(fake_kubelet.socket_path), "/v1.PodResourcesLister/Get", req)
    assert err.value.kind == "CALL_FAILED"
    with pytest.raises(UnaryCallError, match="CALL_FAILED"):
        unary_call(str(fake_kubelet.socket_path), "/v1.PodResourcesLister/NoSuchMethod", b"")


def test_large_response_spans_many_frames(fake_kubelet: FakeKubelet) -> None:  # noqa: F811
    # ~2,000 pods: well over the 16 KiB frame size and the 64 KiB default flow-control window.
    pods = [gpu_pod(f"team-{i % 37}", f"worker-{i:05d}-{'x' * 40}", [f"GPU-{i:036d}"]) for i in range(2000)]
    fake_kubelet.set(pods)
    client = PodResourcesClient(str(fake_kubelet.socket_path), ("nvidia.com/gpu",))
    got = client.list_assignments()
    assert len(got) == 2000
    assert got[1999].pod == pods[1999]["name"] and got[1999].device_ids == (f"GPU-{1999:036d}",)


def test_a_silent_server_times_out() -> None:
    folder = Path(tempfile.mkdtemp(prefix="silent-"))
    path = folder / "s.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    try:
        with pytest.raises(UnaryCallError) as err:
            unary_call(str(path), "/v1.PodResourcesLister/List", b"", timeout_s=0.5)
        assert err.value.kind == "TIMEOUT"
    finally:
        for s in held:
            s.close()
        server.close()


def test_hpack_integers_use_continuation_bytes() -> None:
    assert _hpack_int(10, 5) == bytes([10])
    assert _hpack_int(1337, 5) == bytes([31, 154, 10])  # RFC 7541 C.1.2
    assert _hpack_int(42, 8) == bytes([42])


def test_the_agent_runtime_does_not_import_grpcio() -> None:
    code = "import sys, gpu_steward_agent.main, gpu_steward_agent.agent; print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
