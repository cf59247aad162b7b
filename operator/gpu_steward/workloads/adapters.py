"""Suspend/resume adapters, one per kind: pure builders of JSON merge patches.

Every kind is suspended by flipping ONE field (DESIGN.md, "How a workload is suspended"). What that
field held before goes into the annotation ``gpusteward.dev/suspended-state`` in the SAME patch (one
atomic write), so resume restores it exactly: a StatefulSet's 3 replicas, a Job that was already
``suspend: false``, a JobSet whose ``suspend`` was unset (restored by deleting the key with ``null``).

- ``suspend_patch`` on a workload that is already suspended returns an empty patch and the record it
  already carries (never a new record: that would write down 0 replicas as "what to restore").
- ``resume_patch`` restores the field only while it still holds a suspended value (an owner who
  scaled a suspended StatefulSet by hand keeps their count) and always drops our record.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpu_steward.workloads.model import (
    JSON,
    NOTEBOOK_STOPPED_ANNOTATION,
    SUSPENDED_STATE_ANNOTATION,
    TRAINING_OPERATOR_KINDS,
    WorkloadRef,
    group_of,
)

RECORD_VERSION = 1
_MISSING = object()


class UnsupportedKind(LookupError):
    """No adapter for this (group, kind)."""


class CannotResume(ValueError):
    """Resume would have to guess (e.g. a replica count nobody recorded)."""


class InvalidRecord(ValueError):
    """The suspended-state annotation is not a record this module wrote."""


class CannotSuspend(ValueError):
    """This workload must not be suspended: it is notify-only, and the message says why."""


class WouldLoseData(CannotSuspend):
    """Suspending this workload would delete persistent data: it is notify-only (design invariant 7)."""


class ControllerRefuses(CannotSuspend):
    """The workload's own controller rejects suspension of this configuration."""


def unsuspendable_reason(obj: JSON) -> str | None:
    """Why ``obj`` (or a workload whose chain holds it) is notify-only, or None."""
    return data_loss_reason(obj) or refusal_reason(obj)


def refusal_reason(obj: JSON) -> str | None:
    """Why the workload's controller would reject ``obj`` suspended, or None.

    KubeRay fails a RayJob for good (JobDeploymentStatus ValidationFailed, its RayCluster left running)
    when ``spec.suspend`` is set on one that keeps its cluster after the job (``shutdownAfterJobFinishes``
    false, the default) or that runs on an existing cluster (``clusterSelector``).
    """
    if (group_of(obj.get("apiVersion", "")), obj.get("kind")) != ("ray.io", "RayJob"):
        return None
    spec, name = obj.get("spec") or {}, (obj.get("metadata") or {}).get("name", "?")
    if spec.get("clusterSelector"):
        return f"RayJob {name} runs on an existing RayCluster (clusterSelector): KubeRay cannot suspend it"
    if spec.get("shutdownAfterJobFinishes") is not True:
        return (f"RayJob {name} keeps its RayCluster after the job (shutdownAfterJobFinishes is not true): "
                "KubeRay rejects suspending it and fails the RayJob")
    return None


# Parts of bulky spec sections (pod templates) that the rules below read: a projection that drops the
# section for its size (cluster_view) keeps these, or a notify-only workload would look suspendable.
DECISION_SPEC_PARTS: dict[str, tuple[str, ...]] = {
    "leaderWorkerTemplate": ("persistentVolumeClaimRetentionPolicy", "volumeClaimTemplates"),
}


