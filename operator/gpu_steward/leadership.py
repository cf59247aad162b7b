"""Leader election, the edge: read and write the one ``coordination.k8s.io/v1`` Lease through ``kube``.

The decisions are ``gpu_steward.policy.leadership``'s (pure, tested with fixed times); this module only
turns a Lease object into a record and back, keeps this replica's observation, and remembers when its
last successful write started (a leader acts only until ``renew_deadline`` after that). Writes are
conditional on the ``resourceVersion`` read, so two replicas racing for the Lease cannot both win.

The Lease is our coordination object, not a workload: it is written also under the global dry-run
(without it, a dry-run installation with two replicas would have two actors). The same holds for the
``gpusteward.dev/leader`` label on the operator's own pod.

``handlers/run.py`` drives it: a round every ``retry_period``, a watchdog that stops the acting part of
the operator the moment ``leading()`` turns false, and ``release()`` on a clean shutdown.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import Gauge

from gpu_steward.kube import JSON, Kube
from gpu_steward.policy.leadership import (
    Decision,
    LeaseRecord,
    Observation,
    Timing,
    decide,
    observe,
    released,
    still_leading,
)

log = structlog.get_logger(__name__)

LEASE_API = "coordination.k8s.io/v1"
LEADER_LABEL = "gpusteward.dev/leader"
LEADER = Gauge("gpusteward_leader", "1 on the replica that holds the leader Lease and acts, else 0")

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_identity(pod_name: str | None) -> str:
    """Unique per process: a container restarted in the same pod must not inherit the old lease."""
    return f"{pod_name or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _micro(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: JSON | None) -> LeaseRecord | None:
    if lease is None:
        return None
    spec = lease.get("spec") or {}
    return LeaseRecord(holder=str(spec.get("holderIdentity") or ""),
                       duration_seconds=float(spec.get("leaseDurationSeconds") or 0),
                       acquire_time=_time(spec.get("acquireTime")), renew_time=_time(spec.get("renewTime")),
                       transitions=int(spec.get("leaseTransitions") or 0))


def lease_body(namespace: str, name: str, record: LeaseRecord, resource_version: str | None = None) -> JSON:
    meta: JSON = {"name": name, "namespace": namespace}
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": meta, "spec": {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": max(1, int(-(-record.duration_seconds // 1))),  # int32, rounded up
        "acquireTime": _micro(record.acquire_time),
        "renewTime": _micro(record.renew_time),
        "leaseTransitions": record.transitions,
    }}


class LeaseElector:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, timing: Timing,
                 clock: Clock = utcnow) -> None:
        self.kube, self.namespace, self.name, self.identity, self.timing = kube, namespace, name, identity, timing
        self.clock = clock
        self._observed: Observation | None = None
        self._last_write_started: dt.datetime | None = None
        self._record: LeaseRecord | None = None
        self._resource_version: str | None = None
        self._failing = False
        self._lock = threading.Lock()  # rounds and release() never overlap

    def leading(self) -> bool:
        """Whether this replica may act now (its last successful write started < renew_deadline ago)."""
        return still_leading(self._last_write_started, self.clock(), self.timing)

    def round(self) -> bool:
        """One try: read the Lease, decide, write. Any API error only skips the write; leadership then
        lapses by itself at the renew deadline. Returns ``leading()``."""
        with self._lock:
            started = self.clock()
            try:
                decision = self._round(started)
            except Exception as exc:  # the apiserver unreachable, a 409 from a racing replica, ...
                self._resource_version = None  # read the Lease again next round
                if not self._failing:
                    log.warning("leader election round failed", lease=self.name, error=str(exc)[:300])
                self._failing = True
                return self.leading()
            if self._failing:
                log.info("leader election round succeeded again", lease=self.name)
            self._failing = False
            if decision.verb != "wait":
                self._last_write_started = started
            return self.leading()

    def _round(self, started: dt.datetime) -> Decision:
        if self._resource_version and self._record is not None and self._record.holder == self.identity \
                and self.leading():
            # Renewing a Lease we hold: it is as we last wrote it, unless someone else wrote it since, and then
            # the renewal (conditional on our write's resourceVersion) fails with a conflict and the next
            # round reads it. No GET per renewal: half the election's requests.
            lease: JSON | None = lease_body(self.namespace, self.name, self._record, self._resource_version)
        else:
            lease = self.kube.get(LEASE_API, "Lease", self.name, self.namespace)
        current = record_of(lease)
        self._observed = observe(self._observed, current, started)
        if current is not None and current.holder != self.identity:
            self._last_write_started = None  # someone else holds it: we are not leading, whatever we thought
        decision = decide(current, self._observed, self.identity, started, self.timing)
        if decision.record is None:
            return decision
        rv = ((lease or {}).get("metadata") or {}).get("resourceVersion")
        body = lease_body(self.namespace, self.name, decision.record, rv)
        out = (self.kube.create(body, dry_run=False) if decision.verb == "create"
               else self.kube.replace(body, dry_run=False))
        self._record = decision.record
        self._resource_version = ((out or {}).get("metadata") or {}).get("resourceVersion")
        if decision.verb in ("create", "acquire"):
            log.info("leader lease acquired", lease=self.name, identity=self.identity, reason=decision.reason,
                     transitions=decision.record.transitions)
        return decision

    def release(self) -> None:
        """On a clean shutdown: hand the Lease back so a standby takes over at once. Best effort."""
        with self._lock:
            if not self.leading() or self._record is None or self._resource_version is None:
                return  # (no version: the last round failed, maybe on a foreign write; it expires by itself)
            self._last_write_started = None
            try:
                self.kube.replace(lease_body(self.namespace, self.name, released(self._record),
                                             self._resource_version), dry_run=False)
                log.info("leader lease released", lease=self.name, identity=self.identity)
            except Exception as exc:
                log.warning("leader lease not released; it expires by itself", lease=self.name,
                            error=str(exc)[:300])


def mark_pod(kube: Kube, namespace: str | None, name: str | None, leader: bool) -> None:
    """Label our own pod ``gpusteward.dev/leader=true|false`` (the Slack Service selects the leader).
    Outside a pod (local runs) there is nothing to label. Best effort: a failure is logged."""
    LEADER.set(1 if leader else 0)
    if not namespace or not name:
        return
    try:
        kube.patch("v1", "Pod", name, namespace, {"metadata": {"labels": {LEADER_LABEL: str(leader).lower()}}},
                   dry_run=False)
    except Exception as exc:
        log.warning("leader label not written", pod=name, leader=leader, error=str(exc)[:300])
