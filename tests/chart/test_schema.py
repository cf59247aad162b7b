"""values.schema.json rejects typos at every level, bad formats, and secrets in values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helmtools import CHART, IMAGE_VALUES, KUBE_VERSION, REPO, run_helm

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _render(helm: Path, tmp_path: Path, values: str) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "values.yaml"
    f.write_text(values)
    return run_helm(helm, "template", "gs", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(IMAGE_VALUES),
                    "-f", str(f), check=False)


def test_schema_is_current() -> None:
    """The committed schema is what scripts/values_schema.py writes."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "values_schema.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _objects(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            out.append((path, node))
        for k, v in node.items():
            out += _objects(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _objects(v, f"{path}[{i}]")
    return out


def test_every_object_is_closed() -> None:
    """Objects with named properties forbid others; maps of the user's keys type their values."""
    objects = _objects(SCHEMA)
    assert len(objects) > 40
    for path, node in objects:
        extra = node.get("additionalProperties")
        if path == "$.properties.global":  # a parent chart's globals: any key (those we read are typed)
            continue
        if "properties" in node:
            assert extra is False, f"{path} accepts unknown keys"
        else:
            # A map of the user's keys (labels, prices per model): its values are still typed.
            assert isinstance(extra, dict) and ("type" in extra or "oneOf" in extra), f"{path} is an untyped map"


@pytest.mark.parametrize("values, where", [
    ("operatr:\n  replicas: 1\n", "operatr"),                                           # level 1
    ("operator:\n  replica: 3\n", "replica"),                                           # level 2
    ("operator:\n  image:\n    tagg: v1\n", "tagg"),                                    # level 3
    ("webhook:\n  certManager:\n    issuerRef:\n      nme: ca\n", "nme"),               # level 4
    ("policies:\n- name: p\n  spec:\n    idle:\n      forr: 1h\n", "forr"),             # in a list item
    ("policies:\n- name: p\n  spec:\n    selector:\n      namespaceSelector:\n        matchLabel: {a: b}\n",
     "matchLabel"),                                                                    # level 6
    ("operator:\n  affinity:\n    nodeAffinity:\n      requiredDuringScheduling: {}\n", "requiredDuringScheduling"),
    ("agent:\n  tolerations:\n  - key: a\n    efect: NoSchedule\n", "efect"),
    ("operator:\n  extraEnv:\n  - name: X\n    valueFrom: {secretKeyRf: {name: s, key: k}}\n", "secretKeyRf"),
    ("operator:\n  securityContext:\n    readOnlyRootFilesytem: true\n", "readOnlyRootFilesytem"),
])
def test_unknown_key_is_rejected(helm: Path, tmp_path: Path, values: str, where: str) -> None:
    proc = _render(helm, tmp_path, values)
    assert proc.returncode != 0, f"accepted a typo: {values!r}"
    assert "additional properties" in proc.stderr.lower() or "additionalproperties" in proc.stderr.lower()
    assert where in proc.stderr


@pytest.mark.parametrize("values", [
    "slack:\n  webhookUrl: https://hooks.slack.com/services/T000/B000/XXXX\n",  # the secret itself
    "prices:\n  default: 2,50\n",
    "prices:\n  perModel:\n    NVIDIA-L4: cheap\n",
    "prices:\n  currency: usd\n",
    "policies:\n- name: p\n  spec:\n    idle:\n      for: 90 minutes\n",
    "policies:\n- name: p\n  spec:\n    action: Delete\n",
    "policies:\n- name: Bad_Name\n  spec: {}\n",
    "webhook:\n  certificates: selfsigned\n",
    "operator:\n  replicas: 0\n",
    "config:\n  ownershipAdmission: strict\n",
])
def test_bad_value_is_rejected(helm: Path, tmp_path: Path, values: str) -> None:
    assert _render(helm, tmp_path, values).returncode != 0


def test_known_keys_are_accepted(helm: Path, tmp_path: Path) -> None:
    """The negative cases above fail for the reason given, not because the file is unreadable."""
    proc = _render(helm, tmp_path, "operator:\n  replicas: 1\n  image:\n    tag: v1\n"
                                   "prices:\n  perModel:\n    NVIDIA-L4: '0.70'\n")
    assert proc.returncode == 0, proc.stderr
