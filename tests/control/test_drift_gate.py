"""The rollout's drift gate: drift held against the challenger only when it is its own."""

from __future__ import annotations

import numpy as np
import pytest

from mlcanary.control.gates import DRIFT_ALPHA, drift_gate
from mlcanary.store.signals import Signal
from tests.monitor.drift_data import fewest_allowed, most_allowed


def windows(variant: str, flags: list[bool]) -> list[Signal]:
    return [Signal("churn", variant, 1 if variant == "champion" else 2, "drift", 10.0 * k,
                   10.0 * k + 5, f"{variant}-{k}", 500, flag,
                   {"drifted_columns": ["tenure_months"] if flag else []})
            for k, flag in enumerate(flags)]


def test_no_challenger_window_is_no_data() -> None:
    assert drift_gate([], windows("champion", [True])).passed is None


def test_a_quiet_challenger_passes() -> None:
    assert drift_gate(windows("challenger", [False, False])).passed is True


def test_a_flag_without_the_champion_to_hold_it_against_is_no_verdict() -> None:
    """With no champion window to hold it against, a flagged window is no verdict (a
    twin of the champion was rolled back on one false alarm): the gate lacks data, and the
    controller waits for the champion's windows instead of stepping."""
    alone = drift_gate(windows("challenger", [True, False]))
    assert alone.passed is None and "no window of the champion's yet" in alone.reason


def test_one_flagged_window_against_one_quiet_one_is_too_few_to_tell() -> None:
    """A twin of the champion was rolled back on this (1 of 1 against 0 of 1, max-failures
    1): even all windows flagged on one side and none on the other would not be
    significant with so few, so the gate waits for more."""
    for ours, theirs in (([True], [False]), ([True] * 4, [False] * 4),
                         ([True], [False] * 98)):
        gate = drift_gate(windows("challenger", ours), windows("champion", theirs))
        assert gate.passed is None and "too few windows" in gate.reason, (ours, theirs)


def test_drift_in_every_window_the_champion_never_shows_fails() -> None:
    for ours, theirs in (([True] * 5, [False] * 5), ([True] * 2, [False] * 20)):
        gate = drift_gate(windows("challenger", ours), windows("champion", theirs))
        assert gate.passed is False and "tenure_months" in gate.reason
        assert gate.numbers["p_value"] < DRIFT_ALPHA
        assert gate.numbers["windows"] == len(ours)
        assert gate.numbers["champion_windows"] == len(theirs)


def test_drift_the_champion_shows_as_often_is_the_data_moving_not_the_model() -> None:
    same = drift_gate(windows("challenger", [True, False]), windows("champion", [True, False]))
    assert same.passed is True and "the data moved" in same.reason
    rare = drift_gate(windows("challenger", [True] + [False] * 4),
                      windows("champion", [False] * 5))
    assert rare.passed is True and "not significantly" in rare.reason


def rollouts(challenger_rate: float, champion_rate: float, share: int, looks: int,
             repeats: int, seed: int) -> list[int | None]:
    """The look at which each simulated rollout's drift gate fails (None: never). Each look
    adds one challenger window and ``share`` champion windows, flagged independently at
    the given rates (a twin: the same rate on both)."""
    rng = np.random.default_rng(seed)
    out: list[int | None] = []
    for _ in range(repeats):
        ours: list[bool] = []
        theirs: list[bool] = []
        failed = None
        for look in range(1, looks + 1):
            ours += [bool(rng.random() < challenger_rate)]
            theirs += list(rng.random(share) < champion_rate)
            if drift_gate(windows("challenger", ours), windows("champion", theirs)).passed \
                    is False:
                failed = look
                break
        out.append(failed)
    return out


@pytest.mark.parametrize(("rate", "share"), [(0.1, 1), (0.3, 1), (0.1, 9), (0.3, 9)])
def test_a_twin_is_rarely_failed_over_twenty_looks(rate: float, share: int) -> None:
    """The false alarm of a rollout, not of one look: the twin's windows are flagged as
    often as the champion's (up to 30%, a detector far noisier than ours), the gate looks
    after every window, twenty times; at most 5% of rollouts may fail, at 50/50 and 10/90
    (measured 0-2.5%)."""
    repeats = 300
    failed = sum(look is not None for look in rollouts(rate, rate, share, 20, repeats, 7))
    assert failed <= most_allowed(repeats, 0.05), failed


@pytest.mark.parametrize(("share", "within"), [(1, 10), (9, 5)])
def test_a_challenger_drifting_where_the_champion_does_not_fails_within_a_few_looks(
    share: int, within: int
) -> None:
    """Flagged in 90% of its windows, the champion in 5%: 95% of rollouts fail within
    ten windows each at 50/50, within five challenger windows at 10/90."""
    repeats = 200
    looks = rollouts(0.9, 0.05, share, within, repeats, 8)
    assert sum(look is not None for look in looks) >= fewest_allowed(repeats, 0.95), looks