def data_loss_reason(obj: JSON) -> str | None:
    """Why suspending ``obj`` (or a workload whose chain holds it) would delete data, or None.

    A StatefulSet whose ``persistentVolumeClaimRetentionPolicy.whenScaled`` is ``Delete`` loses the PVCs
    of every replica scaled away — scaling it to 0 would delete all its volumes. (A Kubeflow Notebook is
    stopped by scaling its StatefulSet to 0, so the same holds for a Notebook whose StatefulSet says so.)
    """
    key = (group_of(obj.get("apiVersion", "")), obj.get("kind"))
    name = (obj.get("metadata") or {}).get("name", "?")
    spec = obj.get("spec") or {}
    if key == ("apps", "StatefulSet"):
        policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        if policy.get("whenScaled") == "Delete":
            return (f"StatefulSet {name} deletes its PersistentVolumeClaims when scaled down "
                    "(persistentVolumeClaimRetentionPolicy.whenScaled: Delete): suspending it would delete its volumes")
    if key == ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"):
        # Scaling a LeaderWorkerSet to 0 scales its leader StatefulSet down (whenScaled) and, with each
        # leader pod gone, deletes that group's worker StatefulSet (whenDeleted): either Delete loses volumes.
        template = spec.get("leaderWorkerTemplate") or {}
        policy = template.get("persistentVolumeClaimRetentionPolicy") or {}
        deleting = sorted(k for k in ("whenScaled", "whenDeleted") if policy.get(k) == "Delete")
        if template.get("volumeClaimTemplates") and deleting:
            return (f"LeaderWorkerSet {name} has volumeClaimTemplates whose PersistentVolumeClaims are deleted "
                    f"({', '.join(f'{k}: Delete' for k in deleting)}): scaling it to 0 would delete its volumes")
    return None


