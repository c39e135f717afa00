"""The rollout's drift gate: drift held against the challenger only when it is its own."""

from __future__ import annotations

from mlcanary.control.gates import drift_gate
from mlcanary.store.signals import Signal


def windows(variant: str, flags: list[bool]) -> list[Signal]:
    return [Signal("churn", variant, 1 if variant == "champion" else 2, "drift", 10.0 * k,
                   10.0 * k + 5, f"{variant}-{k}", 500, flag,
                   {"drifted_columns": ["tenure_months"] if flag else []})
            for k, flag in enumerate(flags)]


def test_no_challenger_window_is_no_data() -> None:
    assert drift_gate([], windows("champion", [True])).passed is None


def test_a_quiet_challenger_passes() -> None:
    assert drift_gate(windows("challenger", [False, False])).passed is True


def test_challenger_drift_fails_when_the_champion_traffic_is_quiet_and_waits_without_it(
) -> None:
    """With no champion window to hold it against, a flagged window is no verdict (a
    twin of the champion was rolled back on one false alarm): the gate lacks data, and the
    controller waits for the champion's windows instead of stepping."""
    alone = drift_gate(windows("challenger", [True, False]))
    quiet = drift_gate(windows("challenger", [True, False]), windows("champion", [False] * 4))
    assert alone.passed is None and "no window of the champion's yet" in alone.reason
    assert quiet.passed is False
    assert "tenure_months" in quiet.reason
    assert quiet.numbers == {"windows": 2, "flagged": 1, "champion_windows": 4,
                             "champion_flagged": 0}


def test_drift_the_champion_shows_as_often_is_the_data_moving_not_the_model() -> None:
    same = drift_gate(windows("challenger", [True, False]), windows("champion", [True, False]))
    worse = drift_gate(windows("challenger", [True, True]), windows("champion", [True, False]))
    assert same.passed is True and "the data moved" in same.reason
    assert worse.passed is False
