"""The real upstream workload controllers (JobSet, KubeRay, Kueue, ...) as child processes of the test
ground, against the local control plane.

Each runs as its project ships it, with three local changes, all through its own flags or config file:
no leader election, metrics off, its health probe on a loopback port (``/readyz`` says when it is up).
A controller whose admission webhooks matter (JobSet defaults a JobSet's spec; Kueue suspends a queued
Job at creation) serves them on 127.0.0.1 with a certificate from the control plane's throwaway CA,
and the webhook configurations its module ships are registered with ``clientConfig.url`` pointing
there instead of an in-cluster Service. Those configurations are narrowed to namespaces labelled
``testground.gpusteward.dev/<controller>`` so tests that never asked for the controller are not
slowed, or refused, by it; cluster-scoped objects (a ClusterQueue) are still checked.

Binaries and CRDs come from ``build`` (the same module versions).
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpu_steward_testground import build
from gpu_steward_testground.pki import serving_pair
from gpu_steward_testground.processes import die_with_parent, free_port, stop_process
from gpu_steward_testground.runner import ControlPlane

NAMESPACE_LABEL_PREFIX = "testground.gpusteward.dev/"

# Kinds Kueue manages here: those whose controllers the test ground runs.
KUEUE_FRAMEWORKS = ("batch/job", "jobset.x-k8s.io/jobset", "ray.io/rayjob", "ray.io/raycluster",
                    "kubeflow.org/pytorchjob")


def namespace_label(controller: str) -> str:
    """The label a test namespace carries to get ``controller``'s admission webhooks."""
    return NAMESPACE_LABEL_PREFIX + controller


@dataclass
class Ports:
    health: int = field(default_factory=free_port)
    webhook: int = field(default_factory=free_port)


@dataclass(frozen=True)
class Spec:
    """How to run one controller: its arguments and, optionally, the webhook manifests in its module."""

    name: str
    args: Callable[[Path, Ports], list[str]]
    webhook_manifests: str = ""  # path in the module; "" when the controller runs without webhooks
    # the kustomization whose patches turn on conversion webhooks for multi-version CRDs ("" for none)
    conversion_kustomization: str = ""
    # The controller makes its own serving certificate for an in-cluster Service name (which a loopback
    # URL cannot match) and only reports ready once it has put its CA into the webhook configurations it
    # names. Those are registered under their own names but called for no namespace: their webhooks only
    # validate, and the controller runs without them.
    own_certificate: str = ""  # the configuration name the controller looks up ("" for none)
    # (namespace, name) of the empty Secret its certificate rotator fills (the install ships it empty)
    cert_secret: tuple[str, str] | None = None
    # Fixed folders where it reads a certificate its Deployment mounts (a rotator's Secret, a metrics
    # certificate): the controller waits for, or exits without, a pair there. We write a loopback pair
    # (never presented to the apiserver: webhooks behind a rotator are called for no namespace, and
    # metrics are off).
    mounted_cert_dirs: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


