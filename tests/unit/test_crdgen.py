"""The CRDs in crds/ and the chart are exactly what the models generate, and they are structural and strict."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_steward.api import crdgen
from gpu_steward.api.kinds import KINDS

ROOT = Path(__file__).resolve().parents[2]


def test_tree_matches_generator_output() -> None:
    problems = crdgen.drift(ROOT)
    assert problems == [], "run `gpu-steward crds generate`:\n" + "".join(problems)


def test_check_reports_drift_in_either_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder in crdgen.OUTPUT_DIRS:
        shutil.copytree(ROOT / folder, tmp_path / folder)
    assert crdgen.main(["check", "--root", str(tmp_path)]) == 0

    chart_copy = tmp_path / "charts/gpu-steward/crds/gpusteward.dev_gpubudgets.yaml"
    chart_copy.write_text(chart_copy.read_text().replace("maximum: 100000", "maximum: 99"))
    assert crdgen.main(["check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "charts/gpu-steward/crds/gpusteward.dev_gpubudgets.yaml" in out
    assert "-                maximum: 99" in out

    (tmp_path / "crds/gpusteward.dev_idlepolicies.yaml").unlink()
    (tmp_path / "crds/gpusteward.dev_stale.yaml").write_text("{}")
    problems = "".join(crdgen.drift(tmp_path))
    assert "crds/gpusteward.dev_idlepolicies.yaml" in problems
    assert "gpusteward.dev_stale.yaml: not generated" in problems

    assert crdgen.main(["generate", "--root", str(tmp_path)]) == 0
    (tmp_path / "crds/gpusteward.dev_stale.yaml").unlink()
    assert crdgen.drift(tmp_path) == []


def _walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.fixture(params=[k.kind for k in KINDS])
def crd(request: pytest.FixtureRequest) -> dict[str, Any]:
    kind = next(k for k in KINDS if k.kind == request.param)
    return yaml.safe_load((ROOT / "crds" / f"{kind.group}_{kind.plural}.yaml").read_text())


def test_schema_is_structural_and_closed(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        for key in ("$ref", "anyOf", "oneOf", "allOf", "title", "x-kubernetes-preserve-unknown-fields", "nullable"):
            assert key not in node, f"{path} carries {key}"
        if "additionalProperties" in node:
            assert isinstance(node["additionalProperties"], dict) and "properties" not in node, path
        if node["type"] == "object" and path.startswith(".spec"):
            assert "properties" in node or "additionalProperties" in node, f"{path} is an open object"
    assert schema["required"] == ["spec"]


def test_names_status_and_category(crd: dict[str, Any]) -> None:
    names = crd["spec"]["names"]
    expected = {"GPUBudget": ["gb"], "ExperimentLease": ["lease"], "IdlePolicy": ["idlepol"]}
    assert names["shortNames"] == expected[names["kind"]]
    assert names["categories"] == ["gpusteward"]
    version = crd["spec"]["versions"][0]
    assert (crd["spec"]["group"], version["name"], version["subresources"]) == (
        "gpusteward.dev",
        "v1alpha1",
        {"status": {}},
    )


def test_printer_columns(crd: dict[str, Any]) -> None:
    expected = {
        "GPUBudget": ["QUOTA", "IN-USE", "SPEND", "LIMIT", "FORECAST", "AGE"],
        "ExperimentLease": ["OWNER", "GPUS", "PHASE", "EXPIRES", "SPEND", "AGE"],
        "IdlePolicy": ["MODE", "IDLE", "WARNED", "SUSPENDED", "SAVED", "AGE"],
    }[crd["spec"]["names"]["kind"]]
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"].upper() for c in columns if not c.get("priority")] == expected
    for column in columns:
        assert column["jsonPath"].startswith((".spec.", ".status.", ".metadata."))


def test_every_cel_rule_names_a_field(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = [r for _, node in _walk(schema) for r in node.get("x-kubernetes-validations", [])]
    assert rules
    for entry in rules:
        assert "spec." in entry["message"], entry


def test_defaults_use_the_wire_format() -> None:
    text = (ROOT / "crds/gpusteward.dev_idlepolicies.yaml").read_text()
    assert "default: 10m" in text and "PT" not in text
