"""Static checks of what cannot run here (no Docker): the operator Dockerfile, kind config, kind-up.sh."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from helmtools import CHART, REPO

DOCKERFILE = REPO / "operator" / "Dockerfile"


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_operator_image_is_multi_stage_pinned_and_non_root() -> None:
    ins = _instructions(DOCKERFILE)
    args = dict(a.split("=", 1) for op, a in ins if op == "ARG" and "=" in a)
    froms = [rest.split()[0] for op, rest in ins if op == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    for ref in froms:
        image = args.get(ref.strip("${}"), ref)
        # An exact patch version tag (x.y.z) or a digest: never a moving tag like 3.12-slim or latest.
        assert re.search(r":\d+\.\d+\.\d+[-\w.]*(@sha256:[0-9a-f]{64})?$", image) or "@sha256:" in image, image
    final = ins[max(i for i, (op, _) in enumerate(ins) if op == "FROM"):]
    users = [rest for op, rest in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "runtime stage must run as non-root"
    assert users[-1].split(":")[0].isdigit(), "numeric user so runAsNonRoot can be verified"
    assert ("ENTRYPOINT", '["gpu-steward"]') in final
    # The runtime stage copies the venv only, not the source tree.
    copies = [rest for op, rest in final if op == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies)


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for op, rest in _instructions(DOCKERFILE):
        if op == "COPY" and not rest.startswith("--from="):
            for src in rest.split()[:-1]:
                assert (REPO / src).exists(), src
                assert src.rstrip("/") not in ignored, f"{src} is excluded by .dockerignore"
    assert {".venv", ".git", "tests"} <= ignored


def test_chart_image_entrypoint_matches() -> None:
    """The chart passes `run` to the image's `gpu-steward` entrypoint."""
    text = (CHART / "templates" / "operator-deployment.yaml").read_text()
    assert "args: [run]" in text


def test_kind_config_has_gpu_workers() -> None:
    cfg = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    assert cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4" and cfg["kind"] == "Cluster"
    roles = [n["role"] for n in cfg["nodes"]]
    assert roles.count("control-plane") == 1
    gpu = [n for n in cfg["nodes"] if n.get("labels", {}).get("nvidia.com/gpu.present") == "true"]
    assert len(gpu) >= 1
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for node in gpu:
        assert node["labels"]["nvidia.com/gpu.product"]
        patch = yaml.safe_load(node["kubeadmConfigPatches"][0])
        taints = patch["nodeRegistration"]["taints"]
        # The agent's default toleration matches the taint the GPU workers carry.
        assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in taints)
        assert any(t["key"] == "nvidia.com/gpu" and t["operator"] == "Exists" for t in values["agent"]["tolerations"])
        assert node["labels"][values["agent"]["gpuNodeLabel"]] in values["agent"]["gpuNodeLabelValues"]
    # Somewhere for the operator to run that is not a tainted GPU node or the control plane.
    assert any(n["role"] == "worker" and n not in gpu for n in cfg["nodes"])


def test_kind_up_script_parses_and_names_real_files() -> None:
    script = REPO / "scripts" / "kind-up.sh"
    assert script.stat().st_mode & 0o111, "executable"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    for path in ("kind-config.yaml", "operator/Dockerfile", "charts/gpu-steward"):
        assert path in text and (REPO / path).exists(), path
    assert "set -euo pipefail" in text
    assert "kind load docker-image" in text and "helm upgrade --install" in text
