"""Both images built from their Dockerfiles (scripts/build-images.sh, as `make images`) and run with podman
exactly as the chart's Deployment and DaemonSet specify them (gpu_steward_testground.podman).

The operator image runs under the chart's uid 65532 and under an arbitrary uid (OpenShift's restricted
policy), neither with a passwd entry, with a read-only root filesystem, the chart's emptyDir and webhook
certificate mounts, no capabilities, the environment `helm template` renders and the chart's
ServiceAccount token: it must become live, serve metrics and the admission webhook with the chart's
certificate, and turn a GPUBudget into its ResourceQuota. The agent image runs as the DaemonSet says,
with the fake NVML where the driver's library would be and a stand-in kubelet socket: it must attribute
the GPUs to pods in /metrics and /v1/summary.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_rbac import http_ok, operator_kubeconfig
from helmtools import CHART, REPO, one, template

from gpu_steward_testground import fakenvml
from gpu_steward_testground.fakekubelet import FakeKubelet
from gpu_steward_testground.podman import PodmanContainer, SaMount, missing_tools, podman

TAG = "test"
NS = "gs-img"
RELEASE = "gs-img"
FULLNAME = f"{RELEASE}-gpu-steward"
TEAM_NS = "gs-img-team"
# Where the NVIDIA container toolkit puts the driver's library in a container (Debian/Ubuntu layout).
NVML_IN_CONTAINER = "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    missing = missing_tools()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the image tests: {', '.join(missing)} missing (.ci/run installs them)")
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install buildah podman mmdebstrap runc")
    started = time.monotonic()
    proc = subprocess.run([str(REPO / "scripts" / "build-images.sh")], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, IMAGE_TAG=TAG), timeout=1800)
    assert proc.returncode == 0, f"image build failed:\n{proc.stderr[-4000:]}"
    refs = proc.stdout.split()
    print(f"\nimages built in {time.monotonic() - started:.0f} s:")
    for ref in refs:
        size = podman("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()
        print(f"  {ref}: {int(size) / 1e6:.0f} MB")
    return {ref.rsplit("/", 1)[1].split(":")[0].removeprefix("gpu-steward-"): ref for ref in refs}


def _image_values(images: dict[str, str]) -> list[str]:
    sets = []
    for component, ref in images.items():
        repo, _, tag = ref.rpartition(":")
        sets += [f"{component}.image.repository={repo}", f"{component}.image.tag={tag}"]
    return sets


def test_the_images_ship_the_product_only(images: dict[str, str]) -> None:
    """No test ground (local control plane, fake NVML, Slack receiver) and no demo in either image."""
    for component, ref in images.items():
        out = podman("run", "--rm", "--runtime", "runc", "--ulimit", "nproc=4096:4096", "--ulimit",
                     "nofile=1024:1024", "--network", "none", "--entrypoint", "python", ref, "-c",
                     "import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None for m in "
                     "('gpu_steward_testground', 'gpu_steward', 'gpu_steward_agent')}))").stdout
        found = json.loads(out.strip().splitlines()[-1])
        assert found["gpu_steward_testground"] is False, component
        assert found["gpu_steward" if component == "operator" else "gpu_steward_agent"] is True
        assert found["gpu_steward_agent" if component == "operator" else "gpu_steward"] is False, component


# ---- the operator image, as the chart's Deployment runs it ---------------------------------------------------

@pytest.fixture(scope="module")
def operator_setup(cluster: Any, helm: Path, kubectl: Callable[..., str], images: dict[str, str],
                   tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    for ns in (NS, TEAM_NS):
        kubectl("create", "namespace", ns, check=False)
    # The mounted-certificate mode: this test starts the container with the rendered Secret's files.
    sets = [*_image_values(images), "webhook.certificates=helm"]
    ident = operator_kubeconfig(helm=helm, kubectl=Path(cluster.bin_dir) / "kubectl",
                                admin_kubeconfig=cluster.kubeconfig, namespace=NS, release=RELEASE, sets=sets,
                                out=tmp_path_factory.mktemp("img-sa") / "operator.kubeconfig")
    docs = template(helm, release=RELEASE, namespace=NS, sets=sets)
    deployment = one(docs, "Deployment", "-operator")
    secret = one(docs, "Secret", "-webhook-tls")
    config = yaml.safe_load(ident.kubeconfig.read_text())
    server = config["clusters"][0]["cluster"]["server"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    return {"deployment": deployment, "secret": secret, "ident": ident, "host": host, "port": port,
            "token": config["users"][0]["user"]["token"],
            "ca": base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode(),
            "webhook_service": one(docs, "Service", "-webhook")}


def _start_operator(setup: dict[str, Any], image: str, uid: int,
                    workdir: Path) -> tuple[PodmanContainer, dict[str, int]]:
    pod = setup["deployment"]["spec"]["template"]["spec"]
    # The chart's own ports would collide on the host network this test shares; everything else as rendered.
    ports = {"healthz": _free_port(), "metrics": _free_port(), "webhook": _free_port()}
    overrides = {
        "GPU_STEWARD_LIVENESS_ENDPOINT": f"http://0.0.0.0:{ports['healthz']}/healthz",
        "GPU_STEWARD_METRICS_PORT": str(ports["metrics"]),
        "GPU_STEWARD_WEBHOOK_PORT": str(ports["webhook"]),
        # What the kubelet sets in every container for the in-cluster client.
        "KUBERNETES_SERVICE_HOST": setup["host"], "KUBERNETES_SERVICE_PORT": setup["port"],
    }
    secret = setup["secret"]
    run = PodmanContainer.from_pod(
        pod, "operator", image=image, uid=uid, gid=uid, workdir=workdir, name=f"gs-img-operator-{uid}",
        fields={"metadata.name": f"{FULLNAME}-operator-{uid}", "metadata.namespace": NS},
        secrets={secret["metadata"]["name"]: {k: base64.b64decode(v) for k, v in secret["data"].items()}},
        env_overrides=overrides, service_account=SaMount(setup["token"], setup["ca"], NS))
    assert "--read-only" in run.args and "ALL" in run.args and f"{uid}:{uid}" in run.args
    return run.start(), ports


def _wait(what: str, probe: Callable[[], Any], run: PodmanContainer, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        assert run.running(), f"the container exited while waiting for {what}:\n{run.logs()[-4000:]}"
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{run.logs()[-4000:]}")


def _admission_review(port: int, ca_pem: str, server_name: str, user: str) -> dict[str, Any]:
    """An AdmissionReview as the apiserver would send it, over TLS checked against the chart's CA."""
    lease = {"apiVersion": "gpusteward.dev/v1alpha1", "kind": "ExperimentLease",
             "metadata": {"name": "self-approved", "namespace": TEAM_NS},
             "spec": {"owner": user, "purpose": "image test", "gpus": 64, "duration": "2h", "approved": True}}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "7e0c3f2a-image-test", "kind": {"group": "gpusteward.dev", "version": "v1alpha1",
                                               "kind": "ExperimentLease"},
        "resource": {"group": "gpusteward.dev", "version": "v1alpha1", "resource": "experimentleases"},
        "namespace": TEAM_NS, "name": "self-approved", "operation": "CREATE",
        "userInfo": {"username": user, "groups": ["system:authenticated"]},
        "object": lease, "oldObject": None, "dryRun": False}}
    ctx = ssl.create_default_context(cadata=ca_pem)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_name) as tls:  # the Service's DNS name, as in the cert
        body = json.dumps(review).encode()
        tls.sendall(b"POST /lease-approval HTTP/1.1\r\nHost: " + server_name.encode() +
                    b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                    str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(payload)["response"]


@pytest.mark.cluster
@pytest.mark.parametrize("uid", [65532, random.Random().randint(1_000_000_000, 2_000_000_000)],
                         ids=["chart-uid-65532", "arbitrary-uid"])
def test_operator_image_runs_as_the_chart_runs_it(uid: int, operator_setup: dict[str, Any], images: dict[str, str],
                                                  kubectl: Callable[..., str], tmp_path: Path) -> None:
    run, ports = _start_operator(operator_setup, images["operator"], uid, tmp_path)
    try:
        _wait("liveness", lambda: http_ok(f"http://127.0.0.1:{ports['healthz']}/healthz"), run)
        assert run.exec("id", "-u").stdout.strip() == str(uid)
        # Nothing may be written outside the pod's volumes.
        assert run.exec("touch", "/opt/venv/x").returncode != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=5) as rsp:
            assert b"gpusteward_" in rsp.read()

        svc = operator_setup["webhook_service"]["metadata"]["name"]
        ca = base64.b64decode(operator_setup["secret"]["data"]["ca.crt"]).decode()
        answer = _admission_review(ports["webhook"], ca, f"{svc}.{NS}.svc", user="mallory")
        assert answer["uid"] == "7e0c3f2a-image-test"
        assert answer["allowed"] is False  # a non-approver approving 64 GPUs: the webhook's own judgement

        name = f"team-{uid}"
        kubectl("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "gpusteward.dev/v1alpha1", "kind": "GPUBudget",
            "metadata": {"name": name, "namespace": TEAM_NS},
            "spec": {"gpuQuota": 6, "spend": {"limit": "500", "currency": "USD", "period": "Monthly"}}}))

        def quota() -> bool:
            items = json.loads(kubectl("get", "resourcequotas", "-n", TEAM_NS, "-o", "json"))["items"]
            return any(q["spec"]["hard"].get("requests.nvidia.com/gpu") == "6" for q in items)

        _wait("the budget's ResourceQuota", quota, run)
        time.sleep(2)
        print(f"\noperator image under uid {uid}: RSS at idle {run.rss_bytes() / 1e6:.0f} MB")
        logs = run.logs()
        assert "Traceback" not in logs and "getpwuid" not in logs, logs[-4000:]
        kubectl("delete", "gpubudget", name, "-n", TEAM_NS, "--wait=false")
    finally:
        run.remove()


