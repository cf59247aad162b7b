"""Controller-level tests of the idle notice protocol: the real IdleController over an in-memory cluster."""

from __future__ import annotations

import datetime as dt

import pytest
from idle_world import ApiError, FakeSlack, Killed, World, gpu_pod, job, policy, statefulset

from gpu_steward.idle.delivery import NOTICES_FAILED
from gpu_steward.idle.metrics import WORKLOAD_FAILURES
from gpu_steward.workloads.model import RESUME_ANNOTATION

LABEL = "gpusteward.dev/suspended"


def _warnings(world: World, name: str) -> list[dict]:
    return [e for e in world.kube.events if e["name"] == name and e["reason"] == "IdleWarning"]


def test_a_smoke_run_warns_then_suspends_after_the_notice():
    w = World(policy(["Event"]))
    nb = w.run(job("train"))
    w.passes(60, until=lambda: w.suspended(nb))
    assert w.suspended(nb)
    warned = _warnings(w, "train")
    assert len(warned) == 1 and "in-memory state" in warned[0]["message"]
    assert w.current(nb)["metadata"]["labels"][LABEL] == "true"


# ---- 1. a warning counts only when it reached the owner ---------------------------------------------


def test_slack_named_but_not_configured_makes_the_policy_degraded_and_it_never_suspends():
    w = World(policy(["Slack", "Event"]), slack=None)
    nb = w.run(job("train"))
    w.passes(120)
    assert not w.suspended(nb)
    degraded = w.condition("Degraded")
    assert degraded["status"] == "True" and "Slack" in degraded["message"]
    warned = _warnings(w, "train")  # the Event still tells the owner, without a suspension time
    assert len(warned) == 1 and "no action will be taken" in warned[0]["message"]


def test_an_event_that_cannot_be_created_is_no_notice_and_is_retried():
    w = World(policy(["Event"]))
    nb = w.run(job("train"))
    w.kube.event_ok = False
    before = NOTICES_FAILED.labels("Event")._value.get()
    w.passes(90)
    assert not w.suspended(nb)
    failed = NOTICES_FAILED.labels("Event")._value.get() - before
    assert 2 <= failed < 30  # retried on later passes, with backoff (not every pass)
    w.kube.event_ok = True
    delivered_at = None
    for _ in range(60):
        w.passes(1)
        if delivered_at is None and _warnings(w, "train"):
            delivered_at = w.now
        if w.suspended(nb):
            break
    assert delivered_at is not None and w.suspended(nb)
    assert w.now - delivered_at >= dt.timedelta(minutes=15)


def test_a_failed_slack_send_is_no_notice():
    slack = FakeSlack(configured=True, ok=False)
    w = World(policy(["Slack"]), slack=slack)
    nb = w.run(job("train"))
    w.passes(90)
    assert not w.suspended(nb)
    assert w.condition("Degraded")["status"] == "False"
    slack.ok = True
    w.passes(40, until=lambda: w.suspended(nb))
    w.passes(1)
    assert w.suspended(nb) and len(slack.sent) == 2  # the warning, then the suspension notice


# ---- 3. dry-run writes nothing to workloads ------------------------------------------------------------


def test_dry_run_makes_zero_writes_to_workloads():
    w = World(policy(["Event"]), dry_run=True)
    nb = w.run(job("train"))
    w.kube.obj("batch/v1", "Job", "train")["metadata"]["annotations"] = {RESUME_ANNOTATION: "true"}
    w.passes(5)
    w.kube.obj("batch/v1", "Job", "train")["metadata"]["annotations"] = {}
    w.passes(60)
    assert w.kube.workload_patches() == []
    assert w.state(nb) is None and not w.suspended(nb)
    assert w.status()["wouldSuspend"] == 1 and w.status()["mode"] == "DryRun"


# ---- 4. one failing workload never aborts the pass ---------------------------------------------------


def test_one_workload_failing_does_not_stop_the_others():
    w = World(policy(["Event"]))
    bad, good = w.run(job("a-bad")), w.run(job("b-good"))
    w.kube.fail_patch = lambda kind, name, body: ApiError(409) if name == "a-bad" else None
    before = WORKLOAD_FAILURES.labels("ml", "idle")._value.get()
    w.passes(60, until=lambda: w.suspended(good))
    assert w.suspended(good) and not w.suspended(bad)
    assert w.status()["failed"] == 1
    assert WORKLOAD_FAILURES.labels("ml", "idle")._value.get() > before


# ---- 5. crash windows -----------------------------------------------------------------------------------


def test_a_kill_right_after_the_suspend_patch_is_recovered_by_the_next_pass():
    w = World(policy(["Event"]))
    nb = w.run(job("train"))
    w.kube.kill_after_patch = lambda kind, name, body: (body.get("spec") or {}).get("suspend") is True
    with pytest.raises(Killed):
        w.passes(60)
    assert w.suspended(nb)
    # The label was written with the intent, before the adapter's patch.
    assert w.current(nb)["metadata"]["labels"][LABEL] == "true"
    w.kube.kill_after_patch = None
    w.stop_pods(nb)  # suspended: its pods are gone, only the label finds it
    w.restart()
    w.now += dt.timedelta(minutes=1)
    w.passes(2)
    assert [e for e in w.kube.events if e["reason"] == "IdleSuspended"]
    assert '"phase":"Suspended"' in (w.state(nb) or "")


