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
from gpu_steward.policy.lease import (
    APPROVED_BY_ANNOTATION,
    APPROVED_TERMS_ANNOTATION,
    CREATED_BY_ANNOTATION,
    REJECTED_ANNOTATION,
    FastLane,
    LeaseTerms,
    terms_digest,
)


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
        lane = FastLane(fl.max_gpus, fl.max_duration, fl.max_spend, fl.max_renewals, fl.max_active_per_owner,
                        fl.max_active_per_namespace)
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
    approved_by: str | None  # the approver's stamp, when it is a valid approval of the current terms
    creator: str | None  # who created the lease (the admission webhook's stamp), when it can be trusted

    @property
    def identity(self) -> str:
        """Whose lease it is for per-owner limits: the stamped creator, else the (free-text) owner."""
        return self.creator or self.terms.owner


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


def parse_lease(obj: dict[str, Any], *, webhooks: bool = False) -> ParsedLease:
    """``webhooks``: whether the admission webhooks run, so the stamps they write (created-by,
    approved-by, approved-terms) can be trusted. Without them there is no creator and no approval:
    ``spec.approved`` alone is never an approval."""
    try:
        spec = ExperimentLeaseSpec.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        raise _explain("ExperimentLease", exc) from exc
    meta = obj.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp"))
    if created is None:
        raise ValueError("metadata.creationTimestamp missing")
    annotations = meta.get("annotations") or {}
    raw_spec = obj.get("spec") or {}
    creator = annotations.get(CREATED_BY_ANNOTATION) if webhooks else None
    approver = annotations.get(APPROVED_BY_ANNOTATION)
    valid_approval = bool(
        webhooks and spec.approved and approver and creator
        and approver not in (creator, spec.owner)
        and annotations.get(APPROVED_TERMS_ANNOTATION) == terms_digest(raw_spec)
    )
    rejected = annotations.get(REJECTED_ANNOTATION)
    approved: bool | None = True if valid_approval else (False if rejected and webhooks else None)
    selector = selector_string(raw_spec.get("selector"), meta["name"])
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
        selector=selector,
    )
    return ParsedLease(terms, spec.owner_email, selector, approver if valid_approval else None, creator)
