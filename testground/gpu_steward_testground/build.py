"""Build the local control plane's binaries from their Go modules, once per version.

Tests, the demo and the benchmarks run on a real Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler), KWOK for fake nodes and the real Helm CLI. There is no
Docker here, so everything is compiled from the Go module proxy into a versioned cache outside
the repository (``$GPU_STEWARD_CACHE`` or ``~/.cache/gpu-steward``) and reused afterwards.

Two modules cannot be ``go install``-ed directly because their go.mod files ``replace`` sibling
modules with local paths: ``k8s.io/kubernetes`` (the staging repos) and etcd's server module. For
each we write a tiny wrapper module that requires the real module and pins every sibling to the
matching published version, then ``go build`` the command packages from inside it.

The upstream workload controllers (JobSet, Kueue, KubeRay, LeaderWorkerSet, Kubeflow's training
operator and Trainer) are built the same way, each from a wrapper module that requires exactly its
pinned version (``go install mod@version`` also asks the proxy for the module's version list, which
it does not serve for every module). Their CRDs are read from the same module in the Go module cache
(``crd_files``), so a version bump moves binary and CRDs together. See ``CONTROLLERS``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.19.2"

# Staging modules that k8s.io/kubernetes replaces with ./staging/src/k8s.io/<name>; each is
# published as k8s.io/<name> v0.<minor>.<patch>.
K8S_STAGING = (
    "api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime", "client-go",
    "cloud-provider", "cluster-bootstrap", "code-generator", "component-base", "component-helpers",
    "controller-manager", "cri-api", "cri-client", "csi-translation-lib", "dynamic-resource-allocation",
    "endpointslice", "externaljwt", "kms", "kube-aggregator", "kube-controller-manager", "kube-proxy",
    "kube-scheduler", "kubectl", "kubelet", "metrics", "mount-utils", "pod-security-admission",
    "sample-apiserver", "sample-cli-plugin", "sample-controller",
)
K8S_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
ETCD_SIBLINGS = ("api/v3", "client/pkg/v3", "client/v3", "pkg/v3", "server/v3")


def cache_root() -> Path:
    return Path(os.environ.get("GPU_STEWARD_CACHE", Path.home() / ".cache" / "gpu-steward"))


def bin_dir() -> Path:
    """Folder of one pinned set of binaries; a new pin gets a new folder."""
    tag = f"k8s-{KUBERNETES_VERSION}_etcd-{ETCD_VERSION}_kwok-{KWOK_VERSION}_helm-{HELM_VERSION}"
    return cache_root() / "bin" / tag


@dataclass(frozen=True)
class Binary:
    name: str
    module_text: str  # go.mod of the wrapper module ("" for none)
    package: str
    ldflags: str


def _k8s_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    base = "k8s.io/component-base/version"
    client = "k8s.io/client-go/pkg/version"
    flags = []
    for pkg in (base, client):
        flags += [
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return "-s -w " + " ".join(flags)


def _k8s_module() -> str:
    staging = "v0." + KUBERNETES_VERSION.lstrip("v").split(".", 1)[1]
    lines = ["module gpusteward.dev/build/kubernetes", "", "go 1.24", "",
             f"require k8s.io/kubernetes {KUBERNETES_VERSION}", ""]
    lines += [f"replace k8s.io/{name} => k8s.io/{name} {staging}" for name in K8S_STAGING]
    return "\n".join(lines) + "\n"


def _etcd_module() -> str:
    req = "\n".join(f"\tgo.etcd.io/etcd/{m} {ETCD_VERSION}" for m in ETCD_SIBLINGS)
    return f"module gpusteward.dev/build/etcd\n\ngo 1.24\n\nrequire (\n{req}\n)\n"


def binaries() -> list[Binary]:
    k8s = [Binary(cmd, _k8s_module(), f"k8s.io/kubernetes/cmd/{cmd}", _k8s_ldflags()) for cmd in K8S_COMMANDS]
    etcd = Binary("etcd", _etcd_module(), "go.etcd.io/etcd/server/v3",
                  f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=release-{ETCD_VERSION}")
    kwok = Binary("kwok", "", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}",
                  f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}")
    helm = Binary("helm", "", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}",
                  f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}")
    return [etcd, *k8s, kwok, helm]


@dataclass(frozen=True)
class Controller:
    """An upstream workload controller: one command package of one Go module at one version."""

    name: str  # the binary's name in controllers_dir()
    module: str
    version: str
    package: str  # the command package, relative to the module ("" for its root)
    crd_dirs: tuple[str, ...]  # folders in the module that hold its CRDs

    @property
    def import_path(self) -> str:
        return f"{self.module}/{self.package}".rstrip("/")

    def binary(self) -> Binary:
        text = (f"module gpusteward.dev/build/{self.name}\n\ngo 1.25\n\n"
                f"require {self.module} {self.version}\n")
        return Binary(self.name, text, self.import_path, "-s -w")


# Versions that work together: Kueue v0.17.0 is built against JobSet v0.11.1 and LWS v0.8.0, so those
# are the JobSet and LWS served beside it. KubeRay v1.5.0 is the newest KubeRay the module proxy serves
# here (Kueue v0.17 compiles against v1.6.0; RayJob/RayCluster keep `spec.suspend` and the fields Kueue
# writes). The Kubeflow training operator v1.8.1 (PyTorchJob, TFJob, MPIJob, XGBoostJob, PaddleJob;
# JAXJob arrived in v1.9) and Trainer v2.0.0 (TrainJob, which runs as a JobSet) are the versions served.
CONTROLLERS: tuple[Controller, ...] = (
    Controller("jobset", "sigs.k8s.io/jobset", "v0.11.1", "", ("config/components/crd/bases",)),
    Controller("kuberay", "github.com/ray-project/kuberay/ray-operator", "v1.5.0", "", ("config/crd/bases",)),
    Controller("kueue", "sigs.k8s.io/kueue", "v0.17.0", "cmd/kueue", ("config/components/crd/bases",)),
    Controller("lws", "sigs.k8s.io/lws", "v0.8.0", "cmd", ("config/crd/bases",)),
    Controller("training-operator", "github.com/kubeflow/training-operator", "v1.8.1",
               "cmd/training-operator.v1", ("manifests/base/crds",)),
    Controller("trainer", "github.com/kubeflow/trainer/v2", "v2.0.0", "cmd/trainer-controller-manager",
               ("manifests/base/crds",)),
)


def controller(name: str) -> Controller:
    return next(c for c in CONTROLLERS if c.name == name)


def controllers_dir(c: Controller) -> Path:
    """Folder of one controller at one version; a version bump gets a new folder."""
    return cache_root() / "bin" / "controllers" / f"{c.name}-{c.version}"


class BuildError(RuntimeError):
    pass


def _say(msg: str) -> None:
    print(f"[build] {msg}", file=sys.stderr, flush=True)


def _check_go() -> str:
    go = shutil.which("go")
    if not go:
        raise BuildError("Go is not installed: install Go >= 1.24 (https://go.dev/dl) and retry.")
    return go


def _run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    last_beat = started
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = [*tail, line.rstrip()][-30:]
        if line.startswith("go: downloading"):
            _say(f"{what}: {line.strip()}")
        now = time.monotonic()
        if now - last_beat > 30:
            _say(f"{what}: still building ({now - started:.0f}s)")
            last_beat = now
    if proc.wait() != 0:
        hint = ""
        joined = "\n".join(tail)
        if "proxy" in joined or "dial tcp" in joined or "no such host" in joined:
            hint = "\nThe Go module proxy is not reachable: set GOPROXY or check the network."
        raise BuildError(f"{what} failed: {' '.join(cmd)}\n{joined}{hint}")


def build_one(b: Binary, out: Path, go: str) -> float:
    work = cache_root() / "src" / b.name
    work.mkdir(parents=True, exist_ok=True)
    # GOTOOLCHAIN=auto: a module that needs a newer Go than the one installed (the controllers want 1.25)
    # has the go command fetch that toolchain through the module proxy; a newer local Go is used as is.
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod", GOWORK="off", GOTOOLCHAIN="auto")
    started = time.monotonic()
    if b.module_text:
        (work / "go.mod").write_text(b.module_text)
        (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{b.package}"\n')
        _run([go, "mod", "tidy", "-e"], work, env, f"{b.name}: resolving modules")
        tmp = out / f".{b.name}.partial"
        _run([go, "build", "-trimpath", "-ldflags", b.ldflags, "-o", str(tmp), b.package], work, env, b.name)
        tmp.rename(out / b.name)
    else:
        env["GOBIN"] = str(out)
        _run([go, "install", "-trimpath", "-ldflags", b.ldflags, b.package], work, env, b.name)
    return time.monotonic() - started


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat/node-heartbeat.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


RUN_FOREVER_ANNOTATION = "gpusteward.dev/simulate-running"


def stages_file() -> Path:
    tag = hashlib.sha256("\n".join([*KWOK_STAGES, RUN_FOREVER_ANNOTATION]).encode()).hexdigest()[:8]
    return bin_dir() / f"kwok-stages-{tag}.yaml"


def ensure_kwok_stages(go: str) -> Path:
    """KWOK >= 0.8 ships no built-in stages: collect the ones in its module into one file."""
    out = stages_file()
    if out.exists():
        return out
    env = dict(os.environ, GOFLAGS="-mod=mod", GOWORK="off")
    info = subprocess.run([go, "mod", "download", "-json", f"sigs.k8s.io/kwok@{KWOK_VERSION}"],
                          cwd=cache_root(), env=env, capture_output=True, text=True, check=False)
    if info.returncode != 0:
        raise BuildError(f"cannot download the KWOK module for its stages: {info.stderr.strip()}")
    root = Path(json.loads(info.stdout)["Dir"]) / "kustomize" / "stage"
    docs = [yaml.safe_load((root / rel).read_text()) for rel in KWOK_STAGES]
    for doc in docs:
        if doc["metadata"]["name"] == "pod-complete":
            # KWOK completes every Job pod at once; a pod annotated RUN_FOREVER_ANNOTATION keeps
            # running, like a long training run (tests and the demo need those).
            doc["spec"]["selector"]["matchExpressions"].append(
                {"key": f'.metadata.annotations["{RUN_FOREVER_ANNOTATION}"]', "operator": "DoesNotExist"})
    tmp = out.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    tmp.rename(out)
    return out


def ensure_built(only: list[str] | None = None) -> Path:
    """Build whatever is missing and return the folder that holds the binaries."""
    out = bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    todo = [b for b in binaries() if (only is None or b.name in only) and not (out / b.name).exists()]
    if not todo and stages_file().exists():
        return out
    go = _check_go()
    if todo:
        _say(f"building {len(todo)} binaries into {out} (first time only; this takes minutes)")
    for i, b in enumerate(todo, 1):
        _say(f"[{i}/{len(todo)}] {b.name} ...")
        secs = build_one(b, out, go)
        _say(f"[{i}/{len(todo)}] {b.name} built in {secs:.0f}s")
    ensure_kwok_stages(go)
    return out


def module_dir(module: str, version: str, go: str | None = None) -> Path:
    """Where the Go module cache holds ``module@version`` (downloaded if it is not there yet)."""
    env = dict(os.environ, GOFLAGS="-mod=mod", GOWORK="off")
    cache_root().mkdir(parents=True, exist_ok=True)
    info = subprocess.run([go or _check_go(), "mod", "download", "-json", f"{module}@{version}"],
                          cwd=cache_root(), env=env, capture_output=True, text=True, check=False)
    if info.returncode != 0:
        raise BuildError(f"cannot download {module}@{version}: {info.stderr.strip()}{info.stdout.strip()}")
    return Path(json.loads(info.stdout)["Dir"])


def crd_files(c: Controller) -> list[Path]:
    """The controller's CRD manifests, straight from its module (never copied into the repository)."""
    root = module_dir(c.module, c.version)
    files = sorted(f for d in c.crd_dirs for f in (root / d).glob("*.yaml") if f.name != "kustomization.yaml")
    if not files:
        raise BuildError(f"no CRDs under {c.crd_dirs} in {root}")
    return files


def ensure_controller(name: str) -> Path:
    """Build one upstream controller if it is missing; return the binary's path."""
    c = controller(name)
    out = controllers_dir(c)
    path = out / c.name
    if path.exists():
        return path
    out.mkdir(parents=True, exist_ok=True)
    _say(f"building {c.name} {c.version} from {c.module} into {out} (first time only; minutes)")
    secs = build_one(c.binary(), out, _check_go())
    _say(f"{c.name} {c.version} built in {secs:.0f}s")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the local control plane binaries (cached).")
    parser.add_argument("--only", nargs="*", help="build only these binaries")
    parser.add_argument("--print-dir", action="store_true", help="print the binary folder and exit")
    parser.add_argument("--controllers", nargs="*", metavar="NAME",
                        help="also build these upstream controllers (none named: all of "
                             + ", ".join(c.name for c in CONTROLLERS) + ")")
    args = parser.parse_args(argv)
    if args.print_dir:
        print(bin_dir())
        return 0
    try:
        out = ensure_built(args.only)
        if args.controllers is not None:
            for name in args.controllers or [c.name for c in CONTROLLERS]:
                print(ensure_controller(name))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
