"""Admission webhooks (kopf): who created a lease or a workload, who may approve a lease, and GPU
pod ownership labels.

Thin: the rules live in gpu_steward.policy.lease / .ownership. The lease checks fail closed (an
approval must never slip through while the operator is down); the pod and workload checks fail
open, so a stopped operator never blocks a cluster's pods.

The identity stamps come from the admission request's userInfo, the only identity the apiserver
vouches for: ``gpusteward.dev/created-by`` on every lease and on GPU-capable workloads (pods, Jobs,
Deployments, StatefulSets) at CREATE, and ``approved-by`` / ``approved-terms`` when an approver
approves a lease. Users cannot set or change them (the validating webhooks refuse it).
"""

from __future__ import annotations

from typing import Any

import kopf

from gpu_steward.api.common import GROUP, VERSION
from gpu_steward.policy.lease import (
    CREATED_BY_ANNOTATION,
    approval_denial,
    creator_denial,
    lease_admission_patch,
)
from gpu_steward.policy.ownership import admission_verdict
from gpu_steward.runtime import configured_settings

_SETTINGS = configured_settings()
# The admission handlers live in their own registry: handlers.run serves them from a kopf operator that
# runs on every replica, while the default registry (everything else) runs only on the leader.
REGISTRY = kopf.OperatorRegistry()
kopf.on.login(registry=REGISTRY)(kopf.login_via_client)  # what kopf's default registry comes with
# Workloads whose creator is stamped at admission (group, version, plural).
WORKLOAD_RESOURCES = (("", "v1", "pods"), ("batch", "v1", "jobs"), ("apps", "v1", "deployments"),
                      ("apps", "v1", "statefulsets"))


def _user(userinfo: Any) -> tuple[str, list[str]]:
    info = userinfo or {}
    return str(info.get("username") or ""), list(info.get("groups") or [])


def validate_lease_approval(body: Any, old: Any, userinfo: Any, **_: Any) -> None:
    username, groups = _user(userinfo)
    reason = creator_denial(old, body, username) or approval_denial(
        old, body, username, groups, _SETTINGS.approver_groups)
    if reason:
        raise kopf.AdmissionError(reason, code=403)


def stamp_lease_approver(body: Any, old: Any, userinfo: Any, patch: kopf.Patch, **_: Any) -> None:
    """Stamp the creator (CREATE) and who approved which terms; withdraw an approval whose terms a
    non-approver edits. Validation then checks the stamps."""
    username, groups = _user(userinfo)
    patch.update(lease_admission_patch(old, body, username, groups, _SETTINGS.approver_groups))


def stamp_workload_creator(body: Any, userinfo: Any, patch: kopf.Patch, **_: Any) -> None:
    """CREATE of a pod or workload: record the requesting user (overwrites a value in the body, e.g.
    one copied from a pod template: the creator is whoever sends the request)."""
    username, _groups = _user(userinfo)
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if username and annotations.get(CREATED_BY_ANNOTATION) != username:
        patch.setdefault("metadata", {}).setdefault("annotations", {})[CREATED_BY_ANNOTATION] = username


def validate_workload_creator(body: Any, old: Any, userinfo: Any, **_: Any) -> None:
    username, _groups = _user(userinfo)
    reason = creator_denial(old, body, username)
    if reason:
        raise kopf.AdmissionError(reason, code=403)


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
    # Who created a workload (the lease-expiry check: a lease suspends only its creator's workloads).
    for group, version, plural in WORKLOAD_RESOURCES:
        kopf.on.mutate(group, version, plural, id=f"created-by-{plural}", operations=["CREATE"],
                       ignore_failures=True, registry=REGISTRY)(stamp_workload_creator)
        kopf.on.validate(group, version, plural, id=f"created-by-guard-{plural}", operations=["CREATE", "UPDATE"],
                         ignore_failures=True, registry=REGISTRY)(validate_workload_creator)
    if _SETTINGS.ownership_admission != "off":
        kopf.on.validate("", "v1", "pods", id="gpu-pod-ownership", operations=["CREATE"],
                         ignore_failures=True, registry=REGISTRY)(validate_pod_ownership)