# ---- the agent image, as the chart's DaemonSet runs it ---------------------------------------------------------

@pytest.fixture
def agent_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = Path("/tmp") / f"gs-img-node-{os.getpid()}"  # a short path: unix sockets are limited to 107 bytes
    folder.mkdir(exist_ok=True)
    lib = fakenvml.build(tmp_path_factory.mktemp("nvml"))
    state = folder / "nvml-state.json"
    uuids = [f"GPU-img-{i:02d}" for i in range(2)]
    fakenvml.write_state(state, {"driver": "550.54.15", "gpus": [
        {"uuid": uuids[0], "name": "NVIDIA A100-SXM4-80GB", "util": 87, "memUtil": 30, "temp": 60},
        {"uuid": uuids[1], "name": "NVIDIA A100-SXM4-80GB", "util": 0, "memUtil": 0, "temp": 35}]})
    sockdir = folder / "pod-resources"
    sockdir.mkdir(exist_ok=True)
    kubelet = FakeKubelet(sockdir / "kubelet.sock").start()
    kubelet.set([{"namespace": "ml", "name": "train-0", "containers": [
        {"name": "train", "devices": [{"resource": "nvidia.com/gpu", "ids": [uuids[0]]}]}]},
        {"namespace": "ml", "name": "notebook-0", "containers": [
            {"name": "nb", "devices": [{"resource": "nvidia.com/gpu", "ids": [uuids[1]]}]}]}])
    try:
        yield {"lib": lib, "state": state, "sockdir": sockdir}
    finally:
        kubelet.stop()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_agent_image_runs_as_the_daemonset_runs_it(helm: Path, images: dict[str, str], agent_node: dict[str, Any],
                                                   tmp_path: Path) -> None:
    docs = template(helm, release=RELEASE, namespace=NS, sets=_image_values(images))
    pod = one(docs, "DaemonSet", "-agent")["spec"]["template"]["spec"]
    port = _free_port()
    run = PodmanContainer.from_pod(
        pod, "agent", image=images["agent"], workdir=tmp_path, name=f"gs-img-agent-{os.getpid()}",
        fields={"spec.nodeName": "gpu-node-img"},
        host_paths={"/var/lib/kubelet/pod-resources": agent_node["sockdir"]},
        env_overrides={"GPU_STEWARD_AGENT_PORT": str(port), "GPU_STEWARD_AGENT_INTERVAL_SECONDS": "1",
                       # test-only: where the fake library reads its "hardware" from
                       fakenvml.STATE_ENV: "/run/fake-nvml/nvml-state.json"},
        extra_mounts=((agent_node["lib"], NVML_IN_CONTAINER), (agent_node["state"].parent, "/run/fake-nvml")))
    assert "NVML_LIBRARY_PATH" not in " ".join(run.args)  # found where the driver's library would be
    run.start()
    try:
        base = f"http://127.0.0.1:{port}"

        def summary() -> dict[str, Any] | None:
            try:
                with urllib.request.urlopen(base + "/v1/summary", timeout=2) as rsp:
                    body = json.loads(rsp.read())
            except OSError:
                return None
            pods = {(p["namespace"], p["name"]) for p in body.get("pods", [])}
            return body if {("ml", "train-0"), ("ml", "notebook-0")} <= pods else None

        body = _wait("the agent's summary with both pods", summary, run, timeout=60)
        assert body["node"] == "gpu-node-img"
        with urllib.request.urlopen(base + "/metrics", timeout=5) as rsp:
            metrics = rsp.read().decode()
        util = [line for line in metrics.splitlines() if line.startswith("DCGM_FI_DEV_GPU_UTIL{")]
        by_pod = {line.split('pod="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
                  for line in util if 'pod="' in line}
        assert by_pod == {"train-0": 87.0, "notebook-0": 0.0}, util
        print(f"\nagent image: RSS {run.rss_bytes() / 1e6:.0f} MB")
        assert "Traceback" not in run.logs()
    finally:
        run.remove()
