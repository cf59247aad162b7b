"""Property: any object shaped like what the apiserver admits parses to Valid or Invalid — nothing escapes.

Objects are drawn from the generated CRD schemas themselves (types, enums, patterns, bounds, formats), so
they are exactly as varied as the apiserver lets through; the CEL rules are deliberately not applied, so
the parser also meets cross-field violations and must still answer with Invalid rather than raise.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpu_steward import units
from gpu_steward.api import parse
from gpu_steward.api.kinds import KINDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
PARSERS = {"GPUBudget": parse.parse_budget, "ExperimentLease": parse.parse_lease, "IdlePolicy": parse.parse_idle_policy}
STATUS_PARSERS = {
    "GPUBudget": parse.parse_budget_status,
    "ExperimentLease": parse.parse_lease_status,
    "IdlePolicy": parse.parse_idle_policy_status,
}

# What a `format: date-time` field may hold after admission: RFC 3339 in its variants, plus the looser
# layouts Go's OpenAPI validators accept (no zone, reduced precision), which our parser must refuse politely.
_date_times = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S")),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%MZ")),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z"),
)
# Cron fields and time zones are free strings to the schema; mix real ones with noise.
_CRON = st.one_of(
    st.sampled_from(["0 8 * * 1-5", "*/15 * * * *", "0 0 1 * *", "@daily", "61 * * * *", "0 8 * *", "a b c d e"]),
    st.text(alphabet="0123456789*/-, ", min_size=1, max_size=30),
)
_ZONES = st.one_of(
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Mars/Olympus", "..", "Etc/GMT+5"]),
    st.from_regex(r"\A[A-Za-z0-9_+\-/]{1,20}\Z"),
)


def strategy(schema: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    kind = schema["type"]
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "object":
        if "properties" not in schema:
            values = strategy(schema.get("additionalProperties", {"type": "string"}))
            keys = st.from_regex(r"\A[a-z0-9]([a-z0-9./-]{0,20}[a-z0-9])?\Z")
            return st.dictionaries(keys, values, max_size=min(schema.get("maxProperties", 3), 3))
        required = set(schema.get("required", []))
        props = {key: strategy(sub, key) for key, sub in schema["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in props.items() if k in required},
            optional={k: v for k, v in props.items() if k not in required},
        )
    if kind == "array":
        return st.lists(
            strategy(schema["items"], name),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 4), 4),
            unique=schema.get("x-kubernetes-list-type") == "set",
        )
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**40)), schema.get("maximum", 2**40))
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 64)
        if schema.get("format") == "date-time":
            return _date_times
        if name == "cron":
            return _CRON
        if name == "timeZone":
            return _ZONES
        if schema.get("pattern") == units.DURATION_PATTERN:
            # Admission's CEL bounds keep durations sane; draw mostly such, sometimes any pattern match.
            sane = st.integers(0, 40 * 86400).map(lambda s: units.format_duration(timedelta(seconds=s)))
            base = st.one_of(sane, sane, sane, st.from_regex(schema["pattern"], fullmatch=True))
        elif "pattern" in schema:
            base = st.from_regex(schema["pattern"], fullmatch=True)
        else:
            base = st.text(min_size=low, max_size=min(high, 24))
        return base.filter(lambda s: low <= len(s) <= high)
    raise AssertionError(f"no strategy for {schema!r}")


def _schema(kind_name: str) -> dict[str, Any]:
    kind = next(k for k in KINDS if k.kind == kind_name)
    crd = yaml.safe_load((ROOT / "crds" / f"{kind.group}_{kind.plural}.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]


@pytest.mark.parametrize("kind_name", sorted(PARSERS))
def test_parser_never_raises_on_admitted_shapes(kind_name: str) -> None:
    props = _schema(kind_name)
    parser = PARSERS[kind_name]
    outcomes: dict[str, int] = {"valid": 0, "invalid": 0}

    @settings(
        max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
    )
    @given(spec=strategy(props["spec"]), status=strategy(props["status"]))
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
