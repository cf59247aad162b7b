"""Property: any object shaped like what the apiserver admits parses to Valid or Invalid — nothing escapes.

Objects are drawn from the generated CRD schemas themselves (types, enums, patterns, bounds, formats), so
they are exactly as varied as the apiserver lets through; the CEL rules are deliberately not applied, so
the parser also meets cross-field violations and must still answer with Invalid rather than raise.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from fixtures.crd_strategies import crd_properties, spec_strategy
from gpu_steward.api import parse

PARSERS = {"GPUBudget": parse.parse_budget, "ExperimentLease": parse.parse_lease, "IdlePolicy": parse.parse_idle_policy}
STATUS_PARSERS = {
    "GPUBudget": parse.parse_budget_status,
    "ExperimentLease": parse.parse_lease_status,
    "IdlePolicy": parse.parse_idle_policy_status,
}


@pytest.mark.parametrize("kind_name", sorted(PARSERS))
def test_parser_never_raises_on_admitted_shapes(kind_name: str) -> None:
    props = crd_properties(kind_name)
    parser = PARSERS[kind_name]
    outcomes: dict[str, int] = {"valid": 0, "invalid": 0}

    @settings(
        max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
    )
    @given(spec=spec_strategy(props["spec"]), status=spec_strategy(props["status"]))
    def check(spec: dict[str, Any], status: dict[str, Any]) -> None:
        body = {"apiVersion": "gpusteward.dev/v1alpha1", "kind": kind_name, "spec": spec, "status": status}
        result = parser(body)  # must not raise
        STATUS_PARSERS[kind_name](body)  # must not raise either
        if isinstance(result, parse.Valid):
            outcomes["valid"] += 1
            # What we write back is a fixed point: parsing it again gives the same body.
            written = result.value.to_body()
            again = parser({"spec": written})
            assert isinstance(again, parse.Valid), again
            assert again.value.to_body() == written
        else:
            assert isinstance(result, parse.Invalid)
            outcomes["invalid"] += 1
            assert result.field.startswith("spec") and result.message

    check()
    # Both outcomes must be exercised, or the generator is not testing what it claims.
    assert outcomes["valid"] > 0 and outcomes["invalid"] > 0, outcomes
