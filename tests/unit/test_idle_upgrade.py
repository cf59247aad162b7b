"""Upgrading from the previous release keeps its promises: what it wrote on workloads is read as it meant.

The annotation texts below are exactly what the previous release (git commit 4bdc1a1) wrote: they
were produced by running that commit's own engine and adapters (``git worktree add /tmp/gs-prev 4bdc1a1``;
``PYTHONPATH=/tmp/gs-prev/operator``) on the ``idle_helpers`` rules (idle 30 min, notice 15 min) from T0.
That release recorded neither the policy that gave a warning nor the suspension time it stated. The
cluster test ``tests/integration/test_upgrade_cluster.py`` runs that release itself.
"""

from __future__ import annotations

from datetime import timedelta

from idle_helpers import MIN, T0, facts, idle, rules

from gpu_steward.policy.idle import ActionKind, Phase, confirm, decide, state_from_annotation
from gpu_steward.workloads import adapters

# Warned at 09:29 (delivered), under a Suspend policy with notice.before 15 min: due 09:44.
OLD_WARNED = ('{"episode":1,"idleCoveredTo":"2026-03-02T09:29:00Z","idleSince":"2026-03-02T08:59:00Z",'
              '"phase":"Warned","v":1,"warn":{"done":"2026-03-02T09:29:00Z","intended":"2026-03-02T09:29:00Z"}}')
# The warning intended at 09:29 but never confirmed delivered (the old operator stopped in between).
OLD_WARN_PENDING = ('{"episode":1,"idleCoveredTo":"2026-03-02T09:29:00Z","idleSince":"2026-03-02T08:59:00Z",'
                    '"phase":"Warned","v":1,"warn":{"intended":"2026-03-02T09:29:00Z"}}')
# Suspended at 09:44, its suspended notice delivered.
OLD_SUSPENDED = ('{"episode":1,"idleCoveredTo":"2026-03-02T09:44:00Z","idleSince":"2026-03-02T08:59:00Z",'
                 '"phase":"Suspended","suspend":{"done":"2026-03-02T09:44:00Z","intended":"2026-03-02T09:44:00Z"},'
                 '"suspendedGpus":4,"suspendedNotice":{"done":"2026-03-02T09:44:00Z","intended":"2026-03-02T09:44:00Z"},'
                 '"v":1,"warn":{"done":"2026-03-02T09:29:00Z","intended":"2026-03-02T09:29:00Z"}}')
# The old release wrote dry-run states on workloads too (this one has moved to memory).
OLD_DRY = ('{"episode":1,"idleCoveredTo":"2026-03-02T09:44:00Z","idleSince":"2026-03-02T08:59:00Z",'
           '"phase":"WouldSuspend","v":1,"warn":{"done":"2026-03-02T09:29:00Z","dryRun":true,'
           '"intended":"2026-03-02T09:29:00Z"},"wouldSuspendAt":"2026-03-02T09:44:00Z","wouldSuspendGpus":4}')
# Adapter records (gpusteward.dev/suspended-state) of a StatefulSet at 3 replicas and of a Job.
OLD_STS_RECORD = ('{"apiVersion":"apps/v1","kind":"StatefulSet","path":["spec","replicas"],"present":true,'
                  '"previous":3,"suspendedAt":"2026-03-02T09:00:00Z","version":1}')
OLD_JOB_RECORD = ('{"apiVersion":"batch/v1","kind":"Job","path":["spec","suspend"],"present":true,'
                  '"previous":false,"suspendedAt":"2026-03-02T09:00:00Z","version":1}')

WARNED_AT = T0 + 29 * MIN
POLICY = rules(policy="ml/idle")


def _load(text):
    state, problem = state_from_annotation(text)
    assert problem is None
    return state


def _run(state, r, start, minutes):
    """Idle readings each minute; deliver every notice. Returns (kinds of actions per minute, state)."""
    seen = []
    for i in range(minutes + 1):
        now = start + i * MIN
        d = decide(state, idle(now), facts(), r, now)
        state = d.state
        for a in d.actions:
            seen.append((now, a.kind))
            state = confirm(state, a, now)
        if state.phase is Phase.SUSPENDED:
            break
    return seen, state


