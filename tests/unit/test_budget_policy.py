"""GPUBudget decisions with fixed clocks: quota, thresholds once per period, onExceeded, roll-over, ledger."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from gpu_steward.policy import budget as b

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
MARCH = "2026-03-01T00:00:00Z"


def terms(on_exceeded="Notify", limit="1000", quota=8):
    return b.BudgetTerms(quota, b.SpendTerms(Decimal(limit), "USD", "Monthly", (50, 80, 100)), on_exceeded)


def obs(spend="0", burn="0", in_use=0, leases=0):
    return b.BudgetObservation(Decimal(spend), Decimal(burn), in_use, leases)


def test_quota_is_gpu_quota_plus_active_leases():
    d = b.decide(terms(), obs(in_use=3, leases=4), [], None, NOW)
    assert d.effective_quota == 12 and not d.blocked and not d.exceeded
    rq = b.desired_quota("team-a", "main", "uid-1", d.effective_quota)
    hard = rq["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "12" and set(hard.values()) == {"12"}
    assert rq["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert rq["metadata"]["name"] == "gpusteward-main"


def test_thresholds_announced_once_per_period_and_state_survives_restart():
    d1 = b.decide(terms(), obs(spend="850"), [], MARCH, NOW)
    assert d1.announce == [50, 80] and d1.announced == [50, 80]
    # A restarted operator reads status.announcedThresholds and announces nothing twice.
    d2 = b.decide(terms(), obs(spend="900"), d1.announced, MARCH, NOW + dt.timedelta(hours=1))
    assert d2.announce == [] and d2.announced == [50, 80]
    d3 = b.decide(terms(), obs(spend="1000"), d2.announced, MARCH, NOW + dt.timedelta(hours=2))
    assert d3.announce == [100] and d3.exceeded


def test_new_period_forgets_announcements_and_restores_quota():
    april = dt.datetime(2026, 4, 1, 0, 5, tzinfo=dt.UTC)
    blocked = b.decide(terms("BlockNew"), obs(spend="1200", in_use=2), [50, 80, 100], MARCH, NOW)
    assert blocked.blocked and blocked.effective_quota == 2
    # The ledger starts from zero in the new period, so spend is small again.
    d = b.decide(terms("BlockNew"), obs(spend="3", in_use=2), [50, 80, 100], MARCH, april)
    assert d.rolled_over and d.announced == [] and d.effective_quota == 8 and not d.blocked
    assert d.period_start == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)


def test_on_exceeded_modes():
    notify = b.decide(terms("Notify"), obs(spend="1000", in_use=5), [], MARCH, NOW)
    assert notify.exceeded and not notify.blocked and notify.effective_quota == 8 and not notify.suspend_idle
    block = b.decide(terms("BlockNew"), obs(spend="1000", in_use=5, leases=2), [], MARCH, NOW)
    assert block.blocked and block.effective_quota == 5 and not block.suspend_idle
    sif = b.decide(terms("SuspendIdleFirst"), obs(spend="1001", in_use=5), [], MARCH, NOW)
    assert sif.suspend_idle and sif.blocked and sif.effective_quota == 5
    # Blocking never raises a quota above its normal value.
    over = b.decide(terms("BlockNew", quota=4), obs(spend="1001", in_use=6), [], MARCH, NOW)
    assert over.effective_quota == 4


def test_forecast_uses_burn_rate_to_period_end():
    d = b.decide(terms(), obs(spend="100", burn="2"), [], MARCH, NOW)
    hours_left = Decimal((dt.datetime(2026, 4, 1, tzinfo=dt.UTC) - NOW).total_seconds()) / 3600
    assert d.forecast == Decimal(100) + 2 * hours_left


def test_no_spend_section_means_no_thresholds_and_never_exceeded():
    d = b.decide(b.BudgetTerms(2), obs(spend="99999", in_use=2), [], None, NOW)
    assert d.announce == [] and not d.exceeded and d.effective_quota == 2


def test_ledger_settles_gone_pods_and_resets_each_period():
    led = b.roll_ledger(None, MARCH, {"a": Decimal(5), "b": Decimal(3)})
    assert led.spend == 8
    led = b.roll_ledger(led, MARCH, {"a": Decimal(7)})  # b was deleted: its 3 settle
    assert led.settled == 3 and led.spend == 10
    again = b.SpendLedger.from_json(led.to_json())
    assert again == led
    april = b.roll_ledger(led, "2026-04-01T00:00:00Z", {"a": Decimal(1)})
    assert april.spend == 1 and april.settled == 0
    assert b.SpendLedger.from_json("{not json") is None


def test_threshold_message_names_numbers():
    msg = b.threshold_message("team-a", "main", 80, Decimal("812.34567"), Decimal(1000), "USD", Decimal(1500),
                              dt.datetime(2026, 4, 1, tzinfo=dt.UTC))
    assert "80%" in msg and "812.3457" in msg and "1500 USD" in msg and "2026-04-01T00:00:00Z" in msg
