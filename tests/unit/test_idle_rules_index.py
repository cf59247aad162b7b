"""The idle orchestration's pure parts: policy spec → engine rules, and the pod index entries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from gpu_steward.api.parse import Valid, parse_idle_policy
from gpu_steward.idle.rules import rules_from_spec, windows_from_spec
from gpu_steward.index import Registry, gpu_pod_entry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _spec(name: str):  # type: ignore[no-untyped-def]
    parsed = parse_idle_policy(yaml.safe_load((EXAMPLES / name).read_text()))
    assert isinstance(parsed, Valid), parsed
    return parsed.value


def test_rules_follow_the_policy_and_the_global_dry_run_wins() -> None:
    spec = _spec("idlepolicy-cluster-wide.yaml")
    rules = rules_from_spec(spec, global_dry_run=False, max_sample_age=dt.timedelta(minutes=3),
                            max_gap=dt.timedelta(minutes=2))
    assert rules.idle_for == dt.timedelta(hours=2)
    assert rules.notice_before == dt.timedelta(minutes=30)
    assert rules.startup_grace == dt.timedelta(minutes=20)
    assert rules.max_snooze == dt.timedelta(days=1)
    assert rules.util_threshold_percent == 2.0 and rules.action == "Suspend" and rules.dry_run is False
    forced = rules_from_spec(spec, global_dry_run=True, max_sample_age=dt.timedelta(minutes=3),
                             max_gap=dt.timedelta(minutes=2))
    assert forced.dry_run is True


def test_schedule_windows_carry_their_time_zone() -> None:
    spec = _spec("idlepolicy-notebooks.yaml")
    windows, tz = windows_from_spec(spec)
    assert windows and tz == spec.schedule.time_zone
    assert all(isinstance(w.duration, dt.timedelta) for w in windows)


def _pod(gpus: str | None, uid: str = "u1") -> dict:  # type: ignore[type-arg]
    res = {"limits": {"nvidia.com/gpu": gpus}} if gpus else {}
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid, "labels": {"a": "b"},
                         "annotations": {"gpusteward.dev/owner": "x", "huge/blob": "y" * 1000},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1",
                                              "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": res}]},
            "status": {"phase": "Running", "startTime": "2026-11-26T10:00:00Z"}}


def test_index_keeps_gpu_pods_only_and_small_entries() -> None:
    assert gpu_pod_entry(_pod(None)) is None
    entry = gpu_pod_entry(_pod("2"))
    assert entry is not None and entry.gpus == 2 and entry.running
    assert dict(entry.annotations) == {"gpusteward.dev/owner": "x"}  # foreign blobs are not kept
    obj = entry.as_object()
    assert obj["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert "blockOwnerDeletion" not in obj["metadata"]["ownerReferences"][0]


def test_registry_follows_watch_events() -> None:
    reg = Registry()
    reg.pod_event("ADDED", _pod("1", "a"))
    reg.pod_event("ADDED", _pod(None, "b"))
    reg.pod_event(None, _pod("4", "c"))
    assert sorted(p.uid for p in reg.pods()) == ["a", "c"]
    reg.pod_event("DELETED", _pod("1", "a"))
    assert [p.uid for p in reg.pods()] == ["c"]
