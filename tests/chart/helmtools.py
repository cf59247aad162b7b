"""Running the real Helm CLI on the chart and reading what it renders.

The helm binary comes from the local control plane's binary cache
(``python -m gpu_steward_testground.build --print-dir``), or from PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from gpu_steward_testground.build import KUBERNETES_VERSION

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "gpu-steward"
VALUES_FULL = Path(__file__).resolve().parent / "values-full.yaml"
# The images a platform team sets (the chart has no default image); rendered before any other values.
IMAGE_VALUES = Path(__file__).resolve().parent / "values-images.yaml"

Doc = dict[str, Any]

# A helm built from source without version ldflags assumes Kubernetes v1.20 when it renders
# offline; render for the version the tests' control plane runs.
KUBE_VERSION = KUBERNETES_VERSION


def find_helm() -> Path | None:
    try:
        from gpu_steward_testground.build import bin_dir

        cached = bin_dir() / "helm"
        if cached.exists():
            return cached
    except ImportError:  # pragma: no cover - the package is always installed in the venv
        pass
    found = shutil.which("helm")
    return Path(found) if found else None


def run_helm(helm: Path, *args: str, kubeconfig: str | Path | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Keep helm's own caches out of the user's home and away from other test runs.
    env.setdefault("HELM_CACHE_HOME", str(REPO / ".pytest_cache" / "helm" / "cache"))
    env.setdefault("HELM_CONFIG_HOME", str(REPO / ".pytest_cache" / "helm" / "config"))
    env.setdefault("HELM_DATA_HOME", str(REPO / ".pytest_cache" / "helm" / "data"))
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}")
    return proc


def values_args(values_files: Iterable[Path] = (), sets: Sequence[str] = ()) -> list[str]:
    out: list[str] = []
    for f in values_files:
        out += ["-f", str(f)]
    for s in sets:
        out += ["--set", s]
    return out


def template(helm: Path, *, values_files: Iterable[Path] = (), sets: Sequence[str] = (),
             release: str = "gpu-steward", namespace: str = "gpu-steward", extra: Sequence[str] = ()) -> list[Doc]:
    """`helm template` -> the rendered objects (CRDs included)."""
    proc = run_helm(helm, "template", release, str(CHART), "--namespace", namespace, "--include-crds",
                    "--kube-version", KUBE_VERSION, *values_args([IMAGE_VALUES, *values_files], sets), *extra)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: Iterable[Doc], kind: str, name_suffix: str = "") -> Doc:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def operator_deployments(docs: Iterable[Doc]) -> list[Doc]:
    """The operator's Deployments in shard order: one, or one per shard (operator.shards > 1)."""
    deps = [d for d in by_kind(docs, "Deployment")
            if d["metadata"]["labels"].get("app.kubernetes.io/component") == "operator"]
    return sorted(deps, key=lambda d: int(d["metadata"]["labels"].get("gpusteward.dev/shard", "0")))


def operator_env(helm: Path, *, release: str = "gpu-steward", namespace: str = "gpu-steward",
                 sets: Sequence[str] = ()) -> dict[str, str]:
    """The operator container's plain environment as the chart renders it (secretKeyRefs left out)."""
    docs = template(helm, release=release, namespace=namespace, sets=sets,
                    extra=["--show-only", "templates/operator-deployment.yaml"])
    dep = one(docs, "Deployment", "-operator")
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env if "value" in e}
