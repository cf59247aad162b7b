"""Orchestration: read the workload, build the patch with the pure adapter, send it through Kube.

``suspend`` / ``resume`` never raise for expected situations (gone, unsupported kind, nothing
recorded to restore): the ``Result`` carries ``error`` so the evaluation loop marks it and carries on.
The patch carries ``metadata.resourceVersion``, so a write that raced another writer (someone
scaling the StatefulSet between our read and our patch) fails with 409 instead of recording a stale
replica count; we then read again and rebuild (a few times, with a short backoff: status writes by
the workload's own controller conflict too). Calls block: async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from gpu_steward.kube import Kube
from gpu_steward.workloads import adapters
from gpu_steward.workloads.model import JSON, KUEUE_GROUP, SUSPENDED_STATE_ANNOTATION, WorkloadRef
from gpu_steward.workloads.resolve import find_kueue_workload, kueue_queue, owned_by

log = structlog.get_logger(__name__)

# A 409 also comes from status writes of the workload's controller (they bump resourceVersion too),
# so allow a few quick re-reads before giving up.
_ATTEMPTS = 5
_BACKOFF_SECONDS = 0.1


@dataclass
class Result:
    action: Literal["suspend", "resume"]
    workload: WorkloadRef  # what was asked for (the Job, the Notebook)
    target: WorkloadRef | None  # what is (or would be) patched: the same, or its Kueue Workload
    dry_run: bool
    changed: bool = False  # a patch was sent (or, in dry-run, would be)
    patch: JSON = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)  # "spec.replicas: 3 -> 0"
    record: JSON | None = None
    message: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class KubeLookup:
    """The ``lookup`` / ``owned`` callables of ``resolve`` over Kube, cached for one evaluation pass
    (make a new one per pass). A kind the cluster does not serve reads as "not there"."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._cache: dict[tuple[str, str, str | None, str], JSON | None] = {}
        self._lists: dict[tuple[str, str, str | None], list[JSON]] = {}

    def __call__(self, api_version: str, kind: str, namespace: str | None, name: str) -> JSON | None:
        key = (api_version, kind, namespace, name)
        if key not in self._cache:
            self._cache[key] = self.kube.get_optional(api_version, kind, name, namespace)
        return self._cache[key]

    def owned(self, api_version: str, kind: str, namespace: str | None, owner_uid: str) -> list[JSON]:
        key = (api_version, kind, namespace)
        if key not in self._lists:
            self._lists[key] = self.kube.list_optional(api_version, kind, namespace)
        return [o for o in self._lists[key] if owned_by(o, owner_uid)]


def target_of(kube: Kube, workload: JSON) -> JSON | None:
    """The object to patch for ``workload``: itself, or the Kueue Workload when Kueue manages it
    (None when Kueue manages it but its Workload is missing)."""
    if kueue_queue(workload) is None:
        return workload
    lookup = KubeLookup(kube)
    return find_kueue_workload(workload, lookup, lookup.owned)


def suspend(kube: Kube, ref: WorkloadRef, now: dt.datetime, dry_run: bool) -> Result:
    return _act(kube, ref, "suspend", dry_run, now)


def resume(kube: Kube, ref: WorkloadRef, dry_run: bool) -> Result:
    return _act(kube, ref, "resume", dry_run, None)


def _act(kube: Kube, ref: WorkloadRef, action: Literal["suspend", "resume"], dry_run: bool,
         now: dt.datetime | None) -> Result:
    result = Result(action, ref, None, dry_run)
    for attempt in range(_ATTEMPTS):
        workload = kube.get_optional(ref.api_version, ref.kind, ref.name, ref.namespace)
        if workload is None:
            result.error = f"{ref} not found"
            return result
        if ref.uid and workload["metadata"].get("uid") != ref.uid:
            result.error = f"{ref} was replaced (uid {workload['metadata'].get('uid')} != {ref.uid})"
            return result
        target = workload if ref.group == KUEUE_GROUP else target_of(kube, workload)
        if target is None:
            result.error = f"{ref} is managed by Kueue (queue {kueue_queue(workload)}) but its Workload was not found"
            return result
        result.target = WorkloadRef.of(target)
        try:
            if action == "suspend":
                assert now is not None
                patch, record = adapters.suspend_patch(target, now)
            else:
                record = adapters.read_record(target)
                patch = adapters.resume_patch(target, record)
        except (adapters.UnsupportedKind, adapters.CannotResume, adapters.InvalidRecord,
                adapters.CannotSuspend) as exc:
            result.error = str(exc)
            return result
        result.patch, result.record = patch, record
        result.changes = adapters.describe(target, patch)
        if not patch:
            result.message = f"{ref} is already {'suspended' if action == 'suspend' else 'running'}: nothing to do"
            return result
        result.changed = True
        body = adapters.deep_merge(patch, {"metadata": {"resourceVersion": target["metadata"].get("resourceVersion")}})
        try:
            kube.patch(target["apiVersion"], target["kind"], target["metadata"]["name"],
                       target["metadata"].get("namespace"), body, dry_run=dry_run)
        except Exception as exc:  # the client's ApiException / DynamicApiError both carry .status
            if _status(exc) == 409 and attempt + 1 < _ATTEMPTS:
                log.info("conflict, reading again", action=action, workload=str(ref), attempt=attempt + 1)
                result.changed = False
                time.sleep(_BACKOFF_SECONDS * 2**attempt)
                continue
            result.changed = False
            result.error = f"{action} of {result.target} failed: HTTP {_status(exc)} {getattr(exc, 'reason', exc)}"
            return result
        verb = f"would {action}" if dry_run else {"suspend": "suspended", "resume": "resumed"}[action]
        via = f" via {result.target}" if result.target.kind != ref.kind else ""
        # The record annotation is our bookkeeping; the message says what changed for the owner.
        shown = [c for c in result.changes if SUSPENDED_STATE_ANNOTATION not in c] or result.changes
        result.message = f"{verb} {ref}{via}: " + "; ".join(shown)
        log.info("workload action", action=action, workload=str(ref), target=str(result.target),
                 dry_run=dry_run, changes=result.changes)
        return result
    return result


def _status(exc: Exception) -> Any:
    return getattr(exc, "status", None)