def test_an_old_warning_is_not_repeated_and_suspends_at_its_time_plus_the_notice():
    seen, state = _run(_load(OLD_WARNED), POLICY, WARNED_AT + MIN, 30)
    assert [k for _, k in seen if k is ActionKind.WARN] == []  # one notice per stage
    assert (WARNED_AT + POLICY.notice_before, ActionKind.SUSPEND) in seen
    assert min(t for t, k in seen if k is ActionKind.SUSPEND) == WARNED_AT + timedelta(minutes=15)
    assert state.warn_policy == "ml/idle" and state.warn_suspend_at == WARNED_AT + timedelta(minutes=15)


def test_an_old_warning_counts_from_its_delivery_with_a_longer_notice():
    longer = rules(policy="ml/idle", notice_before=timedelta(minutes=40))
    seen, _ = _run(_load(OLD_WARNED), longer, WARNED_AT + MIN, 60)
    assert [k for _, k in seen if k is ActionKind.WARN] == []
    assert min(t for t, k in seen if k is ActionKind.SUSPEND) == WARNED_AT + timedelta(minutes=40)


def test_an_old_warning_never_confirmed_is_sent_once_more_and_then_counts():
    start = WARNED_AT + 2 * MIN
    seen, _ = _run(_load(OLD_WARN_PENDING), POLICY, start, 30)
    assert [t for t, k in seen if k is ActionKind.WARN] == [start]  # the repeat a crash allows, once
    assert min(t for t, k in seen if k is ActionKind.SUSPEND) == start + POLICY.notice_before


def test_an_old_warning_under_a_notify_only_policy_states_no_suspension():
    notify = rules(policy="ml/idle", action="NotifyOnly")
    seen, state = _run(_load(OLD_WARNED), notify, WARNED_AT + MIN, 30)
    assert seen == [] and state.warn_suspend_at is None
    # When the policy starts suspending, a warning with a time goes out first.
    switched = WARNED_AT + 31 * MIN  # the idle readings go on: same idle stretch
    seen, _ = _run(state, POLICY, switched, 30)
    assert seen[0] == (switched, ActionKind.WARN)
    assert min(t for t, k in seen if k is ActionKind.SUSPEND) == switched + POLICY.notice_before


def test_an_old_dry_run_warning_was_never_given():
    seen, _ = _run(_load(OLD_DRY), POLICY, T0 + 45 * MIN, 30)
    assert seen[0] == (T0 + 45 * MIN, ActionKind.WARN)
    assert min(t for t, k in seen if k is ActionKind.SUSPEND) == T0 + 60 * MIN


def test_an_old_suspension_resumes_on_request_with_one_resumed_notice_and_no_repeated_notice():
    state = _load(OLD_SUSPENDED)
    now = T0 + 2 * 60 * MIN
    d = decide(state, idle(now), facts(suspended=True), POLICY, now)
    assert d.actions == ()  # its suspended notice was delivered: not again
    d = decide(d.state, idle(now), facts(suspended=True, resume_requested=True), POLICY, now)
    assert [a.kind for a in d.actions] == [ActionKind.RESUME] and d.clear_resume_request
    state = confirm(d.state, d.actions[0], now)
    later = now + MIN
    d = decide(state, idle(later), facts(suspended=False), POLICY, later)
    assert [a.kind for a in d.actions] == [ActionKind.NOTIFY_RESUMED]
    state = confirm(d.state, d.actions[0], later)
    d = decide(state, idle(later + MIN), facts(suspended=False), POLICY, later + MIN)
    assert ActionKind.NOTIFY_RESUMED not in [a.kind for a in d.actions]


def test_old_adapter_records_restore_exactly():
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "serve", "annotations": {"gpusteward.dev/suspended-state": OLD_STS_RECORD}},
           "spec": {"replicas": 0}}
    assert adapters.is_suspended(sts)
    assert adapters.resume_patch(sts)["spec"] == {"replicas": 3}
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "train", "annotations": {"gpusteward.dev/suspended-state": OLD_JOB_RECORD}},
           "spec": {"suspend": True}}
    assert adapters.is_suspended(job)
    assert adapters.resume_patch(job)["spec"] == {"suspend": False}
