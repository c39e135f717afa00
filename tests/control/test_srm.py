"""Sample-ratio mismatch: broken splits are flagged, healthy ones almost never."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from mlcanary.control.srm import sequential_srm_test, srm_test
from tests.monitor.drift_data import most_allowed

EVEN = {"champion": 50, "challenger": 50}


def test_a_400_request_gap_in_10_400_is_a_mismatch() -> None:
    result = srm_test({"champion": 5000, "challenger": 5400}, EVEN)
    assert result.mismatch and result.p_value is not None and result.p_value < 0.001
    assert result.expected == {"challenger": 5200.0, "champion": 5200.0}


def test_5000_against_5300_is_not_below_the_default_threshold() -> None:
    """z = 150 / sqrt(10,300 / 4) = 2.96, p = 0.0031: suspicious, not yet the 0.001 the
    default asks for (it is at a 0.01 threshold, and at 5,000 / 5,400 at any)."""
    observed = {"champion": 5000, "challenger": 5300}
    result = srm_test(observed, EVEN)
    assert result.p_value == pytest.approx(0.003117, rel=1e-3) and not result.mismatch
    assert srm_test(observed, EVEN, threshold=0.01).mismatch


def test_a_50_request_gap_is_noise() -> None:
    result = srm_test({"champion": 5000, "challenger": 5050}, EVEN)
    assert not result.mismatch and result.p_value is not None and result.p_value > 0.5


def test_statistic_equals_scipy_chisquare_on_three_variants() -> None:
    observed = {"a": 880, "b": 70, "c": 50}
    result = srm_test(observed, {"a": 90, "b": 5, "c": 5})
    expected = stats.chisquare([880, 70, 50], [900, 50, 50])
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_traffic_to_a_weight_0_variant_is_a_mismatch_even_when_tiny() -> None:
    result = srm_test({"champion": 30, "challenger": 2}, {"champion": 100, "challenger": 0})
    assert result.mismatch and result.p_value == 0.0
    assert "weight 0: 'challenger' (2)" in result.note


def test_traffic_to_an_unknown_variant_is_a_mismatch() -> None:
    result = srm_test({"champion": 500, "challenger": 480, "v3": 4}, EVEN)
    assert result.mismatch and "'v3' (4)" in result.note


def test_small_totals_are_not_tested() -> None:
    result = srm_test({"champion": 40, "challenger": 10}, EVEN)
    assert not result.mismatch and result.p_value is None
    assert "50 requests, fewer than the 100" in result.note
    canary = srm_test({"champion": 200, "challenger": 0}, {"champion": 99, "challenger": 1})
    assert canary.p_value is None and "smallest expected count 2.0" in canary.note


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match=r"count 'champion': expected a whole number >= 0"):
        srm_test({"champion": -1, "challenger": 5}, EVEN)
    with pytest.raises(ValueError, match=r"summing to 100, got 90"):
        srm_test({"champion": 1, "challenger": 5}, {"champion": 45, "challenger": 45})


def test_false_alarms_on_correct_splits_match_the_level() -> None:
    """2,000 correctly assigned windows of 10,000 requests split 90/5/5. At the default
    0.001 the flags are Binomial(2000, 0.001): mean 2, 99.9% bound 8. At 0.05 they must
    land within Binomial(2000, 0.05)'s central 99.8% (71 to 131): this checks the p-values
    are uniform, which a wrong degrees of freedom would break."""
    rng = np.random.default_rng(7)
    weights = {"a": 90, "b": 5, "c": 5}
    counts = rng.multinomial(10_000, [0.90, 0.05, 0.05], size=2000)
    p_values = []
    for row in counts:
        result = srm_test(dict(zip("abc", map(int, row), strict=True)), weights)
        assert result.p_value is not None
        p_values.append(result.p_value)
    flags = np.array(p_values)
    default_flags, loose_flags = int(np.sum(flags < 0.001)), int(np.sum(flags < 0.05))
    assert default_flags <= stats.binom.ppf(0.999, 2000, 0.001), f"{default_flags} of 2000"
    low, high = stats.binom.ppf([0.001, 0.999], 2000, 0.05)
    assert low <= loose_flags <= high, f"{loose_flags} of 2000 at 0.05"


def streams(rng: np.random.Generator, runs: int, looks: int, every: int,
            share: float) -> np.ndarray:
    """Cumulative challenger counts at each look: ``runs`` x ``looks``, ``every`` requests
    between looks, each request to the challenger with probability ``share``."""
    return np.cumsum(rng.binomial(every, share, size=(runs, looks)), axis=1)


def ever_flagged(counts: np.ndarray, every: int, weights: dict[str, float], test: Any,
                 **options: float) -> int:
    flagged = 0
    for run in counts:
        for k, challenger in enumerate(run):
            total = (k + 1) * every
            observed = {"champion": int(total - challenger), "challenger": int(challenger)}
            if test(observed, weights, **options).mismatch:
                flagged += 1
                break
    return flagged


@pytest.mark.parametrize("weights", [EVEN, {"champion": 90, "challenger": 10}])
def test_the_sequential_test_holds_its_rate_over_a_hundred_looks(
    weights: dict[str, float],
) -> None:
    """A healthy split looked at every 200 requests up to 20,000: at alpha = 0.01 the
    sequential test ever flags at most 1% of the runs (binomial bound); the chi-squared
    test at 0.01, repeated on the same growing counts, flags several times that."""
    rng = np.random.default_rng(17)
    runs, looks, every = 400, 100, 200
    counts = streams(rng, runs, looks, every, weights["challenger"] / 100)
    sequential = ever_flagged(counts, every, weights, sequential_srm_test, alpha=0.01)
    repeated = ever_flagged(counts, every, weights, srm_test, threshold=0.01)
    assert sequential <= most_allowed(runs, 0.01)
    assert repeated > 3 * most_allowed(runs, 0.01)


def test_the_sequential_test_finds_a_three_point_gap_within_20_000_requests() -> None:
    """53% of a 50/50 split's traffic to one arm: flagged by 20,000 requests in at least
    95% of runs (binomial bound on the misses), at the default alpha."""
    rng = np.random.default_rng(18)
    runs, looks, every = 200, 100, 200
    counts = streams(rng, runs, looks, every, 0.53)
    found = ever_flagged(counts, every, EVEN, sequential_srm_test)
    assert runs - found <= most_allowed(runs, 0.05)


def test_the_sequential_test_keeps_the_one_look_rules() -> None:
    assert sequential_srm_test({"champion": 40, "challenger": 10}, EVEN).p_value is None
    stray = sequential_srm_test({"champion": 30, "challenger": 2},
                                {"champion": 100, "challenger": 0})
    assert stray.mismatch and "weight 0" in stray.note
    with pytest.raises(ValueError, match="alpha"):
        sequential_srm_test({"champion": 500, "challenger": 500}, EVEN, alpha=1.5)
