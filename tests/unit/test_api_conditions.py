"""set_condition: keyed by type, lastTransitionTime moves only when the status does, input untouched."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from gpu_steward.api.conditions import find_condition, is_true, remove_condition, set_condition

T0 = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_adds_a_new_type_with_now_as_transition_time() -> None:
    result = set_condition(None, "Ready", True, "Reconciled", "all good", 3, T0)
    assert result == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciled",
            "message": "all good",
            "lastTransitionTime": "2026-11-26T21:00:00Z",
            "observedGeneration": 3,
        }
    ]


def test_same_status_keeps_transition_time_but_updates_the_rest() -> None:
    first = set_condition([], "Ready", "True", "Reconciled", "a", 1, T0)
    second = set_condition(first, "Ready", "True", "StillFine", "b", 2, T1)
    assert second[0]["lastTransitionTime"] == "2026-11-26T21:00:00Z"
    assert (second[0]["reason"], second[0]["message"], second[0]["observedGeneration"]) == ("StillFine", "b", 2)


def test_status_change_moves_transition_time() -> None:
    first = set_condition([], "Ready", "True", "Reconciled", "", 1, T0)
    second = set_condition(first, "Ready", False, "Invalid", "spec.schedule.timeZone: unknown", 2, T1)
    assert second[0]["status"] == "False"
    assert second[0]["lastTransitionTime"] == "2026-11-26T21:05:00Z"


def test_keyed_by_type_order_kept_input_untouched() -> None:
    start = set_condition([], "Ready", True, "Ok", "", 1, T0)
    start = set_condition(start, "Invalid", False, "Valid", "", 1, T0)
    frozen = copy.deepcopy(start)
    result = set_condition(start, "Ready", False, "Broken", "x", 2, T1)
    assert start == frozen
    assert [c["type"] for c in result] == ["Ready", "Invalid"]
    assert len(set_condition([*result, dict(result[0])], "Ready", False, "Broken", "x", 2, T1)) == 2
    assert is_true(result, "Ready") is False and find_condition(result, "Invalid") == start[1]
    assert remove_condition(result, "Ready") == [start[1]]


def test_rejects_bad_status_and_naive_time() -> None:
    with pytest.raises(ValueError):
        set_condition([], "Ready", "Maybe", "X", "", None, T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        set_condition([], "Ready", True, "X", "", None, datetime(2026, 1, 1))
