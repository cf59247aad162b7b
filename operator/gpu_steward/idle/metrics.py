"""The operator's Prometheus metrics for idle policies (names the chart's dashboard reads)."""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

PASS_SECONDS = Histogram("gpusteward_idle_pass_seconds", "Duration of one idle evaluation pass",
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PASS_WRITES = Counter("gpusteward_idle_api_writes_total", "API writes made by idle evaluation passes")
ACTIONS = Counter("gpusteward_idle_actions_total", "Idle actions taken (would-* in dry-run)", ["action"])
WORKLOADS = Gauge("gpusteward_idle_workloads", "GPU workloads seen in the last pass")
POLICY_WATCHED = Gauge("gpusteward_policy_watched", "Workloads governed by a policy", ["namespace", "policy"])
IDLE_GPUS = Gauge("gpusteward_idle_gpus", "GPUs held by idle workloads", ["namespace", "policy"])
SUSPENDED = Gauge("gpusteward_policy_suspended", "Workloads suspended by a policy", ["namespace", "policy"])
# A gauge (the policy status' running figure, which may be recomputed), so no _total suffix.
RECLAIMED = Gauge("gpusteward_policy_reclaimed_gpu_hours", "GPU-hours given back by a policy's suspensions",
                  ["namespace", "policy"])
WOULD_SAVE = Gauge("gpusteward_policy_would_save_gpu_hours", "GPU-hours a dry-run policy would have saved",
                   ["namespace", "policy"])


def record_pass(result: Any) -> None:
    PASS_SECONDS.observe(result.seconds)
    PASS_WRITES.inc(result.writes)
    WORKLOADS.set(result.workloads)
    for action, n in result.actions.items():
        ACTIONS.labels(action).inc(n)


def record_policy(namespace: str, name: str, summary: Any) -> None:
    POLICY_WATCHED.labels(namespace, name).set(summary.watched)
    IDLE_GPUS.labels(namespace, name).set(summary.idle_gpus)
    SUSPENDED.labels(namespace, name).set(summary.suspended)
    RECLAIMED.labels(namespace, name).set(float(summary.reclaimed_gpu_hours))
    WOULD_SAVE.labels(namespace, name).set(float(summary.would_save_gpu_hours))


POLICY_GAUGES = (POLICY_WATCHED, IDLE_GPUS, SUSPENDED, RECLAIMED, WOULD_SAVE)


def prune_policies(keep: set[tuple[str, str]]) -> None:
    """Drop the series of policies that no longer exist (a deleted policy or namespace)."""
    for gauge in POLICY_GAUGES:
        for sample in list(gauge.collect()[0].samples):
            key = (sample.labels.get("namespace", ""), sample.labels.get("policy", ""))
            if key not in keep:
                with contextlib.suppress(KeyError):
                    gauge.remove(*key)


WORKLOAD_FAILURES = Counter("gpusteward_idle_workload_failures_total",
                            "Workloads whose idle evaluation failed (an API error); the pass went on with the others",
                            ["namespace", "policy"])


DEFERRED = Counter("gpusteward_idle_suspensions_deferred_total",
                   "Idle suspensions held back for a later pass by the blast-radius limits (caps, breaker, "
                   "switch)", ["reason"])
BREAKER_OPEN = Gauge("gpusteward_idle_breaker_open",
                     "1 while the blast-radius circuit breaker is open (a pass would suspend too many at once)")
BREAKER_WOULD_SUSPEND = Gauge("gpusteward_idle_breaker_would_suspend",
                              "Suspensions the last pass would have started (what the breaker compares)")
ACTIONS_PAUSED = Gauge("gpusteward_idle_actions_paused", "1 while the global switch stops every suspension")
SUSPENSIONS_LAST_HOUR = Gauge("gpusteward_idle_suspensions_last_hour",
                              "Idle suspensions started in the last hour (the hourly cap counts these)")


def record_blast(verdict: Any) -> None:
    for reason, n in verdict.by_reason.items():
        DEFERRED.labels(reason.value).inc(n)
    BREAKER_OPEN.set(1 if verdict.breaker.open and not verdict.breaker.acknowledged else 0)
    BREAKER_WOULD_SUSPEND.set(verdict.breaker.would_suspend)
    ACTIONS_PAUSED.set(1 if verdict.paused else 0)
    SUSPENSIONS_LAST_HOUR.set(verdict.suspended_last_hour)


# A warning intended in an earlier pass and sent again: "failed" when this process saw the earlier send
# fail (nothing reached the owner), "unknown" when no record of it is here (a crash or a failover between
# the send and its record): only those can reach the owner twice, and docs/faults.md counts them.
NOTICE_RESENDS = Counter("gpusteward_idle_notice_resends_total",
                         "Warnings sent again because an earlier attempt was not recorded as delivered",
                         ["outcome"])
