"""Reading admitted objects: the examples parse, what the schema cannot catch becomes Invalid, nothing raises."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_steward.api import parse
from gpu_steward.api.models import ExperimentLeaseSpec, GPUBudgetSpec, IdlePolicySpec
from gpu_steward.api.parse import Invalid, Valid

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PARSERS = {"GPUBudget": parse.parse_budget, "ExperimentLease": parse.parse_lease, "IdlePolicy": parse.parse_idle_policy}


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_parses_and_round_trips(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    parsed = PARSERS[body["kind"]](body)
    assert isinstance(parsed, Valid), parsed
    # Re-serialising gives back at least what the example says (defaults may be added, money canonicalised).
    again = PARSERS[body["kind"]]({"spec": parsed.value.to_body()})
    assert again == parsed


def test_example_values_are_parsed_into_units() -> None:
    budget = parse.parse_budget(load("gpubudget-team-a.yaml"))
    assert isinstance(budget, Valid)
    assert budget.value.spend is not None and budget.value.spend.limit == Decimal(12000)
    assert budget.value.fast_lane is not None and budget.value.fast_lane.max_duration == timedelta(days=1)
    lease = parse.parse_lease(load("experimentlease.yaml"))
    assert isinstance(lease, Valid)
    assert lease.value.duration == timedelta(hours=6) and lease.value.effective_grace_period() == timedelta(minutes=20)
    policy = parse.parse_idle_policy(load("idlepolicy-notebooks.yaml"))
    assert isinstance(policy, Valid)
    assert policy.value.idle.for_ == timedelta(minutes=30) and policy.value.dry_run is True


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = body["spec"]
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return body


@pytest.mark.parametrize(
    ("example", "path", "value", "field", "words"),
    [
        ("idlepolicy-notebooks.yaml", "schedule.timeZone", "Mars/Olympus", "spec.schedule.timeZone", "time zone"),
        ("idlepolicy-notebooks.yaml", "schedule.windows.0.cron", "61 8 * * *", "spec.schedule.windows[0].cron", "cron"),
        (
            "idlepolicy-notebooks.yaml",
            "schedule.windows.0.cron",
            "0 8 * *",
            "spec.schedule.windows[0].cron",
            "5 fields",
        ),
        (
            "idlepolicy-cluster-wide.yaml",
            "selector.workloadSelector.matchExpressions.0.operator",
            "Exists",
            "spec.selector.workloadSelector.matchExpressions[0].values",
            "empty",
        ),
        ("experimentlease.yaml", "expiresAt", "2026-11-26T25:00:00Z", "spec.expiresAt", "timestamp"),
        ("experimentlease.yaml", "duration", "99999999d", "spec.duration", "longer than"),
        ("gpubudget-team-a.yaml", "spend.alertAt", [80, 50], "spec.spend.alertAt", "ascending"),
        ("gpubudget-team-a.yaml", "gpuQuota", "many", "spec.gpuQuota", "integer"),
    ],
)
def test_what_the_schema_cannot_catch_is_invalid(example: str, path: str, value: Any, field: str, words: str) -> None:
    body = _with(load(example), path, value)
    parsed = PARSERS[body["kind"]](body)
    assert isinstance(parsed, Invalid)
    assert parsed.field == field
    assert words in parsed.message
    assert field in str(parsed)


def test_lease_with_both_ends_is_invalid() -> None:
    body = _with(load("experimentlease.yaml"), "expiresAt", "2026-11-27T00:00:00Z")
    parsed = parse.parse_lease(body)
    assert isinstance(parsed, Invalid) and "exactly one" in parsed.message


@pytest.mark.parametrize(
    "body", [{}, {"spec": None}, {"spec": []}, {"spec": "x"}, None, [], {"spec": {"gpuQuota": None}}]
)
def test_garbage_is_invalid_not_an_exception(body: Any) -> None:
    for parser in PARSERS.values():
        assert isinstance(parser(body), Invalid)


def test_status_parsers_fall_back_to_empty() -> None:
    assert parse.parse_budget_status({"status": {"spend": "not money"}}).spend is None
    assert parse.parse_lease_status({}).phase is None
    status = parse.parse_idle_policy_status({"status": {"mode": "DryRun", "reclaimedGPUHours": "3.5", "watched": 4}})
    assert status.mode == "DryRun" and status.reclaimed_gpu_hours == Decimal("3.5") and status.watched == 4


def test_models_build_bodies_in_wire_format() -> None:
    spec = ExperimentLeaseSpec(owner="bob", purpose="eval", gpus=1, expires_at=datetime(2026, 12, 1, tzinfo=UTC))
    assert spec.to_body()["expiresAt"] == "2026-12-01T00:00:00Z"
    assert spec.effective_grace_period() == timedelta(minutes=15)
    short = ExperimentLeaseSpec(owner="bob", purpose="eval", gpus=1, duration=timedelta(minutes=10))
    assert short.effective_grace_period() == timedelta(minutes=5)
    with pytest.raises(ValueError, match="exactly one"):
        ExperimentLeaseSpec(owner="bob", purpose="eval", gpus=1)
    with pytest.raises(ValueError, match="maxGPUs"):
        GPUBudgetSpec.model_validate({"gpuQuota": 1, "fastLane": {"maxGPUs": 2, "maxDuration": "1h"}})
    policy = IdlePolicySpec.model_validate(
        {"idle": {"gpuUtilPercent": 1, "for": "1h"}, "notice": {"before": "5m", "maxSnooze": "0s"}}
    )
    assert policy.to_body()["idle"] == {"gpuUtilPercent": 1, "for": "1h", "startupGrace": "10m"}