def _config(work: Path, ports: Ports, api_version: str, **extra: Any) -> list[str]:
    """The kubebuilder-style Configuration file JobSet, LWS and Kueue read (``--config``)."""
    config = {
        "apiVersion": api_version, "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        # we hand it a certificate instead of its in-cluster rotator (which writes a Secret and patches
        # webhook configurations by Service name)
        "internalCertManagement": {"enable": False},
        "webhook": {"port": ports.webhook, "host": "127.0.0.1", "certDir": str(work / "certs")},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{ports.health}"},
        "metrics": {"bindAddress": "0"},
        **extra,
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    return [f"--config={work / 'config.yaml'}"]


def _jobset_args(work: Path, ports: Ports) -> list[str]:
    return [*_config(work, ports, "config.jobset.x-k8s.io/v1alpha1"), "--metrics-bind-address=0"]


def _lws_args(work: Path, ports: Ports) -> list[str]:
    return _config(work, ports, "config.lws.x-k8s.io/v1alpha1")


def _kueue_args(work: Path, ports: Ports) -> list[str]:
    return [*_config(work, ports, "config.kueue.x-k8s.io/v1beta2", namespace="kueue-system",
                     integrations={"frameworks": list(KUEUE_FRAMEWORKS)},
                     # the on-demand visibility API would need an APIService in front of it; nothing reads it
                     featureGates={"VisibilityOnDemand": False}),
            f"--visibility-server-port={free_port()}"]


def _kuberay_args(work: Path, ports: Ports) -> list[str]:
    # KubeRay serves webhooks only with ENABLE_WEBHOOKS=true; without them it reconciles all the same.
    return ["--metrics-addr=0", f"--health-probe-bind-address=127.0.0.1:{ports.health}",
            "--enable-leader-election=false", "--log-stdout-encoder=console"]


def _kubeflow_args(work: Path, ports: Ports) -> list[str]:
    """The training operator's and the Trainer's flags (the same in both)."""
    return ["--metrics-bind-address=0", f"--health-probe-bind-address=127.0.0.1:{ports.health}",
            f"--webhook-server-port={ports.webhook}", "--leader-elect=false"]


ROTATOR_CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"  # controller-runtime's default, hard-coded by both

SPECS: dict[str, Spec] = {s.name: s for s in (
    Spec("jobset", _jobset_args, "config/components/webhook/manifests.yaml"),
    Spec("kuberay", _kuberay_args),
    # Kueue without its own cert management reads the metrics certificate its Deployment mounts
    Spec("kueue", _kueue_args, "config/components/webhook/manifests.yaml", "config/components/crd/kustomization.yaml",
         mounted_cert_dirs=("/etc/kueue/metrics/certs",)),
    # LWS's pod webhook labels each pod with its group and index, which its controller relies on
    Spec("lws", _lws_args, "config/webhook/manifests.yaml"),
    Spec("training-operator", _kubeflow_args, "manifests/base/webhook/manifests.yaml",
         own_certificate="validator.training-operator.kubeflow.org",
         cert_secret=("kubeflow", "training-operator-webhook-cert"), env=(("MY_POD_NAMESPACE", "kubeflow"),),
         mounted_cert_dirs=(ROTATOR_CERT_DIR,)),
    Spec("trainer", _kubeflow_args, "manifests/base/webhook/manifests.yaml",
         own_certificate="validator.trainer.kubeflow.org",
         cert_secret=("kubeflow-system", "kubeflow-trainer-webhook-cert"), mounted_cert_dirs=(ROTATOR_CERT_DIR,)),
)}


NOWHERE = {"key": NAMESPACE_LABEL_PREFIX + "never", "operator": "Exists"}  # no namespace carries it


def loopback_webhooks(docs: list[dict[str, Any]], controller: str, port: int, ca_pem: bytes,
                      own_certificate: str = "") -> list[dict[str, Any]]:
    """The module's webhook configurations, each webhook called at ``https://127.0.0.1:<port><path>``
    and limited to namespaces labelled ``namespace_label(controller)``. With ``own_certificate`` the
    (one) configuration gets that name, which the controller looks up, and is limited to no object
    (see ``Spec``)."""
    ca = base64.b64encode(ca_pem).decode()
    out = []
    for doc in docs:
        if not doc or doc.get("kind") not in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            continue
        name = own_certificate or f"testground-{controller}-{doc['metadata']['name']}"
        doc = dict(doc, metadata={"name": name})
        hooks = []
        for hook in doc.get("webhooks") or []:
            path = ((hook.get("clientConfig") or {}).get("service") or {}).get("path", "/")
            selector = dict(hook.get("namespaceSelector") or {})
            only = NOWHERE if own_certificate else {"key": namespace_label(controller), "operator": "Exists"}
            selector["matchExpressions"] = [*(selector.get("matchExpressions") or []), only]
            hook = dict(hook, clientConfig={"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca},
                        namespaceSelector=selector)
            if own_certificate:  # cluster-scoped objects skip namespaceSelector: no object carries this label
                hook["objectSelector"] = {"matchExpressions": [NOWHERE]}
            hooks.append(hook)
        doc["webhooks"] = hooks
        out.append(doc)
    return out


def conversion_crds(module_root: Path, kustomization: str) -> set[str]:
    """Names of the CRDs whose conversion webhook the module's kustomization turns on."""
    kust = yaml.safe_load((module_root / kustomization).read_text()) or {}
    names = set()
    for patch in kust.get("patches") or []:
        doc = yaml.safe_load((module_root / Path(kustomization).parent / patch["path"]).read_text()) or {}
        if ((doc.get("spec") or {}).get("conversion") or {}).get("strategy") == "Webhook":
            names.add(doc["metadata"]["name"])
    return names


def with_conversion_webhook(crd: dict[str, Any], port: int, ca_pem: bytes) -> dict[str, Any]:
    """``crd`` converting between its versions through ``https://127.0.0.1:<port>/convert``."""
    conversion = {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {
        "url": f"https://127.0.0.1:{port}/convert", "caBundle": base64.b64encode(ca_pem).decode()}}}
    return dict(crd, spec=dict(crd["spec"], conversion=conversion))


@dataclass
class UpstreamController:
    """One upstream controller running against ``cluster``. ``start()`` installs its CRDs, starts it,
    registers its webhooks and waits until it reports ready; ``stop()`` undoes all but the CRDs."""

    name: str
    cluster: ControlPlane
    workdir: Path
    popen: subprocess.Popen[bytes] | None = None
    webhook_names: list[tuple[str, str]] = field(default_factory=list)
    converted_crds: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, timeout: float = 120.0) -> UpstreamController:
        spec = SPECS[self.name]
        binary = build.ensure_controller(self.name)
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports = Ports()
        self._apply_crds(spec, ports.webhook)
        serving_pair(self.cluster.pki, self.workdir / "certs", f"{self.name}-webhook")
        for folder in spec.mounted_cert_dirs:
            serving_pair(self.cluster.pki, Path(folder), f"{self.name}-mounted")
        if spec.cert_secret is not None:
            namespace, secret = spec.cert_secret
            self.cluster.create_namespace(namespace)
            self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": namespace}}))
        if spec.webhook_manifests:
            self._register_webhooks(spec, ports.webhook)
        args = spec.args(self.workdir, ports)
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.popen = subprocess.Popen([str(binary), *args], stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
                                      cwd=self.workdir, env=dict(self.cluster.env(), **dict(spec.env)))
        out.close()
        self._wait_ready(ports.health, timeout)
        return self

    def _apply_crds(self, spec: Spec, webhook_port: int) -> None:
        c = build.controller(self.name)
        files = build.crd_files(c)
        if not spec.conversion_kustomization:
            self.cluster.apply_crds(*files)
            return
        # multi-version CRDs convert through the controller's own webhook, as its kustomization sets up
        converted = conversion_crds(build.module_dir(c.module, c.version), spec.conversion_kustomization)
        ca = self.cluster.pki.ca_cert.read_bytes()
        out = []
        for f in files:
            for doc in yaml.safe_load_all(f.read_text()):
                if doc and doc["metadata"]["name"] in converted:
                    doc = with_conversion_webhook(doc, webhook_port, ca)
                    self.converted_crds.append(doc["metadata"]["name"])
                out.append(doc)
        path = self.workdir / "crds.yaml"
        path.write_text(yaml.safe_dump_all(out))
        self.cluster.apply_crds(path)

    def _register_webhooks(self, spec: Spec, port: int) -> None:
        c = build.controller(self.name)
        path = build.module_dir(c.module, c.version) / spec.webhook_manifests
        docs = loopback_webhooks(list(yaml.safe_load_all(path.read_text())), self.name, port,
                                 self.cluster.pki.ca_cert.read_bytes(), spec.own_certificate)
        for doc in docs:
            self.webhook_names.append((doc["kind"], doc["metadata"]["name"]))
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def _wait_ready(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_text()[-4000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not become ready in {timeout:.0f}s:\n{self.log_text()[-4000:]}")

    def stop(self) -> None:
        # webhooks first: a configuration whose server is gone would refuse every matching request
        for kind, name in self.webhook_names:
            self.cluster.kubectl("delete", kind.lower(), name, "--ignore-not-found", check=False)
        self.webhook_names.clear()
        stop_process(self.popen)
        # with the controller gone, its CRDs convert as a CRD without a webhook does (reads in any served
        # version keep working; the CRDs stay, as a cluster keeps them when a controller is uninstalled)
        for name in self.converted_crds:
            self.cluster.kubectl("patch", "crd", name, "--type=merge", "-p",
                                 '{"spec": {"conversion": {"strategy": "None", "webhook": null}}}', check=False)
        self.converted_crds.clear()
