"""Red team: forge, delete or replay what the idle engine remembers, to get a workload suspended without a
real notice or to snooze it for ever (issue 12; DESIGN.md invariants 2, 5, 9).

A workload's owner can write its annotations and labels, delete and re-create it, and create ConfigMaps
in their own namespace. None of it may move a snooze bound past now + the policy's maximum, or stand in
for a warning the operator sent: the engine's state lives in the operator's store (docs/store.md), and
the workload's ``gpusteward.dev/idle-state`` annotation is only a mirror. Each attempt runs the real
IdleController over an in-memory cluster (tests/unit/idle_world.py), minute by minute, once the store is
past its upgrade window (``legacy_adoption_seconds=0``: no previous release's annotation is adopted).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))

from idle_world import NS, T0, World, gpu_pod, job, policy

from gpu_steward.policy.timeparse import format_rfc3339
from gpu_steward.workloads.model import IDLE_STATE_ANNOTATION

pytestmark = pytest.mark.redteam("forgery")

MIN = dt.timedelta(minutes=1)
NOTICE = dt.timedelta(minutes=15)  # idle_world's policy: idle 5m, notice.before 15m, maxSnooze 1h
MAX_SNOOZE = dt.timedelta(hours=1)
FAR = "2099-01-01T00:00:00Z"


def _world() -> World:
    return World(policy(["Event"]), legacy_adoption_seconds=0)


def _t(at: dt.datetime) -> str:
    return format_rfc3339(at)


class Timeline:
    """Runs passes one minute apart and notes when the workload was first warned and when suspended."""

    def __init__(self, w: World, obj: dict[str, Any]) -> None:
        self.w, self.obj = w, obj
        self.warned: dt.datetime | None = None
        self.suspended: dt.datetime | None = None

    def run(self, minutes: int, each: Any = None) -> Timeline:
        name = self.obj["metadata"]["name"]
        for _ in range(minutes):
            if each is not None:
                each(self.w.now)
            self.w.passes(1)
            at = self.w.now - MIN  # the pass that just ran
            if self.warned is None and any(e["name"] == name and e["reason"] == "IdleWarning"
                                           for e in self.w.kube.events):
                self.warned = at
            if self.suspended is None and self.w.suspended(self.obj):
                self.suspended = at
                break
        return self

    def warned_in_time(self) -> bool:
        return self.warned is not None and self.suspended is not None and self.suspended >= self.warned + NOTICE


def _forged_warning(now: dt.datetime) -> str:
    """What the mirror would say had the operator warned an hour ago under this very policy."""
    return json.dumps({"v": 1, "phase": "Warned", "episode": 1, "idleSince": _t(now - 2 * 60 * MIN),
                       "idleCoveredTo": _t(now), "warn": {"intended": _t(now - 60 * MIN), "done": _t(now - 60 * MIN)},
                       "warnSuspendAt": _t(now - 45 * MIN), "warnPolicy": f"{NS}/idle"})


def test_a_forged_earlier_warning_does_not_lead_to_a_suspension_without_a_real_notice():
    w = _world()
    train = w.run(job("train"))
    w.passes(2)  # idle, not warned yet
    w.annotate(train, **{IDLE_STATE_ANNOTATION: _forged_warning(w.now)})
    t = Timeline(w, train).run(90)
    assert t.suspended is not None and t.warned is not None
    assert t.warned_in_time(), (t.warned, t.suspended)  # the operator's own warning, then the full notice


def test_a_forged_future_seen_time_does_not_extend_a_snooze():
    w = _world()
    train = w.run(job("train"))
    w.annotate(train, snooze_until=FAR)
    w.passes(10)  # first seen at T0: cut to T0 + 1h
    mirror = json.loads(w.state(train) or "{}")
    assert mirror["snooze"]["seen"] == _t(T0)
    mirror["snooze"]["seen"] = "2098-12-31T23:00:00Z"
    w.annotate(train, **{IDLE_STATE_ANNOTATION: json.dumps(mirror)})
    t = Timeline(w, train).run(180)
    assert t.suspended is not None and t.suspended <= T0 + MAX_SNOOZE + 30 * MIN, t.suspended
    assert t.warned is not None and t.warned >= T0 + MAX_SNOOZE and t.warned_in_time()


def test_deleting_the_state_annotation_every_pass_does_not_reset_the_snooze_bound():
    w = _world()
    train = w.run(job("train"))
    w.annotate(train, snooze_until=FAR)

    def wipe(now: dt.datetime) -> None:
        w.annotate(train, **{IDLE_STATE_ANNOTATION: None})

    t = Timeline(w, train).run(180, each=wipe)
    assert t.suspended is not None and t.suspended <= T0 + MAX_SNOOZE + 30 * MIN, t.suspended
    assert t.warned_in_time()


def test_removing_and_re_adding_the_same_snooze_does_not_start_its_bound_again():
    w = _world()
    train = w.run(job("train"))
    w.annotate(train, snooze_until=FAR)

    def flicker(now: dt.datetime) -> None:  # off for one pass every 20 minutes, then the same value again
        minute = int((now - T0) / MIN)
        w.annotate(train, snooze_until=None if minute % 20 == 19 else FAR)

    t = Timeline(w, train).run(240, each=flicker)
    assert t.suspended is not None and t.suspended <= T0 + MAX_SNOOZE + 30 * MIN, t.suspended
    assert t.warned_in_time()


def test_a_recreated_workload_carrying_the_old_mirror_gets_its_own_warning():
    w = _world()
    train = w.run(job("train"))
    t = Timeline(w, train).run(12)
    assert t.warned is not None and t.suspended is None
    copied = dict(w.current(train)["metadata"].get("annotations") or {})  # kubectl get -o yaml | edit | apply
    del w.kube.objects[("batch/v1", "Job", NS, "train")]
    w.stop_pods(train)
    again = job("train", uid="uid-Job-train-2", annotations=copied)
    w.kube.add(again)
    pod = gpu_pod(again)
    pod["metadata"]["uid"] = "pod-train-2"
    w.kube.add(pod)
    w.registry.pod_event("ADDED", pod)
    w.kube.events.clear()
    t = Timeline(w, again).run(90)
    assert t.suspended is not None and t.warned_in_time(), (t.warned, t.suspended)


def test_a_store_lookalike_in_the_users_namespace_is_ignored():
    w = _world()
    train = w.run(job("train"))
    w.passes(2)
    real = w.shards()[0]
    fake = json.loads(json.dumps(real))
    fake["metadata"] = {"name": real["metadata"]["name"], "namespace": NS, "labels": real["metadata"]["labels"]}
    key = next(iter(fake["data"]))
    entry = json.loads(fake["data"][key])
    entry["state"] = json.loads(_forged_warning(w.now))
    fake["data"][key] = json.dumps(entry)
    w.kube.add(fake)
    w.restart()  # a fresh read of the store, too
    t = Timeline(w, train).run(90)
    assert t.suspended is not None and t.warned_in_time()


def test_a_huge_opt_out_value_does_not_grow_the_store():
    w = _world()
    train = w.run(job("train"))
    w.annotate(train, snooze_until=FAR + " " + "x" * 200_000, exempt_until="y" * 100_000)
    w.passes(30)
    for cm in w.shards():
        assert all(len(v) < 2048 for v in cm["data"].values()), max(len(v) for v in cm["data"].values())
    assert w.suspended(train)  # an unreadable snooze or exemption is ignored (with a note), not obeyed


def test_a_forged_annotation_during_the_upgrade_window_claiming_a_later_warning_is_not_adopted():
    w = World(policy(["Event"]))  # default: the previous release's annotations are adopted for 15 minutes
    train = w.run(job("train"))
    w.passes(2)  # the store exists since T0; the workload is idle, not warned
    w.annotate(train, **{IDLE_STATE_ANNOTATION: None})
    w.kube.objects.pop(next(k for k, cm in w.kube.objects.items() if cm in w.shards()))  # no entry either
    w.restart()
    # A warning "sent" after the store was created cannot be the previous release's.
    forged = json.loads(_forged_warning(w.now))
    forged["warn"] = {"intended": _t(w.now - MIN), "done": _t(w.now - MIN)}
    forged["warnSuspendAt"] = _t(w.now - MIN)
    w.annotate(train, **{IDLE_STATE_ANNOTATION: json.dumps(forged)})
    t = Timeline(w, train).run(90)
    assert t.suspended is not None and t.warned_in_time(), (t.warned, t.suspended)
