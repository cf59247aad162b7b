"""Leader election core (gpu_steward.policy.leadership) with fixed times: who takes the Lease, when,
and when a leader must stop acting."""

from __future__ import annotations

import datetime as dt

import pytest

from gpu_steward.policy import leadership as L

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
TIMING = L.Timing(lease_duration=15, renew_deadline=10, retry_period=2)


def held(holder: str, renewed: dt.datetime, transitions: int = 0) -> L.LeaseRecord:
    return L.LeaseRecord(holder, 15, T0, renewed, transitions)


def test_no_lease_is_created_with_us_as_holder():
    d = L.decide(None, None, "a", T0, TIMING)
    assert d.verb == "create"
    assert d.record == L.LeaseRecord("a", 15, T0, T0, 0)


def test_our_lease_is_renewed_keeping_acquire_time_and_transitions():
    rec = held("a", T0, transitions=3)
    d = L.decide(rec, L.observe(None, rec, T0), "a", T0 + 2 * S, TIMING)
    assert d.verb == "renew"
    assert d.record == L.LeaseRecord("a", 15, T0, T0 + 2 * S, 3)


def test_a_released_lease_is_taken_at_once():
    rec = L.released(held("a", T0, transitions=1))
    assert rec.holder == ""
    d = L.decide(rec, L.observe(None, rec, T0), "b", T0, TIMING)
    assert d.verb == "acquire" and d.record is not None
    assert (d.record.holder, d.record.transitions, d.record.acquire_time) == ("b", 2, T0)


def test_someone_elses_lease_is_taken_only_after_a_full_duration_unchanged_as_we_saw_it():
    rec = held("a", T0)
    obs = L.observe(None, rec, T0 + 1 * S)  # first seen a second after its renewal
    assert L.decide(rec, obs, "b", T0 + 15 * S, TIMING).verb == "wait"  # 14 s after we saw it
    obs = L.observe(obs, rec, T0 + 15 * S)
    assert obs is not None and obs.seen_at == T0 + 1 * S  # unchanged: the first sighting counts
    d = L.decide(rec, obs, "b", T0 + 16 * S, TIMING)
    assert d.verb == "acquire" and d.record == L.LeaseRecord("b", 15, T0 + 16 * S, T0 + 16 * S, 1)


def test_a_renewal_restarts_the_wait():
    rec = held("a", T0)
    obs = L.observe(None, rec, T0)
    renewed = held("a", T0 + 10 * S)
    obs = L.observe(obs, renewed, T0 + 10 * S)
    assert obs is not None and obs.seen_at == T0 + 10 * S
    assert L.decide(renewed, obs, "b", T0 + 20 * S, TIMING).verb == "wait"
    assert L.decide(renewed, obs, "b", T0 + 25 * S, TIMING).verb == "acquire"


def test_the_records_own_clock_is_not_trusted():
    # The holder's clock runs an hour behind ours: its renewTime looks ancient, yet it renews.
    rec = held("a", T0 - dt.timedelta(hours=1))
    obs = L.observe(None, rec, T0)
    assert L.decide(rec, obs, "b", T0 + 5 * S, TIMING).verb == "wait"


def test_a_decision_without_an_observation_of_this_record_waits():
    rec = held("a", T0)
    stale = L.observe(None, held("a", T0 - 60 * S), T0 - 60 * S)
    assert L.decide(rec, stale, "b", T0 + 60 * S, TIMING).verb == "wait"
    assert L.decide(rec, None, "b", T0 + 60 * S, TIMING).verb == "wait"


def test_leader_stops_acting_before_anyone_else_may_take_over():
    write_started = T0
    assert L.still_leading(write_started, T0 + 9.9 * S, TIMING)
    assert not L.still_leading(write_started, T0 + 10 * S, TIMING)
    assert not L.still_leading(None, T0, TIMING)
    # The earliest a standby can acquire: a full lease duration after it saw the write, which landed
    # after the write started. The old leader stopped 5 s before that.
    rec = held("a", T0)
    obs = L.observe(None, rec, T0)
    first_acquire = next(T0 + i * 0.5 * S for i in range(100)
                         if L.decide(rec, obs, "b", T0 + i * 0.5 * S, TIMING).verb == "acquire")
    last_acting = max(T0 + i * 0.5 * S for i in range(100) if L.still_leading(write_started, T0 + i * 0.5 * S,
                                                                                TIMING))
    assert last_acting < first_acquire - 4 * S


@pytest.mark.parametrize("durations", [(15, 15, 2), (15, 10, 10), (15, 10, 0), (10, 15, 2)])
def test_timing_must_leave_a_margin(durations):
    lease, renew, retry = durations
    with pytest.raises(ValueError):
        L.Timing(lease_duration=lease, renew_deadline=renew, retry_period=retry)
