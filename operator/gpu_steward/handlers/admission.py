"""Admission webhooks (kopf): who may approve a lease, and GPU pod ownership labels.

Thin: the rules live in gpu_steward.policy.lease / .ownership. The lease check fails closed (an
approval must never slip through while the operator is down); the pod check fails open, so a
stopped operator never blocks a cluster's pods.
"""

from __future__ import annotations

from typing import Any

import kopf

from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.policy.lease import APPROVED_BY_ANNOTATION, approval_denial
from gpu_steward.policy.ownership import admission_verdict
from gpu_steward.runtime import configured_settings

_SETTINGS = configured_settings()
# The admission handlers live in their own registry: handlers.run serves them from a kopf operator that
# runs on every replica, while the default registry (everything else) runs only on the leader.
REGISTRY = kopf.OperatorRegistry()
kopf.on.login(registry=REGISTRY)(kopf.login_via_client)  # what kopf's default registry comes with


def _user(userinfo: Any) -> tuple[str, list[str]]:
    info = userinfo or {}
    return str(info.get("username") or ""), list(info.get("groups") or [])


def validate_lease_approval(body: Any, old: Any, userinfo: Any, **_: Any) -> None:
    username, groups = _user(userinfo)
    reason = approval_denial(old, body, username, groups, _SETTINGS.approver_groups)
    if reason:
        raise kopf.AdmissionError(reason, code=403)


def stamp_lease_approver(body: Any, old: Any, userinfo: Any, patch: kopf.Patch, **_: Any) -> None:
    """Record who approved (status.approvedBy comes from it); validation then checks the stamp."""
    username, groups = _user(userinfo)
    was = bool(((old or {}).get("spec") or {}).get("approved"))
    now = bool((body.get("spec") or {}).get("approved"))
    if now and not was and approval_denial(old, body, username, groups, _SETTINGS.approver_groups) is None:
        patch.setdefault("metadata", {}).setdefault("annotations", {})[APPROVED_BY_ANNOTATION] = username


def validate_pod_ownership(body: Any, warnings: list[str], **_: Any) -> None:
    verdict, message = admission_verdict(body, _SETTINGS.required_pod_labels, _SETTINGS.ownership_admission)
    if verdict == "reject":
        raise kopf.AdmissionError(message or "missing ownership labels", code=403)
    if verdict == "warn" and message:
        warnings.append(message)


# kopf refuses to start when admission handlers exist but no webhook server is configured, so they
# are registered only with webhooks enabled. The lease check is persistent: it stays registered
# while the operator is down, so approvals fail closed; the pod check fails open (ignore_failures).
if _SETTINGS.webhook_enabled:
    kopf.on.validate(GROUP, VERSION, "experimentleases", id="lease-approval", operations=["CREATE", "UPDATE"],
                     persistent=True, registry=REGISTRY)(validate_lease_approval)
    kopf.on.mutate(GROUP, VERSION, "experimentleases", id="lease-approved-by",
                   operations=["CREATE", "UPDATE"], registry=REGISTRY)(stamp_lease_approver)
    if _SETTINGS.ownership_admission != "off":
        kopf.on.validate("", "v1", "pods", id="gpu-pod-ownership", operations=["CREATE"],
                         ignore_failures=True, registry=REGISTRY)(validate_pod_ownership)