def rfc3339(now: dt.datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Adapter:
    group: str
    kind: str
    path: tuple[str, ...]  # the one field suspend flips
    suspended_value: Callable[[dt.datetime], Any]  # what suspend writes there
    holds_suspended: Callable[[Any], bool]  # is the field's current value (_MISSING if absent) "suspended"?
    # What resume writes when no record exists: None deletes the key; _MISSING means "can't guess".
    resume_default: Any = _MISSING

    def is_suspended(self, workload: JSON) -> bool:
        return self.holds_suspended(_get(workload, self.path))

    def suspend_patch(self, workload: JSON, now: dt.datetime) -> tuple[JSON, JSON | None]:
        _check_kind(self, workload)
        if self.is_suspended(workload):
            return {}, read_record(workload)
        if (reason := data_loss_reason(workload)) is not None:
            raise WouldLoseData(reason)
        if (reason := refusal_reason(workload)) is not None:
            raise ControllerRefuses(reason)
        previous = _get(workload, self.path)
        record: JSON = {
            "version": RECORD_VERSION,
            "apiVersion": workload["apiVersion"],
            "kind": self.kind,
            "suspendedAt": rfc3339(now),
            "path": list(self.path),
            "present": previous is not _MISSING,
            "previous": None if previous is _MISSING else previous,
        }
        if previous is _MISSING:
            # how deep the path existed: resume removes the parents suspend had to create
            # (PyTorchJob without runPolicy gets no empty runPolicy back)
            record["absentFrom"] = next(i for i in range(len(self.path))
                                        if _get(workload, self.path[:i + 1]) is _MISSING)
        patch = deep_merge(_nested(self.path, self.suspended_value(now)), _record_patch(json_dumps(record)))
        return patch, record

    def resume_patch(self, workload: JSON, record: JSON | None = None) -> JSON:
        _check_kind(self, workload)
        if record is None:
            record = read_record(workload)
        has_annotation = SUSPENDED_STATE_ANNOTATION in _annotations(workload)
        patch: JSON = _record_patch(None) if has_annotation else {}
        if not self.is_suspended(workload):
            return patch  # already running (resumed by hand or never suspended): only drop our record
        if record is None:
            if self.resume_default is _MISSING:
                raise CannotResume(f"{self.kind}/{workload['metadata']['name']} is suspended but carries no "
                                   f"{SUSPENDED_STATE_ANNOTATION} record: the value of {'.'.join(self.path)} "
                                   "to restore is unknown; set it by hand")
            return deep_merge(_nested(self.path, self.resume_default), patch)
        _check_record(self, record)
        if record["present"]:
            return deep_merge(_nested(self.path, record["previous"]), patch)
        return deep_merge(_nested(self._removal_path(workload, record), None), patch)

    def _removal_path(self, workload: JSON, record: JSON) -> tuple[str, ...]:
        """The shortest prefix of the path to delete: a parent suspend created, if it holds nothing else now."""
        depth = record.get("absentFrom", len(self.path) - 1)
        if not isinstance(depth, int) or not 0 <= depth < len(self.path):
            depth = len(self.path) - 1
        for i in range(depth, len(self.path) - 1):
            if _only_holds(_get(workload, self.path[:i + 1]), self.path[i + 1:]):
                return self.path[:i + 1]
        return self.path


def _check_kind(adapter: Adapter, workload: JSON) -> None:
    if (group_of(workload.get("apiVersion", "")), workload.get("kind")) != (adapter.group, adapter.kind):
        raise UnsupportedKind(f"{adapter.kind} adapter got {workload.get('apiVersion')} {workload.get('kind')}")


def _check_record(adapter: Adapter, record: JSON) -> None:
    if record.get("kind") != adapter.kind or tuple(record.get("path") or ()) != adapter.path:
        raise InvalidRecord(f"{SUSPENDED_STATE_ANNOTATION}: record for {record.get('kind')} "
                            f"{record.get('path')} does not fit {adapter.kind} {list(adapter.path)}")
    if not isinstance(record.get("present"), bool) or "previous" not in record:
        raise InvalidRecord(f"{SUSPENDED_STATE_ANNOTATION}: 'present' (bool) and 'previous' are required")
    if record["present"] and adapter.path[-1] == "replicas" and not (
            isinstance(record["previous"], int) and record["previous"] >= 0):
        raise InvalidRecord(f"{SUSPENDED_STATE_ANNOTATION}: previous replicas must be an integer >= 0, "
                            f"got {record['previous']!r}")


def read_record(workload: JSON) -> JSON | None:
    """The record in ``gpusteward.dev/suspended-state``, or None. Raises InvalidRecord on garbage."""
    raw = _annotations(workload).get(SUSPENDED_STATE_ANNOTATION)
    if not raw:
        return None
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise InvalidRecord(f"{SUSPENDED_STATE_ANNOTATION} is not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise InvalidRecord(f"{SUSPENDED_STATE_ANNOTATION} must be a JSON object")
    return record


def json_dumps(record: JSON) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


# ---- helpers over plain dicts -------------------------------------------------------------------

def _annotations(obj: JSON) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _only_holds(obj: Any, rest: tuple[str, ...]) -> bool:
    """Is ``obj`` nothing but the chain of single-key dicts along ``rest``?"""
    for part in rest:
        if not isinstance(obj, dict) or set(obj) != {part}:
            return False
        obj = obj[part]
    return True


def _nested(path: tuple[str, ...], value: Any) -> JSON:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return out  # type: ignore[no-any-return]


def _record_patch(value: str | None) -> JSON:
    return {"metadata": {"annotations": {SUSPENDED_STATE_ANNOTATION: value}}}


def deep_merge(a: JSON, b: JSON) -> JSON:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def apply_merge_patch(obj: JSON, patch: JSON) -> JSON:
    """RFC 7396 applied to a copy (tests and dry-run previews): null deletes, dicts merge."""
    out = dict(obj)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = apply_merge_patch(out[k] if isinstance(out.get(k), dict) else {}, v)
        else:
            out[k] = v
    return out


def describe(workload: JSON, patch: JSON) -> list[str]:
    """Human lines 'path: old -> new' for a patch (dry-run output, Events)."""
    lines: list[str] = []

    def walk(prefix: tuple[str, ...], sub: JSON) -> None:
        for k, v in sub.items():
            path = (*prefix, k)
            if isinstance(v, dict):
                walk(path, v)
                continue
            old = _get(workload, path)
            lines.append(f"{'.'.join(path)}: {'<unset>' if old is _MISSING else json.dumps(old)} -> "
                         f"{'<unset>' if v is None else json.dumps(v)}")

    walk((), patch)
    return lines


# ---- the registry -------------------------------------------------------------------------------

def _is_true(v: Any) -> bool:
    return v is True


def _is_false(v: Any) -> bool:
    return v is False


def _is_zero(v: Any) -> bool:
    return v == 0 and not isinstance(v, bool)


def _present(v: Any) -> bool:
    return v is not _MISSING and v is not None


def _const(value: Any) -> Callable[[dt.datetime], Any]:
    return lambda _now: value


def _suspend_flag(group: str, kind: str, path: tuple[str, ...] = ("spec", "suspend")) -> Adapter:
    return Adapter(group, kind, path, _const(True), _is_true, resume_default=False)


def _replicas(kind: str, group: str = "apps") -> Adapter:
    return Adapter(group, kind, ("spec", "replicas"), _const(0), _is_zero)


ADAPTERS: dict[tuple[str, str], Adapter] = {
    (a.group, a.kind): a
    for a in (
        _suspend_flag("batch", "Job"),
        _suspend_flag("jobset.x-k8s.io", "JobSet"),
        # Kubeflow Trainer: its TrainJob's JobSet and Jobs belong to it; the Trainer rewrites the
        # JobSet's suspend from the TrainJob's, so the TrainJob is where suspension sticks.
        _suspend_flag("trainer.kubeflow.org", "TrainJob"),
        # Kubeflow training operator: every kind deletes its pods while runPolicy.suspend is true.
        *(_suspend_flag("kubeflow.org", kind, ("spec", "runPolicy", "suspend")) for kind in TRAINING_OPERATOR_KINDS),
        _suspend_flag("ray.io", "RayJob"),
        _suspend_flag("ray.io", "RayCluster"),
        _replicas("StatefulSet"),
        _replicas("Deployment"),
        # LWS has no suspend: 0 groups, the count kept in our record (notify-only where volumes would go).
        _replicas("LeaderWorkerSet", "leaderworkerset.x-k8s.io"),
        # The Kubeflow notebook controller scales the Notebook's StatefulSet to 0 while this
        # annotation is set (its value is when it was stopped) and back when it is removed.
        Adapter("kubeflow.org", "Notebook", ("metadata", "annotations", NOTEBOOK_STOPPED_ANNOTATION),
                rfc3339, _present, resume_default=None),
        # Kueue owns the Job's `suspend`; deactivating its Workload evicts it and keeps it out.
        Adapter("kueue.x-k8s.io", "Workload", ("spec", "active"), _const(False), _is_false, resume_default=True),
    )
}


def adapter_for(obj_or_ref: JSON | WorkloadRef) -> Adapter:
    if isinstance(obj_or_ref, WorkloadRef):
        key = (obj_or_ref.group, obj_or_ref.kind)
    else:
        key = (group_of(obj_or_ref.get("apiVersion", "")), obj_or_ref.get("kind", ""))
    try:
        return ADAPTERS[key]
    except KeyError:
        raise UnsupportedKind(f"no suspend adapter for {key[1]} in group {key[0] or 'core'!r}") from None


def is_suspended(workload: JSON) -> bool:
    return adapter_for(workload).is_suspended(workload)


def suspend_patch(workload: JSON, now: dt.datetime) -> tuple[JSON, JSON | None]:
    """(merge patch, record). Empty patch when already suspended; the record is then the one the
    workload already carries (None if someone else suspended it)."""
    return adapter_for(workload).suspend_patch(workload, now)


def resume_patch(workload: JSON, record: JSON | None = None) -> JSON:
    """Merge patch restoring what ``record`` (default: the workload's own annotation) says."""
    return adapter_for(workload).resume_patch(workload, record)