def test_a_workload_suspended_by_us_without_the_label_is_repaired():
    w = World(policy(["Event"]))
    lost = w.run(job("lost"))
    w.passes(60, until=lambda: w.suspended(lost))
    w.stop_pods(lost)
    w.kube.obj("batch/v1", "Job", "lost")["metadata"]["labels"] = {}  # e.g. written by an older version
    w.run(job("other"))  # Jobs are listed anyway for this running one
    w.passes(2)
    assert w.current(lost)["metadata"]["labels"][LABEL] == "true"


# ---- 7. suspension never deletes persistent data -----------------------------------------------------


def test_a_statefulset_that_deletes_its_volumes_when_scaled_is_notify_only():
    w = World(policy(["Event"]))
    sts = w.run(statefulset("db", when_scaled="Delete"))
    w.passes(90)
    assert not w.suspended(sts)
    warned = _warnings(w, "db")
    assert len(warned) == 1 and "whenScaled: Delete" in warned[0]["message"]
    assert w.status()["protected"] == 1
    assert "db" in w.condition("DataProtected")["message"]


def test_passes_over_unknown_utilization_write_nothing_and_send_no_event():
    """No agent answers (every workload "unknown", as in bench/scale.py): after the first pass (the policy's
    status), a pass writes nothing and records no Event, however many pass."""
    from gpu_steward.policy.usage import Usage

    class NoData:
        async def fetch(self, pods, now, **_):  # type: ignore[no-untyped-def]
            return {p.uid: Usage.unknown("no agent on the node") for p in pods}

    w = World(policy(["Event"]))
    w.source = NoData()  # type: ignore[assignment]
    w.restart()
    for name in ("a", "b", "c"):
        w.run(job(name))
    w.passes(1)
    patches = len(w.kube.patches)
    w.passes(60)
    assert w.kube.events == [] and len(w.kube.patches) == patches
    assert w.status()["watched"] == 3


def test_a_change_to_an_owner_in_the_chain_is_seen_after_the_first_pass():
    """Owner chains are resolved once per pod, but the owners' objects are read again each pass: a Notebook's
    StatefulSet switched to deleting its volumes after the first pass makes the Notebook notify-only."""
    w = World(policy(["Event"]))
    nb = w.kube.add({"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "metadata": {"name": "nb"}, "spec": {}})
    sts = statefulset("nb")
    sts["metadata"]["ownerReferences"] = [{"apiVersion": "kubeflow.org/v1", "kind": "Notebook", "name": "nb",
                                           "uid": nb["metadata"]["uid"], "controller": True}]
    w.run(sts)
    w.passes(1)
    w.kube.obj("apps/v1", "StatefulSet", "nb")["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = "Delete"
    w.passes(90)
    assert "kubeflow-resource-stopped" not in (w.current(nb)["metadata"].get("annotations") or {})
    assert any("whenScaled: Delete" in e["message"] for e in _warnings(w, "nb"))


def test_a_kill_after_a_delivered_warning_does_not_send_it_again():
    """The confirmation of a delivered notice is stored before anything else is done: a kill later in the
    same pass (here: while the pass goes on to the next workload) leaves a stored, confirmed warning, and
    the next leader does not warn the owner a second time (docs/faults.md: repeated warnings)."""
    slack = FakeSlack()
    w = World(policy(["Slack"]), slack)
    nb = w.run(job("train"))
    w.run(job("other"))

    def kill_once_warned(*args, **kwargs):
        if slack.sent:  # the warning reached the owner; the process dies before the pass ends
            raise Killed()
        return real_forget(*args, **kwargs)

    real_forget = w.controller._forget
    w.controller._forget = kill_once_warned
    with pytest.raises(Killed):
        w.passes(30)
    sent = len(slack.sent)
    assert sent >= 1
    w.restart()
    w.now += dt.timedelta(minutes=1)
    w.passes(3)
    assert len(slack.sent) == sent, "a delivered warning was sent again after the kill"
    entry = w.entry(nb)
    assert entry is not None and entry.state is not None and entry.state.warn.done_at is not None


def test_a_kill_between_the_send_and_its_record_resends_once_and_counts_it():
    """The one window where a repeat is allowed: Slack took the warning, the process died before the
    record. The next process sends it once more and counts it as an unknown outcome."""
    from gpu_steward.idle.metrics import NOTICE_RESENDS

    slack = FakeSlack()
    w = World(policy(["Slack"]), slack)
    nb = w.run(job("train"))
    w.kube.fail_patch = lambda kind, name, body: Killed() if kind == "ConfigMap" and slack.sent else None
    with pytest.raises(Killed):
        w.passes(30)
    assert len(slack.sent) == 1
    w.kube.fail_patch = None
    before = NOTICE_RESENDS.labels("unknown")._value.get()
    w.restart()
    w.passes(3)
    assert len(slack.sent) == 2
    assert NOTICE_RESENDS.labels("unknown")._value.get() == before + 1
    assert w.entry(nb).state.warn.done_at is not None


def test_a_pod_whose_owner_appears_later_is_resolved_again_and_suspended_at_its_owner():
    # e.g. a TrainJob created before the operator's discovery saw the Trainer's CRD: at first the owner is
    # "not found" and the pod alone is warned about; once the owner is readable the workload is the owner
    w = World(policy(["Event"]))
    train = job("late")
    w.kube.add(train)
    pod = gpu_pod(train)
    hidden = w.kube.objects.pop(("batch/v1", "Job", "ml", "late"))
    w.kube.add(pod)
    w.registry.pod_event("ADDED", pod)
    w.passes(2)
    w.kube.objects[("batch/v1", "Job", "ml", "late")] = hidden
    w.passes(60, until=lambda: w.suspended(train))
    assert w.suspended(train)
