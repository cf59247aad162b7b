"""Start and stop a real local Kubernetes control plane: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and KWOK (fake nodes), all on loopback.

Used by the pytest fixtures, the demo and the benchmarks. Every process is started in its own
session with a parent-death signal, so nothing outlives the Python process that started it, even
when a test run is interrupted or killed; ``stop()`` also terminates the process groups.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpu_steward_testground import build
from gpu_steward_testground.pki import Pki, make_pki
from gpu_steward_testground.processes import die_with_parent, free_port

GPU_RESOURCE = "nvidia.com/gpu"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
DEFAULT_GPU_PRODUCT = "NVIDIA-A100-SXM4-80GB"
OPERATOR_NAMESPACE = "gpu-steward"  # the Settings default of platform_namespace

@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None


class ControlPlaneError(RuntimeError):
    pass


@dataclass
class ControlPlane:
    """One local control plane. Use as a context manager or call start()/stop()."""

    workdir: Path | None = None
    bin_dir: Path | None = None
    quiet: bool = True
    # Users whose requests the apiserver records in its audit log (``audit_log``), one JSON line per request
    # (Metadata level, at ResponseComplete); nobody else's. Benchmarks attribute requests to a client this way.
    audit_users: tuple[str, ...] = ()
    procs: list[Proc] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 120.0) -> None:
        started = time.monotonic()
        self.bin_dir = self.bin_dir or build.ensure_built()
        if self.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gpu-steward-cp-")
            self.workdir = Path(self._tmp.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki: Pki = make_pki(self.workdir / "pki")
        self.etcd_port, self.etcd_peer_port, self.api_port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.kubeconfig = self.workdir / "kubeconfig"
        self._write_kubeconfig(self.kubeconfig, user={
            "client-certificate": str(self.pki.admin_cert), "client-key": str(self.pki.admin_key)})
        try:
            self._start_etcd()
            self._start_apiserver()
            self._wait_ready(deadline=started + timeout)
            self._start_controller_manager()
            self._start_scheduler()
            self._start_kwok()
            self._wait_namespace_sa("default", deadline=started + timeout)
            # The operator's own namespace (its setting platform_namespace, by default "gpu-steward"), as a
            # Helm install has it: the idle loop keeps its blast-radius record there and reads its controls.
            self.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def restart_apiserver(self, down_seconds: float = 0.0, timeout: float = 60.0) -> float:
        """Stop kube-apiserver alone (SIGTERM, SIGKILL after 5 s) and start it again on the same port and etcd,
        after ``down_seconds``; return the seconds until /readyz answered again. Clients keep their
        kubeconfig; the other components reconnect on their own.

        The new process dies with the *thread* that calls this (PR_SET_PDEATHSIG): call it from a thread
        that lives as long as the cluster, not from a short-lived one."""
        old = next(p for p in self.procs if p.name == "kube-apiserver")
        if old.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(old.popen.pid, signal.SIGTERM)
            try:
                old.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(old.popen.pid, signal.SIGKILL)
                old.popen.wait(timeout=5)
        self.procs.remove(old)
        started = time.monotonic()
        time.sleep(down_seconds)
        self._start_apiserver()
        # the new apiserver goes before the components that talk to it (stop() walks the list backwards)
        self.procs.insert(self.procs.index(next(p for p in self.procs if p.name == "etcd")) + 1, self.procs.pop())
        self._wait_ready(deadline=time.monotonic() + timeout)
        return time.monotonic() - started

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.procs]

    # ---- processes ---------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> Proc:
        assert self.workdir is not None and self.bin_dir is not None
        log = self.workdir / f"{name}.log"
        out = open(log, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        popen = subprocess.Popen([str(self.bin_dir / args[0]), *args[1:]], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, preexec_fn=die_with_parent, cwd=self.workdir)
        out.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def _start_etcd(self) -> None:
        assert self.workdir is not None
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._spawn("etcd", [
            "etcd", "--name=local", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}", "--unsafe-no-fsync", "--log-level=warn",
            "--quota-backend-bytes=4294967296",
        ])

    def _start_apiserver(self) -> None:
        p = self.pki
        self._spawn("kube-apiserver", [
            "kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.api_port}",
            f"--tls-cert-file={p.serving_cert}", f"--tls-private-key-file={p.serving_key}",
            f"--client-ca-file={p.ca_cert}",
            f"--service-account-key-file={p.sa_pub}", f"--service-account-signing-key-file={p.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=RBAC", "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true", "--profiling=false", f"--cert-dir={self.workdir}",
            "--enable-priority-and-fairness=false", "--v=0",
            *self._audit_flags(),
        ])

    @property
    def audit_log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "audit.log"

    def _audit_flags(self) -> list[str]:
        if not self.audit_users:
            return []
        assert self.workdir is not None
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump({
            "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived", "ResponseStarted"],
            "rules": [{"level": "Metadata", "users": list(self.audit_users)}, {"level": "None"}]}))
        return [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json",
                "--audit-log-maxbackup=0"]

    def _component_flags(self) -> list[str]:
        kc = str(self.kubeconfig)
        return [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
                "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--v=0"]

    def _start_controller_manager(self) -> None:
        self._spawn("kube-controller-manager", [
            "kube-controller-manager", *self._component_flags(),
            f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.pki.ca_cert}",
            "--use-service-account-credentials=true",
            # no cloud, no real kubelets: controllers that only matter for those stay off
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
            "--concurrent-gc-syncs=5",
        ])

    def _start_scheduler(self) -> None:
        self._spawn("kube-scheduler", ["kube-scheduler", *self._component_flags()])

    def _start_kwok(self) -> None:
        assert self.workdir is not None and self.bin_dir is not None
        self._spawn("kwok", [
            "kwok", f"--kubeconfig={self.kubeconfig}",
            f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
            "--cidr=10.244.0.0/16", "--node-ip=10.244.0.1", f"--config={build.stages_file()}",
            f"--server-address=127.0.0.1:{free_port()}", "--node-lease-duration-seconds=40",
        ])

    # ---- readiness ---------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def _check_alive(self) -> None:
        for proc in self.procs:
            if not proc.alive():
                tail = proc.log.read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{proc.name} exited with {proc.popen.returncode}:\n{tail}")

    def _wait_ready(self, deadline: float) -> None:
        ctx = self.ssl_context()
        while True:
            self._check_alive()
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"{self.server}/readyz", context=ctx, timeout=2) as resp:
                if resp.status == 200:
                    return
            if time.monotonic() > deadline:
                raise ControlPlaneError("kube-apiserver did not become ready in time")
            time.sleep(0.25)

    def _wait_namespace_sa(self, namespace: str, deadline: float) -> None:
        """Pods can only be created once the namespace's default ServiceAccount exists."""
        while True:
            self._check_alive()
            if self.get_json(f"/api/v1/namespaces/{namespace}/serviceaccounts/default") is not None:
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"ServiceAccount default in {namespace} did not appear")
            time.sleep(0.25)

    def get_json(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(f"{self.server}{path}", context=self.ssl_context(), timeout=5) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    # ---- clients -----------------------------------------------------------------------------
    def _write_kubeconfig(self, path: Path, user: dict[str, str], name: str = "admin") -> None:
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": "local",
            "clusters": [{"name": "local", "cluster": {"server": self.server,
                                                         "certificate-authority": str(self.pki.ca_cert)}}],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": name}}],
        }
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)

    def kubeconfig_for_token(self, token: str, path: Path) -> Path:
        """A kubeconfig that authenticates with a bearer token (e.g. a ServiceAccount's)."""
        self._write_kubeconfig(path, user={"token": token}, name="token")
        return path

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig or self.kubeconfig), client_configuration=cfg)
        return client.ApiClient(cfg)

    def env(self) -> dict[str, str]:
        assert self.bin_dir is not None
        return dict(os.environ, KUBECONFIG=str(self.kubeconfig), PATH=f"{self.bin_dir}:{os.environ['PATH']}")

    def run_tool(self, tool: str, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None
        res = subprocess.run([str(self.bin_dir / tool), *args], input=input, capture_output=True, text=True,
                             env=self.env(), timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise ControlPlaneError(f"{tool} {' '.join(args)} failed ({res.returncode}):\n{res.stderr}{res.stdout}")
        return res

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run_tool("kubectl", *args, input=input, check=check)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.workdir is not None
        helm_home = self.workdir / "helm"
        for sub in ("cache", "config", "data"):
            (helm_home / sub).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("HELM_CACHE_HOME", str(helm_home / "cache"))
        os.environ.setdefault("HELM_CONFIG_HOME", str(helm_home / "config"))
        os.environ.setdefault("HELM_DATA_HOME", str(helm_home / "data"))
        return self.run_tool("helm", *args, check=check, timeout=300)

    def apply_crds(self, *paths: Path, timeout: float = 60) -> list[str]:
        """Server-side apply CRD files and wait until each CRD is Established (served)."""
        names = []
        for path in paths:
            for doc in yaml.safe_load_all(Path(path).read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    names.append(doc["metadata"]["name"])
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                crd = self.get_json(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
                conds = (crd.get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                    break
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} was not established in {timeout}s")
                time.sleep(0.2)
        return names

    def create_namespace(self, name: str, labels: dict[str, str] | None = None, timeout: float = 30) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))
        self._wait_namespace_sa(name, deadline=time.monotonic() + timeout)

    # ---- fake GPU nodes ----------------------------------------------------------------------
    def add_gpu_node(self, name: str, gpus: int = 8, product: str = DEFAULT_GPU_PRODUCT,
                     labels: dict[str, str] | None = None, taint: bool = False, wait: bool = True) -> None:
        """A KWOK node that advertises ``gpus`` of ``nvidia.com/gpu``, labelled like a GPU Operator node."""
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(gpu_node(name, gpus, product, labels, taint)))
        if wait:
            self.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")


def gpu_node(name: str, gpus: int, product: str = DEFAULT_GPU_PRODUCT, labels: dict[str, str] | None = None,
             taint: bool = False) -> dict[str, Any]:
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", GPU_RESOURCE: str(gpus)}
    node: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "type": "kwok", "nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": product,
                "nvidia.com/gpu.count": str(gpus), **(labels or {}),
            },
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": capacity},
    }
    if taint:
        node["spec"]["taints"] = [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]
    return node


def main(argv: list[str] | None = None) -> int:
    """`python -m gpu_steward_testground.runner`: start, print the kubeconfig path, wait for Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpu-nodes", type=int, default=2)
    parser.add_argument("--pids-file", type=Path)
    args = parser.parse_args(argv)
    with ControlPlane() as cp:
        for i in range(args.gpu_nodes):
            cp.add_gpu_node(f"gpu-node-{i}")
        if args.pids_file:
            args.pids_file.write_text(" ".join(map(str, cp.pids())))
        # Blocked before "ready" is printed: a Ctrl-C sent right after reading that line must be waited for,
        # not interrupt the process with a KeyboardInterrupt.
        stop_on = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_on)
        print(f"control plane ready in {cp.start_seconds:.1f}s; KUBECONFIG={cp.kubeconfig}", flush=True)
        signal.sigwait(stop_on)
    return 0


if __name__ == "__main__":
    sys.exit(main())
