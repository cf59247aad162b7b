"""Controller-level tests of the blast-radius limits: the real IdleController over an in-memory cluster."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from idle_world import World, job, policy

from gpu_steward.idle.metrics import ACTIONS_PAUSED, BREAKER_OPEN, DEFERRED
from gpu_steward.policy.usage import Usage
from gpu_steward.settings import Settings
from gpu_steward.sources.base import PodRef

PLATFORM = "gpu-steward"
CONTROLS = "gpu-steward-controls"
RECORD = "gpu-steward-blast-radius"


class MixedSource:
    """Idle, except the pods listed as busy."""

    def __init__(self) -> None:
        self.busy: set[str] = set()

    async def fetch(self, pods: Sequence[PodRef], now: dt.datetime) -> dict[str, Usage]:
        return {p.uid: Usage.ok(90.0 if p.uid in self.busy else 0.0, 90.0 if p.uid in self.busy else 0.0, 12,
                                now, 60.0) for p in pods}

    async def close(self) -> None:
        return None


def world(n: int, **settings: Any) -> tuple[World, list[dict[str, Any]], MixedSource]:
    w = World(policy(["Event"]))
    w.settings = Settings(metrics_port=0, **settings)
    w.source = MixedSource()  # type: ignore[assignment]
    w.restart()
    jobs = [w.run(job(f"train-{i:02d}")) for i in range(n)]
    return w, jobs, w.source  # type: ignore[return-value]


def suspended(w: World, jobs: list[dict[str, Any]]) -> int:
    return sum(w.suspended(j) for j in jobs)


def controls(w: World, **data: str) -> None:
    w.kube.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONTROLS, "namespace": PLATFORM},
                "data": data})


def deferred(reason: str) -> float:
    return DEFERRED.labels(reason)._value.get()  # type: ignore[no-any-return]


def test_caps_per_pass_and_per_namespace_hour_hold_across_a_restart_and_refill_an_hour_later():
    w, jobs, _ = world(6, suspensions_per_pass=2, suspensions_per_namespace_per_hour=3, breaker_minimum=100)
    before = deferred("PerPassLimit")
    w.passes(40, until=lambda: suspended(w, jobs) > 0)
    assert suspended(w, jobs) == 2  # the first pass that could suspend: two of six
    assert w.status()["deferred"] == 4 and deferred("PerPassLimit") - before == 4
    w.now += dt.timedelta(minutes=1)
    w.passes(1)
    assert suspended(w, jobs) == 3  # the namespace's hourly cap
    assert w.status()["deferred"] == 3
    warned = [e for e in w.kube.events if e["reason"] == "IdleWarning"]
    assert len(warned) == 6  # every warning stands; none is repeated
    # A restart (a SIGKILL: nothing in memory survives) does not reset the hour: it is in the cluster.
    w.restart()
    w.passes(30)
    assert suspended(w, jobs) == 3
    record = w.kube.obj("v1", "ConfigMap", RECORD, PLATFORM)
    assert record["data"]["suspensions"].count('"ml"') == 3
    w.passes(40, until=lambda: suspended(w, jobs) > 3)
    assert suspended(w, jobs) == 5  # an hour after the first ones: two more (per pass)
    assert len([e for e in w.kube.events if e["reason"] == "IdleWarning"]) == 6


def test_breaker_ten_of_twelve_idle_at_once_suspends_none_and_degrades_the_policy():
    w, jobs, source = world(12)
    source.busy = {"pod-train-10", "pod-train-11"}
    w.passes(40)
    assert suspended(w, jobs) == 0
    degraded = w.condition("Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "CircuitBreakerOpen"
    assert "10 of 12" in degraded["message"] and "30%" in degraded["message"]
    assert w.status()["deferred"] == 10 and w.status()["warned"] == 10
    assert BREAKER_OPEN._value.get() == 1
    # Most of them are busy again: the pass is under the threshold, the breaker closes, the rest go.
    source.busy |= {f"pod-train-{i:02d}" for i in range(8)}
    w.passes(1)
    w.passes(30, until=lambda: suspended(w, jobs) == 2)
    assert suspended(w, jobs) == 2 and not w.suspended(jobs[0])
    assert w.condition("Degraded")["status"] == "False" and BREAKER_OPEN._value.get() == 0


def test_breaker_acknowledged_by_a_platform_engineer_lets_suspensions_go_within_the_caps():
    w, jobs, _ = world(12, suspensions_per_pass=4)
    w.passes(40)
    assert suspended(w, jobs) == 0 and w.condition("Degraded")["reason"] == "CircuitBreakerOpen"
    controls(w, breakerAcknowledgedAt=(w.now + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    w.passes(1)
    assert suspended(w, jobs) == 4  # the per-pass cap still holds
    w.passes(5)
    assert suspended(w, jobs) == 10  # the namespace's hourly cap
    assert BREAKER_OPEN._value.get() == 0  # acknowledged: nothing to alert on


def test_global_switch_setting_warns_and_reports_but_suspends_nothing():
    w, jobs, _ = world(1, actions_paused=True)
    w.passes(60)
    assert not w.suspended(jobs[0])
    assert [e["reason"] for e in w.kube.events].count("IdleWarning") == 1
    paused = w.condition("ActionsPaused")
    assert paused["status"] == "True" and "pauseActions" in paused["message"]
    assert w.status()["deferred"] == 1 and ACTIONS_PAUSED._value.get() == 1
    assert not any("suspend" in str(body.get("spec", {})) for _, _, body in w.kube.workload_patches())


def test_runtime_switch_in_the_operator_namespace_stops_and_restarts_suspensions_without_a_restart():
    w, jobs, _ = world(2)
    controls(w, paused="true", reason="GPU driver rollout")
    w.passes(60)
    assert suspended(w, jobs) == 0
    assert "GPU driver rollout" in w.condition("ActionsPaused")["message"]
    # The same ConfigMap in a user's namespace is not a switch.
    w.kube.objects.pop(("v1", "ConfigMap", PLATFORM, CONTROLS))
    w.kube.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONTROLS, "namespace": "ml"},
                "data": {"paused": "true"}})
    w.passes(1)
    assert suspended(w, jobs) == 2
    assert w.condition("ActionsPaused")["status"] == "False" and ACTIONS_PAUSED._value.get() == 0


def test_a_switch_that_cannot_be_read_pauses_actions():
    w, jobs, _ = world(1)
    real_get = w.kube.get

    def get(api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        if kind == "ConfigMap" and name == CONTROLS:
            raise RuntimeError("HTTP 403")
        return real_get(api_version, kind, name, namespace)

    w.kube.get = get  # type: ignore[method-assign]
    w.passes(60)
    assert not w.suspended(jobs[0]) and w.condition("ActionsPaused")["status"] == "True"
    w.kube.get = real_get  # type: ignore[method-assign]
    w.passes(1)
    assert w.suspended(jobs[0])
