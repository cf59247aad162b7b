"""Types shared by the three custom resources: unit-typed fields, label selectors, conditions.

The unit types (``Duration``, ``Money``, ``Quantity``, ``Time``) are parsed values in Python (timedelta,
Decimal, aware datetime) and strings on the wire; each declares the exact JSON schema the CRD carries, so
the apiserver and ``gpu_steward.units`` agree on one format.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

from gpu_steward import units

GROUP = "gpusteward.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Bounds that keep CEL cost estimates small and reject absurd input early.
NAME_MAX = 253
SHORT_TEXT_MAX = 256
LONG_TEXT_MAX = 1024
LIST_MAX = 64


def _duration_in(value: Any) -> Any:
    return units.parse_duration(value) if isinstance(value, str) else value


def _money_in(value: Any) -> Any:
    return units.parse_money(value) if isinstance(value, str) else value


def _time_in(value: Any) -> Any:
    return units.parse_time(value) if isinstance(value, str) else value


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration_in),
    PlainSerializer(units.format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": units.DURATION_PATTERN,
            "minLength": 1,
            "maxLength": units.DURATION_MAX_LENGTH,
            "description": "A duration: days, hours, minutes, seconds, e.g. '90s', '15m', '1h30m', '7d'.",
        }
    ),
]

Money = Annotated[
    Decimal,
    BeforeValidator(_money_in),
    PlainSerializer(units.format_money, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": units.MONEY_PATTERN,
            "maxLength": units.MONEY_MAX_LENGTH,
            "description": "An amount of money as a decimal string, e.g. '1500' or '12.50'.",
        }
    ),
]

Quantity = Annotated[
    Decimal,
    BeforeValidator(_money_in),
    PlainSerializer(units.format_quantity, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": units.QUANTITY_PATTERN,
            "maxLength": units.MONEY_MAX_LENGTH,
            "description": "A non-negative decimal amount, e.g. GPU-hours '12.5'.",
        }
    ),
]

Time = Annotated[
    datetime,
    BeforeValidator(_time_in),
    PlainSerializer(units.format_time, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "An RFC 3339 timestamp."}),
]

Currency = Annotated[str, Field(pattern=units.CURRENCY_PATTERN, description="ISO 4217 currency code, e.g. USD.")]


def cel_seconds(path: str) -> str:
    """A CEL expression giving the seconds of a Duration string at ``path`` (e.g. ``self.duration``).

    CEL's ``duration()`` speaks Go's format, which has no days, so the ``Nd`` prefix is split off first.
    """
    rest = f"({path}.contains('d') ? {path}.split('d')[1] : {path})"
    days = f"({path}.contains('d') ? int({path}.split('d')[0]) * 86400 : 0)"
    return f"({days} + ({rest} == '' ? 0 : duration({rest}).getSeconds()))"


def rule(expr: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry; the message names the field it is about."""
    entry = {"rule": expr, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules into the generated CRD."""
    return {"x-kubernetes-validations": list(rules)}


def duration_bounds(minimum_s: int | None, maximum_s: int | None, name: str) -> dict[str, Any]:
    """CEL bounds on a Duration field, written where the field is (``self`` is the string)."""
    rules = []
    if minimum_s is not None:
        rules.append(rule(f"{cel_seconds('self')} >= {minimum_s}", f"{name} must be at least {_human(minimum_s)}"))
    if maximum_s is not None:
        rules.append(rule(f"{cel_seconds('self')} <= {maximum_s}", f"{name} must be at most {_human(maximum_s)}"))
    return validations(*rules)


def _human(seconds: int) -> str:
    return units.format_duration(timedelta(seconds=seconds))


class Model(BaseModel):
    """Base of every CRD model: camelCase on the wire, unknown fields refused, accepts both names in Python."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        frozen=True,
    )

    def to_body(self) -> dict[str, Any]:
        """The JSON-ready dict as it appears in the resource (camelCase, unset optionals left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(Model):
    """Status models may be updated in place by the code that builds them."""

    model_config = ConfigDict(frozen=False)


class LabelSelectorRequirement(Model):
    key: str = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[Annotated[str, Field(max_length=63)]] | None = Field(None, max_length=LIST_MAX)


class LabelSelector(Model):
    """A Kubernetes label selector (``matchLabels`` and ``matchExpressions``, ANDed)."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(None, max_length=LIST_MAX)
    match_expressions: list[LabelSelectorRequirement] | None = Field(None, max_length=LIST_MAX)


class SecretKeyRef(Model):
    """A key in a Secret in the resource's namespace."""

    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    key: str = Field(min_length=1, max_length=NAME_MAX, pattern=r"^[-._a-zA-Z0-9]+$")


class Condition(StatusModel):
    """A standard Kubernetes condition, keyed by ``type`` (see ``api.conditions.set_condition``)."""

    type: str = Field(min_length=1, max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(min_length=1, max_length=1024)
    message: str = Field("", max_length=32768)
    last_transition_time: Time
    observed_generation: int | None = Field(None, ge=0)


class WorkloadRef(StatusModel):
    """A workload a lease or policy covers."""

    kind: str = Field(max_length=SHORT_TEXT_MAX)
    name: str = Field(max_length=NAME_MAX)
    api_version: str | None = Field(None, max_length=SHORT_TEXT_MAX)


CONDITIONS_SCHEMA_EXTRA: dict[str, Any] = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}


class ResourceStatus(StatusModel):
    """What every one of our resources' status carries: the generation it describes and its
    conditions, keyed by ``type``."""

    observed_generation: int | None = Field(None, ge=0)
    conditions: list[Condition] = Field(
        default_factory=list, max_length=LIST_MAX, json_schema_extra=CONDITIONS_SCHEMA_EXTRA
    )
