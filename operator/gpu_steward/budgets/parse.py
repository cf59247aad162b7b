"""Parse and validate GPUBudget / ExperimentLease objects into the policy's plain terms.

The CRD models (``gpu_steward.api``) do the validation; errors come back as ``ValueError`` with a
message that names the field, so the reconcile marks the object ``Invalid`` and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from gpu_steward.api.budget import GPUBudgetSpec
from gpu_steward.api.lease import ExperimentLeaseSpec
from gpu_steward.policy.budget import BudgetTerms, SpendTerms
from gpu_steward.policy.cost import LEASE_LABEL, parse_time
from gpu_steward.policy.lease import APPROVED_BY_ANNOTATION, REJECTED_ANNOTATION, FastLane, LeaseTerms


def _explain(kind: str, exc: ValidationError) -> ValueError:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"spec.{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return ValueError(f"invalid {kind}: " + "; ".join(parts))


@dataclass(frozen=True)
class ParsedBudget:
    terms: BudgetTerms
    fast_lane: FastLane | None
    slack_channel: str | None
    webhook_secret_ref: dict[str, str] | None
    owners: tuple[str, ...]


def parse_budget(obj: dict[str, Any]) -> ParsedBudget:
    try:
        spec = GPUBudgetSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        raise _explain("GPUBudget", exc) from exc
    spend = None
    if spec.spend is not None:
        spend = SpendTerms(spec.spend.limit, spec.spend.currency, spec.spend.period, tuple(spec.spend.alert_at))
    lane = None
    if spec.fast_lane is not None:
        fl = spec.fast_lane
        lane = FastLane(fl.max_gpus, fl.max_duration, fl.max_spend, fl.max_renewals)
    notify = spec.notify
    ref = None
    if notify is not None and notify.webhook_secret_ref is not None:
        ref = {"name": notify.webhook_secret_ref.name, "key": notify.webhook_secret_ref.key}
    return ParsedBudget(
        terms=BudgetTerms(spec.gpu_quota, spend, spec.on_exceeded),
        fast_lane=lane,
        slack_channel=notify.slack_channel if notify else None,
        webhook_secret_ref=ref,
        owners=tuple(notify.owners or ()) if notify else (),
    )


@dataclass(frozen=True)
class ParsedLease:
    terms: LeaseTerms
    owner_email: str | None
    label_selector: str  # the selector as a label-selector string for list calls
    approved_by: str | None


def selector_string(selector: dict[str, Any] | None, lease_name: str) -> str:
    """A LabelSelector (wire form) as the ``labelSelector`` query string; default: the lease label."""
    if not selector:
        return f"{LEASE_LABEL}={lease_name}"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    if not parts:
        # An empty selector would cover every pod in the namespace: too broad for a lease.
        return f"{LEASE_LABEL}={lease_name}"
    return ",".join(parts)


def parse_lease(obj: dict[str, Any]) -> ParsedLease:
    try:
        spec = ExperimentLeaseSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        raise _explain("ExperimentLease", exc) from exc
    meta = obj.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    if created is None:
        raise ValueError("metadata.creationTimestamp missing")
    annotations = meta.get("annotations") or {}
    rejected = annotations.get(REJECTED_ANNOTATION)
    approved: bool | None = True if spec.approved else (False if rejected else None)
    terms = LeaseTerms(
        owner=spec.owner,
        gpus=spec.gpus,
        created=created,
        duration=spec.duration,
        expires_at=spec.expires_at,
        max_spend=spec.max_spend,
        renewals=spec.renewals,
        grace=spec.effective_grace_period(),
        on_expiry=spec.on_expiry,
        approved=approved,
    )
    raw_selector = (obj.get("spec") or {}).get("selector")
    return ParsedLease(terms, spec.owner_email, selector_string(raw_selector, meta["name"]),
                      annotations.get(APPROVED_BY_ANNOTATION))
