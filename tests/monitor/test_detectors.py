"""Univariate detectors against SciPy, on edge cases, and calibrated under the null."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlcanary.monitor.detectors import (
    CategoricalReference,
    NumericReference,
    TestResult,
    bin_counts,
    categorical_cells,
    categorical_test,
    chi2_test,
    js_distance,
    ks_p_value,
    ks_statistic,
    missing_rate_test,
    numeric_tests,
    psi,
    to_numbers,
    wasserstein,
)

samples = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=60
)


@settings(max_examples=60, deadline=None)
@given(reference=samples, window=samples, rounding=st.sampled_from([None, 0]))
def test_ks_and_wasserstein_equal_scipy(
    reference: list[float], window: list[float], rounding: int | None
) -> None:
    """Any two samples, ties included (rounding to integers makes many)."""
    ref, win = np.array(reference), np.array(window)
    if rounding is not None:
        ref, win = np.round(ref, rounding), np.round(win, rounding)
    ref_sorted, win_sorted = np.sort(ref), np.sort(win)
    d = ks_statistic(ref_sorted, win_sorted)
    if ref.size == win.size == 1:  # SciPy divides by zero here; there is nothing to test
        assert ks_p_value(d, 1, 1) == 1.0
    else:
        expected = stats.ks_2samp(ref, win, method="asymp")
        assert d == pytest.approx(expected.statistic, abs=1e-12)
        assert ks_p_value(d, ref.size, win.size) == pytest.approx(
            expected.pvalue, rel=1e-9, abs=1e-300
        )
    scale = max(1.0, float(np.abs(np.r_[ref, win]).max()))
    assert wasserstein(ref_sorted, win_sorted) == pytest.approx(
        stats.wasserstein_distance(ref, win), abs=1e-9 * scale
    )


@pytest.mark.parametrize("n_ref, n_win", [(10_000, 1_000), (500, 3_000), (2_000, 50)])
def test_ks_p_value_equals_scipy_at_monitor_sizes(n_ref: int, n_win: int) -> None:
    rng = np.random.default_rng(n_win)
    ref, win = rng.normal(size=n_ref), rng.normal(0.1, 1.1, size=n_win)
    d = ks_statistic(np.sort(ref), np.sort(win))
    expected = stats.ks_2samp(ref, win, method="asymp")
    assert ks_p_value(d, n_ref, n_win) == pytest.approx(expected.pvalue, rel=1e-9)


def test_psi_of_identical_shares_is_zero_and_smoothing_is_half_a_row() -> None:
    assert psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0, abs=0.01)
    # The window's last bin is empty: each bin gets 0.5 rows on both sides first.
    ref, win = np.array([40, 40, 20]), np.array([6, 4, 0])
    p = (ref + 0.5) / (ref.sum() + 1.5)
    q = (win + 0.5) / (win.sum() + 1.5)
    expected = float(np.sum((q - p) * np.log(q / p)))
    assert psi(ref, win) == pytest.approx(expected)
    assert math.isfinite(psi(ref, win)) and psi(ref, win) > 0.1


def test_quantile_bins_hold_equal_shares_and_collapse_on_ties() -> None:
    rng = np.random.default_rng(0)
    ref = NumericReference.from_values(rng.normal(size=10_000), bins=10)
    assert ref.edges.size == 9 and np.all(ref.bin_counts == 1_000)
    # 60% zeros: the edges at the 10%..60% quantiles coincide and are kept once.
    zeros = NumericReference.from_values(np.r_[np.zeros(600), np.arange(1.0, 401.0)])
    assert zeros.edges[0] == 0 and np.unique(zeros.edges).size == zeros.edges.size
    assert zeros.bin_counts.sum() == 1_000 and zeros.bin_counts[1] == 600  # zeros sit together


def test_single_value_column() -> None:
    ref = NumericReference.from_values(np.full(1_000, 3.0))
    assert ref.edges.tolist() == [3.0] and ref.scale == 3.0  # relative change when constant
    same = numeric_tests("c", ref, np.full(200, 3.0))
    assert [t.test for t in same] == ["ks", "psi"]
    assert same[0].statistic == 0 and same[0].p_value == 1 and same[0].effect_size == 0
    moved = numeric_tests("c", ref, np.full(200, 4.5))
    assert moved[0].statistic == 1 and moved[0].p_value < 1e-10
    assert moved[0].effect_size == pytest.approx(0.5)  # |4.5 - 3| / 3
    assert NumericReference.from_values(np.zeros(10)).scale == 1.0


def test_all_missing_window_has_no_distribution_test() -> None:
    ref = NumericReference.from_values(np.arange(100.0))
    assert numeric_tests("x", ref, np.full(50, np.nan)) == []
    cats = CategoricalReference.from_values(pd.Series(["a", "b"] * 50))
    assert categorical_test("c", cats, pd.Series([None] * 20, dtype=object)) == []


def test_an_all_missing_reference_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="at least one non-missing value"):
        NumericReference.from_values(np.full(10, np.nan))
    with pytest.raises(ValueError, match="at least one non-missing value"):
        CategoricalReference.from_values(pd.Series([None, None], dtype=object))


def test_window_values_equal_to_an_edge_fall_in_the_bin_above() -> None:
    assert bin_counts(np.array([1.0, 2.0]), np.array([0.5, 1.0, 1.5, 2.0, 3.0])).tolist() == [
        1,
        2,
        2,
    ]


def test_chi2_equals_scipy_contingency_with_pooling_and_a_new_category() -> None:
    rng = np.random.default_rng(3)
    ref_values = pd.Series(
        rng.choice(["a", "b", "c", "rare"], 10_000, p=[0.5, 0.3, 0.1995, 0.0005])
    )
    window = pd.Series(rng.choice(["a", "b", "c", "new"], 1_000, p=[0.45, 0.3, 0.15, 0.1]))
    reference = CategoricalReference.from_values(ref_values)
    ref_cells, win_cells = categorical_cells(reference, window)
    # 'rare' is expected 0.5 times in 1,000 rows: pooled with the unseen 'new', last cell.
    assert ref_cells.size == 4 and win_cells[-1] == (window == "new").sum()
    assert ref_cells[-1] == (ref_values == "rare").sum()
    statistic, p_value = chi2_test(ref_cells, win_cells)
    expected = stats.chi2_contingency(np.vstack([ref_cells, win_cells]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert js_distance(ref_cells, win_cells) == pytest.approx(
        jensenshannon(ref_cells, win_cells, base=2)
    )
    result = categorical_test("c", reference, window)[0]
    assert result.test == "chi2" and result.p_value < 1e-20 and result.effect_size > 0.2


def test_categorical_pooled_cell_is_dropped_when_empty_and_one_cell_gives_no_evidence() -> None:
    reference = CategoricalReference.from_values(pd.Series(["a"] * 90 + ["b"] * 10))
    ref_cells, win_cells = categorical_cells(reference, pd.Series(["a"] * 900 + ["b"] * 100))
    assert ref_cells.tolist() == [90, 10] and win_cells.tolist() == [900, 100]
    only = CategoricalReference.from_values(pd.Series(["x"] * 50))
    result = categorical_test("c", only, pd.Series(["x"] * 30))[0]
    assert (result.statistic, result.p_value, result.effect_size) == (0.0, 1.0, 0.0)
    assert categorical_test("c", only, pd.Series(["y"] * 30))[0].p_value < 1e-10


def test_js_distance_is_bounded() -> None:
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert js_distance(np.array([3.0, 1.0]), np.array([30.0, 10.0])) == pytest.approx(0.0)


def test_missing_rate_z_test_equals_the_two_by_two_chi_squared() -> None:
    result = missing_rate_test("x", 300, 10_000, 60, 1_000)
    table = np.array([[300, 9_700], [60, 940]])
    expected = stats.chi2_contingency(table, correction=False)
    assert result.statistic**2 == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.statistic > 0  # the window misses more
    h = abs(2 * math.asin(math.sqrt(0.06)) - 2 * math.asin(math.sqrt(0.03)))
    assert result.effect_size == pytest.approx(h)


@pytest.mark.parametrize("missing", [0, 1_000])
def test_missing_rate_zero_against_zero_has_no_evidence(missing: int) -> None:
    result = missing_rate_test("x", missing * 10, 10_000, missing, 1_000)
    assert (result.statistic, result.p_value, result.effect_size) == (0.0, 1.0, 0.0)


def test_missing_rate_zero_to_twenty_percent_is_a_large_effect() -> None:
    result = missing_rate_test("x", 0, 10_000, 200, 1_000)
    assert result.p_value < 1e-100 and result.effect_size == pytest.approx(
        2 * math.asin(math.sqrt(0.2))
    )


def _assert_calibrated(name: str, rejected: int, windows: int) -> None:
    """Rejections at alpha = 5% are Binomial(windows, 0.05) when p-values are uniform.

    The central 99% interval [ppf(0.005), ppf(0.995)] (for 400 windows: mean 20,
    standard deviation 4.4, interval [10, 32]) fails by chance 1% of the time, and
    catches a test that is anti-conservative (too many alarms) or dead (none).
    """
    low, high = stats.binom.ppf([0.005, 0.995], windows, 0.05)
    assert low <= rejected <= high, f"{name}: {rejected} of {windows} null windows rejected"


def test_p_values_are_calibrated_under_the_null() -> None:
    """KS, chi-squared and the missing-rate z-test each reject 5% of null windows."""
    rng = np.random.default_rng(7)
    numeric = NumericReference.from_values(rng.normal(size=10_000))
    ks = sum(
        numeric_tests("x", numeric, rng.normal(size=1_000))[0].p_value < 0.05 for _ in range(400)
    )
    _assert_calibrated("ks", ks, 400)

    categories, shares = np.array(["a", "b", "c", "d"]), [0.4, 0.3, 0.2, 0.1]
    reference = CategoricalReference.from_values(
        pd.Series(rng.choice(categories, 10_000, p=shares))
    )
    chi2 = 0
    for _ in range(400):
        window = pd.Series(rng.choice(categories, 1_000, p=shares))
        chi2 += categorical_test("c", reference, window)[0].p_value < 0.05
    _assert_calibrated("chi2", chi2, 400)

    counts = rng.binomial([10_000, 1_000], 0.05, size=(4_000, 2))  # cheap: more windows
    missing = sum(missing_rate_test("m", a, 10_000, b, 1_000).p_value < 0.05 for a, b in counts)
    _assert_calibrated("missing", missing, 4_000)


def test_result_as_dict_is_json_ready() -> None:
    result = TestResult("x", "ks", float("nan"), None, float("inf"))
    assert result.as_dict() == {
        "feature": "x",
        "test": "ks",
        "statistic": None,
        "p_value": None,
        "effect_size": None,
        "drift": False,
    }


def test_text_booleans_and_numbers_read_as_floats_with_missing_kept() -> None:
    values = pd.Series(["true", "No", None, "1", "3.5", "maybe"], dtype=object)
    assert np.array_equal(to_numbers(values), [1, 0, np.nan, 1, 3.5, np.nan], equal_nan=True)
    assert to_numbers(pd.Series([True, False])).tolist() == [1.0, 0.0]
    assert np.isnan(to_numbers(pd.Series([1, None], dtype="Int64"))[1])
