"""The election edge (gpu_steward.leadership.LeaseElector) against an in-memory Lease store with
resourceVersion conflicts and a fixed clock: one leader at a time, a leader that cannot renew stops
acting before a standby may take over, a released Lease is taken at once."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from gpu_steward.leadership import LeaseElector, record_of
from gpu_steward.policy.leadership import Timing

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
TIMING = Timing(lease_duration=15, renew_deadline=10, retry_period=2)


class Conflict(Exception):
    pass


class FakeKube:
    """get/create/replace of one object kind with the apiserver's optimistic concurrency."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("apiserver unreachable")

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self._check()
        obj = self.objects.get((namespace or "", name))
        return copy.deepcopy(obj)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
        return copy.deepcopy(body)

    def create(self, body: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        self._check()
        if (body["metadata"]["namespace"], body["metadata"]["name"]) in self.objects:
            raise Conflict("already exists")
        return self._store(body)

    def replace(self, body: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        self._check()
        have = self.objects[(body["metadata"]["namespace"], body["metadata"]["name"])]
        # as the API server: a PUT without a resourceVersion is unconditional, with one it must match
        if body["metadata"].get("resourceVersion") not in (None, have["metadata"]["resourceVersion"]):
            raise Conflict("the object has been modified")
        return self._store(body)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def world() -> tuple[FakeKube, Clock, LeaseElector, LeaseElector]:
    kube, clock = FakeKube(), Clock()
    a = LeaseElector(kube, "gs", "leader", "a", TIMING, clock=clock)  # type: ignore[arg-type]
    b = LeaseElector(kube, "gs", "leader", "b", TIMING, clock=clock)  # type: ignore[arg-type]
    return kube, clock, a, b


def holder(kube: FakeKube) -> str:
    rec = record_of(kube.objects[("gs", "leader")])
    assert rec is not None
    return rec.holder


def test_first_comer_leads_the_other_stands_by_while_it_renews(world):
    kube, clock, a, b = world
    assert a.round() and not b.round()
    for _ in range(20):
        clock.advance(2)
        assert a.round() and not b.round()
        assert a.leading() and not b.leading()
    assert holder(kube) == "a"
    spec = kube.objects[("gs", "leader")]["spec"]
    assert spec["leaseDurationSeconds"] == 15 and spec["leaseTransitions"] == 0
    assert spec["renewTime"].endswith("Z") and "." in spec["renewTime"]  # MicroTime


class Partitioned:
    """One replica's view of the apiserver: every call fails while ``cut``."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube, self.cut = kube, False

    def __getattr__(self, name: str) -> Any:
        if self.cut:
            raise ConnectionError("apiserver unreachable from this replica")
        return getattr(self.kube, name)


def test_a_leader_that_cannot_renew_stops_before_the_standby_may_take_over(world):
    kube, clock, _, b = world
    view = Partitioned(kube)
    a = LeaseElector(view, "gs", "leader", "a", TIMING, clock=clock)  # type: ignore[arg-type]
    assert a.round() and not b.round()  # both at T0
    view.cut = True
    a_stopped = b_leads = None
    for step in range(1, 30):
        clock.advance(1)
        a.round()
        if a_stopped is None and not a.leading():
            a_stopped = step
        if b_leads is None and b.round():
            b_leads = step
    assert a_stopped == 10  # the renew deadline, counted from the start of its last successful write
    assert b_leads == 15  # the lease duration, counted from when b saw that write
    assert holder(kube) == "b" and record_of(kube.objects[("gs", "leader")]).transitions == 1


def test_a_former_leader_that_comes_back_sees_the_new_holder_and_does_not_lead(world):
    kube, clock, a, b = world
    a.round()
    b.round()
    clock.advance(16)
    assert b.round()  # a did not renew for a full duration (as b saw it)
    assert not a.round() and not a.leading()
    assert holder(kube) == "b"


def test_racing_replicas_cannot_both_win(world):
    kube, clock, a, b = world
    c = LeaseElector(kube, "gs", "leader", "c", TIMING, clock=clock)  # type: ignore[arg-type]
    a.round()
    b.round()
    c.round()
    clock.advance(16)  # a is gone; b and c both see the Lease expired
    real_get = kube.get

    def get_then_b_wins(*args: Any, **kwargs: Any) -> Any:
        got = real_get(*args, **kwargs)  # c reads the expired record ...
        kube.get = real_get
        assert b.round()  # ... b takes the Lease meanwhile ...
        return got

    kube.get = get_then_b_wins
    assert not c.round()  # ... and c's write conflicts (stale resourceVersion)
    assert not c.leading() and holder(kube) == "b"


def test_release_hands_over_at_once(world):
    kube, clock, a, b = world
    a.round()
    b.round()
    clock.advance(1)
    a.release()
    assert not a.leading() and holder(kube) == ""
    clock.advance(0.1)
    assert b.round() and holder(kube) == "b"


def test_a_leader_renews_without_reading_and_learns_of_a_foreign_write_from_the_conflict(world):
    kube, clock, a, _ = world
    reads = []
    real_get = kube.get
    kube.get = lambda *args, **kw: reads.append(args) or real_get(*args, **kw)
    assert a.round()
    first = len(reads)
    for _ in range(10):
        clock.advance(2)
        assert a.round()
    assert len(reads) == first  # ten renewals, no GET
    # Someone else writes the Lease (a hand edit, a replica that saw it expire): the next renewal conflicts,
    # leadership is not extended by it, and the round after reads the Lease again and stands by.
    lease = kube.objects[("gs", "leader")]
    lease["spec"]["holderIdentity"] = "intruder"
    kube.version += 1
    lease["metadata"]["resourceVersion"] = str(kube.version)
    clock.advance(2)
    a.round()
    clock.advance(2)
    assert not a.round() and not a.leading()
    assert len(reads) > first and holder(kube) == "intruder"


def test_after_a_failed_renewal_release_does_not_overwrite_the_lease(world):
    kube, clock, a, _ = world
    assert a.round()
    lease = kube.objects[("gs", "leader")]  # someone else writes it; a's next renewal conflicts
    lease["spec"]["holderIdentity"] = "intruder"
    kube.version += 1
    lease["metadata"]["resourceVersion"] = str(kube.version)
    clock.advance(2)
    a.round()
    assert a.leading()  # within its renew deadline it still counts itself leader ...
    a.release()  # ... but a release now would write blind over the other's Lease: it must not
    assert holder(kube) == "intruder"
