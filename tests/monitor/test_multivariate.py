"""The domain classifier: its AUC test against SciPy, its null, its power on a joint shift."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from mlcanary.monitor.multivariate import (
    FEATURE,
    MAX_ROWS,
    auc_test,
    domain_classifier_test,
    split_halves,
)
from tests.monitor.drift_data import fewest_allowed


@pytest.mark.parametrize("decimals", [None, 1])
def test_auc_test_equals_sklearn_and_mann_whitney_with_ties(decimals: int | None) -> None:
    rng = np.random.default_rng(1)
    negative, positive = rng.random(700), rng.random(500) + 0.05
    if decimals is not None:  # many tied scores, as trees give
        negative, positive = np.round(negative, decimals), np.round(positive, decimals)
    auc, p_value, _ = auc_test(negative, positive)
    labels = np.r_[np.zeros(700), np.ones(500)]
    assert auc == pytest.approx(roc_auc_score(labels, np.r_[negative, positive]))
    expected = stats.mannwhitneyu(
        positive, negative, alternative="greater", method="asymptotic", use_continuity=False
    )
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_auc_test_with_every_score_tied_has_no_evidence() -> None:
    assert auc_test(np.full(10, 0.3), np.full(12, 0.3)) == (0.5, 1.0, 0.0)


def test_auc_p_value_is_calibrated_under_the_null() -> None:
    """2,000 null draws: rejections at 5% within the central 99% of Binomial(2000, 0.05)."""
    rng = np.random.default_rng(2)
    rejected = sum(
        auc_test(np.round(rng.random(500), 2), np.round(rng.random(500), 2))[1] < 0.05
        for _ in range(2_000)
    )
    low, high = stats.binom.ppf([0.005, 0.995], 2_000, 0.05)
    assert low <= rejected <= high


def test_auc_standard_error_matches_the_null_spread() -> None:
    """The standard error of AUC under the null: sqrt((n + 1) / (12 n_neg n_pos)) untied."""
    rng = np.random.default_rng(8)
    _, _, se = auc_test(rng.random(400), rng.random(600))
    assert se == pytest.approx(np.sqrt(1_001 / (12 * 400 * 600)))


def test_split_keeps_identical_rows_on_one_side() -> None:
    """A row repeated in the window must not be trained on and then recognised."""
    rng = np.random.default_rng(3)
    distinct = rng.normal(size=(50, 4))
    distinct[0, 1] = np.nan
    rows = distinct[rng.integers(50, size=1_000)]
    train = split_halves(rows, rng)
    for row in distinct:
        same = np.all((rows == row) | (np.isnan(rows) & np.isnan(row)), axis=1)
        assert train[same].all() or not train[same].any()
    assert 0.3 < train.mean() < 0.7


def _correlated(rng: np.random.Generator, rows: int, rho: float = 0.9) -> np.ndarray:
    x = rng.normal(size=(rows, 6))
    x[:, 1] = rho * x[:, 0] + np.sqrt(1 - rho**2) * x[:, 1]
    return x


def test_a_decorrelated_pair_is_caught_though_no_marginal_moved() -> None:
    """Power over 20 windows: one column permuted within the window (rho 0.9 -> 0)."""
    rng = np.random.default_rng(4)
    reference = _correlated(rng, 10_000)
    caught = 0
    for seed in range(20):
        window = _correlated(rng, 1_000)
        window[:, 1] = rng.permutation(window[:, 1])
        result = domain_classifier_test(reference, window, seed=seed)
        assert result is not None and result.rows == 1_000
        caught += result.p_value < 0.05 and result.lower_bound(0.05) >= 0.05
        test = result.as_test()
        assert (test.feature, test.test, test.statistic) == (
            FEATURE,
            "domain_classifier",
            result.auc,
        )
        assert test.effect_size == pytest.approx(result.auc - 0.5)
    assert caught >= fewest_allowed(20, 0.95)


def test_seeded_and_pure() -> None:
    rng = np.random.default_rng(5)
    reference, window = _correlated(rng, 3_000), _correlated(rng, 800)
    before = window.copy()
    first = domain_classifier_test(reference, window, seed=11)
    assert first == domain_classifier_test(reference, window, seed=11)
    assert np.array_equal(window, before)


def test_too_few_rows_or_no_columns_give_no_result() -> None:
    rng = np.random.default_rng(6)
    assert (
        domain_classifier_test(rng.normal(size=(500, 3)), rng.normal(size=(49, 3)), seed=0) is None
    )
    assert domain_classifier_test(np.empty((500, 0)), np.empty((100, 0)), seed=0) is None


def test_mismatched_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="same columns"):
        domain_classifier_test(np.zeros((100, 3)), np.zeros((100, 2)), seed=0)


def test_large_windows_cost_what_a_capped_sample_costs() -> None:
    """The window is subsampled to MAX_ROWS: a 100,000-row window still gets a result.

    Null draw: p < 0.001 has probability 0.1%, so the check fails by chance that rarely.
    """
    rng = np.random.default_rng(7)
    result = domain_classifier_test(_correlated(rng, 10_000), _correlated(rng, 100_000), seed=0)
    assert result is not None and result.rows == MAX_ROWS and result.p_value > 1e-3
