"""Read an object the apiserver admitted into its model — never raising.

The schema catches most bad input at ``kubectl apply``; what it cannot (an unknown time zone, a cron
expression croniter refuses, a label selector that names values for ``Exists``, a value our parser
refuses though it matched the pattern) comes back as ``Invalid(field, message)``. The handler then sets
the ``Invalid`` condition and carries on; nothing here throws into kopf.

    parsed = parse_idle_policy(body)
    if isinstance(parsed, Invalid):
        ...  # mark status, skip this policy
    else:
        spec = parsed.value
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import BaseModel, ValidationError

from gpu_steward.api.budget import GPUBudgetSpec, GPUBudgetStatus
from gpu_steward.api.common import LabelSelector
from gpu_steward.api.idlepolicy import IdlePolicySpec, IdlePolicyStatus
from gpu_steward.api.lease import ExperimentLeaseSpec, ExperimentLeaseStatus

T = TypeVar("T", bound=BaseModel)
S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class Invalid:
    """Why an admitted object cannot be acted on: the field path (``spec.schedule.timeZone``) and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Valid(Generic[T]):
    value: T


Parsed = Valid[T] | Invalid


def parse_budget(body: Mapping[str, Any]) -> Parsed[GPUBudgetSpec]:
    """The spec of a GPUBudget body, or why it cannot be used."""
    return _parse_spec(body, GPUBudgetSpec, _budget_semantics)


def parse_lease(body: Mapping[str, Any]) -> Parsed[ExperimentLeaseSpec]:
    """The spec of an ExperimentLease body, or why it cannot be used."""
    return _parse_spec(body, ExperimentLeaseSpec, _lease_semantics)


def parse_idle_policy(body: Mapping[str, Any]) -> Parsed[IdlePolicySpec]:
    """The spec of an IdlePolicy body, or why it cannot be used."""
    return _parse_spec(body, IdlePolicySpec, _idle_policy_semantics)


def parse_budget_status(body: Mapping[str, Any]) -> GPUBudgetStatus:
    """The status we wrote earlier; an empty one when it is absent or unreadable (we rebuild it then)."""
    return _parse_status(body, GPUBudgetStatus)


def parse_lease_status(body: Mapping[str, Any]) -> ExperimentLeaseStatus:
    return _parse_status(body, ExperimentLeaseStatus)


def parse_idle_policy_status(body: Mapping[str, Any]) -> IdlePolicyStatus:
    return _parse_status(body, IdlePolicyStatus)


def field_path(loc: Sequence[int | str], prefix: str = "spec") -> str:
    """``("schedule", "windows", 0, "cron")`` -> ``"spec.schedule.windows[0].cron"``."""
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _parse_spec(
    body: Mapping[str, Any],
    model: type[T],
    semantics: Callable[[T], Iterator[Invalid]],
) -> Parsed[T]:
    try:
        spec = body.get("spec") if isinstance(body, Mapping) else None
        if not isinstance(spec, Mapping):
            return Invalid("spec", "is missing or not an object")
        try:
            value = model.model_validate(dict(spec))
        except ValidationError as exc:
            return _from_validation_error(exc)
        for problem in semantics(value):
            return problem
        return Valid(value)
    except Exception as exc:  # the contract: an admitted object never crashes the operator
        return Invalid("spec", f"cannot be read: {type(exc).__name__}: {exc}")


def _parse_status(body: Mapping[str, Any], model: type[S]) -> S:
    status = body.get("status") if isinstance(body, Mapping) else None
    if isinstance(status, Mapping):
        try:
            return model.model_validate(dict(status))
        except Exception:  # a status we cannot read is rebuilt from scratch
            pass
    return model()


def _from_validation_error(exc: ValidationError) -> Invalid:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    if not errors:
        return Invalid("spec", "is invalid")
    first = errors[0]
    # Model-level validators report an empty location: the rule spans fields, so name the spec.
    message = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return Invalid(field_path(tuple(first.get("loc", ()))), message)


def _selector_problems(selector: LabelSelector | None, path: str) -> Iterator[Invalid]:
    # The apiserver's schema cannot tie `values` to `operator`; the label-selector library would throw.
    if selector is None:
        return
    for index, req in enumerate(selector.match_expressions or ()):
        where = f"{path}.matchExpressions[{index}].values"
        if req.operator in ("In", "NotIn") and not req.values:
            yield Invalid(where, f"must not be empty for operator {req.operator}")
        if req.operator in ("Exists", "DoesNotExist") and req.values:
            yield Invalid(where, f"must be empty for operator {req.operator}")


def _budget_semantics(spec: GPUBudgetSpec) -> Iterator[Invalid]:
    return iter(())


def _lease_semantics(spec: ExperimentLeaseSpec) -> Iterator[Invalid]:
    yield from _selector_problems(spec.selector, "spec.selector")


def _idle_policy_semantics(spec: IdlePolicySpec) -> Iterator[Invalid]:
    if spec.selector is not None:
        yield from _selector_problems(spec.selector.namespace_selector, "spec.selector.namespaceSelector")
        yield from _selector_problems(spec.selector.workload_selector, "spec.selector.workloadSelector")
    if spec.exemptions is not None:
        for index, selector in enumerate(spec.exemptions.selectors):
            yield from _selector_problems(selector, f"spec.exemptions.selectors[{index}]")
    if spec.schedule is None:
        return
    problem = check_time_zone(spec.schedule.time_zone)
    if problem:
        yield Invalid("spec.schedule.timeZone", problem)
    for index, window in enumerate(spec.schedule.windows):
        problem = check_cron(window.cron)
        if problem:
            yield Invalid(f"spec.schedule.windows[{index}].cron", problem)


def check_time_zone(name: str) -> str | None:
    """None when ``name`` is an IANA time zone this machine knows, else why not."""
    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError for odd keys, OSError for odd paths
        return f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
    return None


def check_cron(expression: str) -> str | None:
    """None when ``expression`` is a 5-field cron expression croniter can schedule, else why not."""
    fields = expression.split()
    if len(fields) != 5:
        return f"invalid cron expression {expression!r}: use 5 fields (minute hour day month weekday)"
    try:
        croniter(expression, datetime(2026, 1, 1)).get_next(datetime)  # only checks the syntax
    except Exception as exc:  # croniter raises several types (CroniterBadCronError, KeyError, ...)
        return f"invalid cron expression {expression!r}: {exc}"
    return None


__all__ = [
    "Invalid",
    "Parsed",
    "Valid",
    "check_cron",
    "check_time_zone",
    "field_path",
    "parse_budget",
    "parse_budget_status",
    "parse_idle_policy",
    "parse_idle_policy_status",
    "parse_lease",
    "parse_lease_status",
]
