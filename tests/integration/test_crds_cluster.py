"""The generated CRDs on the real apiserver: examples apply and read back, bad resources are refused by name,
printer columns show status values, and every object the apiserver admits parses without raising."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from fixtures.crd_invalid_cases import CASES, Case
from fixtures.crd_strategies import crd_properties, spec_strategy
from gpu_steward.api import parse
from gpu_steward.api.kinds import KINDS
from gpu_steward.api.models import GPUBudgetStatus, IdlePolicyStatus
from gpu_steward.api.parse import Invalid, Valid

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TEST_NS = "crd-tests"
EXAMPLE_NAMESPACES = ("team-a", "gpu-steward")
PARSERS = {"GPUBudget": parse.parse_budget, "ExperimentLease": parse.parse_lease, "IdlePolicy": parse.parse_idle_policy}


class Kubectl:
    """The pinned kubectl against the test cluster, returning the completed process (checked only on demand)."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary, self.kubeconfig = binary, kubeconfig

    def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def apply(self, body: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("apply", "-f", "-", stdin=yaml.safe_dump(body), check=check)


@pytest.fixture(scope="module")
def kubectl(cluster: Any) -> Kubectl:
    k = Kubectl(Path(cluster.bin_dir) / "kubectl", Path(cluster.kubeconfig))
    k("apply", "-f", str(ROOT / "crds"))
    names = [f"crd/{kind.crd_name}" for kind in KINDS]
    k("wait", "--for=condition=Established", "--timeout=60s", *names)
    for namespace in (TEST_NS, *EXAMPLE_NAMESPACES):
        if k("get", "namespace", namespace, check=False).returncode != 0:
            k("create", "namespace", namespace)
    # Discovery of new kinds can lag the Established condition by a moment.
    deadline = time.monotonic() + 30
    while k("get", "gpusteward", "-n", TEST_NS, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the gpusteward category never became discoverable"
        time.sleep(0.5)
    return k


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


def _subset(expected: Any, actual: Any, path: str = "") -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: {actual!r} is not an object"]
        return [d for key, value in expected.items() for d in _subset(value, actual.get(key), f"{path}.{key}")]
    return [] if expected == actual else [f"{path}: applied {expected!r}, read back {actual!r}"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_applies_and_reads_back_unchanged(kubectl: Kubectl, path: Path) -> None:
    example = yaml.safe_load(path.read_text())
    kubectl("apply", "-f", str(path))
    stored = json.loads(kubectl("get", "-f", str(path), "-o", "json").stdout)
    assert _subset(example["spec"], stored["spec"]) == []
    # Nothing left to change: the server's copy is what the file says (plus schema defaults).
    diff = kubectl("diff", "-f", str(path), check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    # And the operator reads it: admitted examples are Valid.
    assert isinstance(PARSERS[stored["kind"]](stored), Valid)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_resource_is_rejected_naming_the_field(kubectl: Kubectl, case: Case) -> None:
    base = load(case.example)
    base["metadata"] = {"name": case.id, "namespace": TEST_NS}
    if case.update:
        kubectl.apply(case.apply_to(base, case.also))
        changed = case.apply_to(base, {**case.also, **case.set})
    else:
        changed = case.apply_to(base, case.also)
        changed = case.apply_to(changed)
    result = kubectl.apply(changed, check=False)
    output = result.stderr + result.stdout
    assert result.returncode != 0, f"accepted: {output}"
    for words in case.expect:
        assert words in output, f"{words!r} not in: {output}"


def test_at_least_25_invalid_cases() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


def _status_patch(kubectl: Kubectl, resource: str, namespace: str, status: dict[str, Any]) -> None:
    kubectl(
        "patch", resource, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
    )


def _table(kubectl: Kubectl, *args: str) -> list[list[str]]:
    lines = kubectl("get", *args).stdout.strip().splitlines()
    return [line.split() for line in lines]


def test_printer_columns_show_status_values(kubectl: Kubectl) -> None:
    for name in ("gpubudget-team-a.yaml", "experimentlease.yaml", "idlepolicy-notebooks.yaml"):
        kubectl("apply", "-f", str(EXAMPLES / name))

    budget_status = GPUBudgetStatus(gpus_in_use=6, effective_quota=20, spend="4210.5", forecast="11800", currency="USD")
    _status_patch(kubectl, "gpubudget/team-a", "team-a", budget_status.to_body())
    _status_patch(
        kubectl,
        "experimentlease/lr-sweep",
        "team-a",
        {"phase": "Active", "expiresAt": "2030-01-01T06:00:00Z", "spend": "12.50", "gpuHours": "5"},
    )
    policy_status = IdlePolicyStatus(mode="DryRun", watched=9, idle=3, warned=2, suspended=1, reclaimed_cost="96.00")
    _status_patch(kubectl, "idlepolicy/notebooks", "team-a", policy_status.to_body())

    header, row = _table(kubectl, "gb", "team-a", "-n", "team-a")
    assert header == ["NAME", "QUOTA", "IN-USE", "SPEND", "LIMIT", "FORECAST", "AGE"]
    assert row[:6] == ["team-a", "16", "6", "4210.50", "12000", "11800.00"]

    header, row = _table(kubectl, "lease", "lr-sweep", "-n", "team-a")
    assert header == ["NAME", "OWNER", "GPUS", "PHASE", "EXPIRES", "SPEND", "AGE"]
    assert row[:6] == ["lr-sweep", "alice", "4", "Active", "2030-01-01T06:00:00Z", "12.50"]

    header, row = _table(kubectl, "idlepol", "notebooks", "-n", "team-a")
    assert header == ["NAME", "MODE", "IDLE", "WARNED", "SUSPENDED", "SAVED", "AGE"]
    assert row[:6] == ["notebooks", "DryRun", "3", "2", "1", "96.00"]

    # The shared category lists all three kinds at once.
    listed = kubectl("get", "gpusteward", "-n", "team-a", "-o", "name").stdout.split()
    assert {"gpubudget.gpusteward.dev/team-a", "experimentlease.gpusteward.dev/lr-sweep"} <= set(listed)
    assert "idlepolicy.gpusteward.dev/notebooks" in listed


def test_status_is_validated_and_spec_is_not_written_through_it(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(EXAMPLES / "experimentlease.yaml"))
    bad = kubectl(
        "patch", "lease", "lr-sweep", "-n", "team-a", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Bogus"}}), check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "status.phase" in bad.stderr
    # Through the status subresource, spec changes are ignored.
    kubectl(
        "patch", "lease", "lr-sweep", "-n", "team-a", "--subresource=status", "--type=merge",
        "-p", json.dumps({"spec": {"gpus": 64}, "status": {"phase": "Active"}}),
    )  # fmt: skip
    stored = json.loads(kubectl("get", "lease", "lr-sweep", "-n", "team-a", "-o", "json").stdout)
    assert stored["spec"]["gpus"] == 4 and stored["status"]["phase"] == "Active"


def test_objects_the_apiserver_admits_parse_without_raising(cluster: Any, kubectl: Kubectl) -> None:
    """Random schema-shaped specs go through server-side dry-run; whatever is admitted must parse, and parse
    Valid unless the reason is one the schema cannot express (time zone, cron, selector values, zone-less time)."""
    from kubernetes import client

    api = client.CustomObjectsApi(cluster.api_client())
    counts = {"admitted": 0, "refused": 0}
    schema_blind = ("timeZone", "cron", "matchExpressions", "expiresAt", "lastTransitionTime")

    for kind in KINDS:

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(spec=spec_strategy(crd_properties(kind.kind)["spec"]))
        def check(spec: dict[str, Any], kind: Any = kind) -> None:
            body = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": "probe"}, "spec": spec}
            try:
                admitted = api.create_namespaced_custom_object(
                    kind.group, kind.version, TEST_NS, kind.plural, body, dry_run="All", field_validation="Strict"
                )
            except client.ApiException as exc:
                assert exc.status in (400, 422), exc
                counts["refused"] += 1
                return
            counts["admitted"] += 1
            result = PARSERS[kind.kind](admitted)
            if isinstance(result, Invalid):
                assert any(word in result.field for word in schema_blind), (result, spec)

        check()
    assert counts["admitted"] > 0 and counts["refused"] > 0, counts
