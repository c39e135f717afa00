"""Univariate drift tests: one column of a window against the same column of the reference.

Each test has two halves. The reference half (``NumericReference``,
``CategoricalReference``) is computed once per model version: sorted values, quantile
bins, category counts. The window half is a pure function that takes that reference
and the window's values and returns a ``TestResult``. The monitor runs the window half
on every window, so it does only the work that depends on the window: sorting 1,000
values, one binary search into the sorted reference and a linear merge, never a
re-sort of the reference.

A result carries both a p-value (is the difference real, given the sample sizes?) and
an effect size (is it large enough to matter?). The decision step
(``monitor.decision``) needs both, because at 100,000 rows a p-value flags differences
too small to matter, and at 50 rows an effect size is mostly noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd
from scipy import special, stats

if TYPE_CHECKING:
    from mlcanary.monitor.decision import DriftSettings

TestName = Literal["ks", "psi", "chi2", "missing", "domain_classifier"]
Role = Literal["feature", "prediction"]

PSI_SMOOTHING = 0.5
"""Pseudo-count added to every PSI bin, in the reference and in the window."""

MIN_EXPECTED = 5.0
"""Categories expected fewer times than this in the window are pooled (Cochran's rule)."""


@dataclass(frozen=True)
class TestResult:
    """One test on one column (or on the whole window, for the domain classifier).

    ``drift`` is False as the detectors return it; the decision step sets it once the
    p-value has been corrected across all the window's tests and the effect size has
    been compared with its threshold.
    """

    __test__ = False  # not a pytest test class, despite the name

    feature: str
    test: TestName
    statistic: float
    p_value: float | None
    effect_size: float | None
    drift: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN and infinities become None (JSON has no such numbers)."""
        return {
            "feature": self.feature,
            "test": self.test,
            "statistic": _finite(self.statistic),
            "p_value": _finite(self.p_value),
            "effect_size": _finite(self.effect_size),
            "drift": self.drift,
        }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def to_numbers(values: pd.Series) -> np.ndarray:
    """Numbers, booleans and their text forms ('true', 'no', ...) as floats, NaN kept.

    The same reading as ``registry.profile.as_numbers``, but positions are kept, so
    that the caller can count missing values and build row-aligned matrices.
    """
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return np.asarray(values.to_numpy(dtype=float, na_value=np.nan))
    text = values.astype("string").str.strip().str.lower()
    text = text.replace({"true": "1", "yes": "1", "false": "0", "no": "0"})
    return np.asarray(pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan))


# --- numeric columns -------------------------------------------------------------------


@dataclass(frozen=True)
class NumericReference:
    """What the numeric tests need from the reference, computed once.

    ``edges`` are the interior cut points of ``bins`` quantile bins (duplicates removed,
    so a column with heavy ties or a single value gets fewer bins); ``bin_counts`` the
    reference rows per bin. ``scale`` normalises the Wasserstein distance: the reference
    standard deviation, so that a mean shift of k standard deviations reads as k. It is
    preferred to the IQR because the IQR is zero for any column with more than half of
    its mass on one value (counts, flags, zero-inflated amounts), where the standard
    deviation is not. A constant reference has no spread; its scale is then the value's
    magnitude (or 1 at zero), so a constant that starts to vary reads as a relative change.
    """

    sorted_values: np.ndarray
    edges: np.ndarray
    bin_counts: np.ndarray
    scale: float

    @classmethod
    def from_values(cls, values: np.ndarray, bins: int = 10) -> NumericReference:
        """Build from the reference column; NaN values are dropped (the missing test reads them)."""
        finite = np.sort(values[~np.isnan(values)])
        if finite.size == 0:
            raise ValueError("numeric reference: expected at least one non-missing value, got 0")
        if bins < 2:
            raise ValueError(f"numeric reference: expected bins >= 2, got {bins}")
        edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
        counts = bin_counts(edges, finite)
        std = float(finite.std())
        scale = std if std > 0 else max(abs(float(finite[0])), 1.0)
        return cls(finite, edges, counts, scale)

    @property
    def n(self) -> int:
        return int(self.sorted_values.size)


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows per bin; a value equal to an edge falls in the bin above it."""
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)


def cdf_gaps(
    reference_sorted: np.ndarray, window_sorted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """F_ref - F_win just after each value of the merged samples, and the steps between them.

    The merge costs O(N + n) and one binary search: the window's positions in the
    merged order are ``searchsorted(reference, window) + arange(n)``, so the reference
    is never re-sorted. Both KS and Wasserstein read their statistic off these arrays.
    """
    n_ref, n_win = reference_sorted.size, window_sorted.size
    at = np.searchsorted(reference_sorted, window_sorted, side="left") + np.arange(n_win)
    is_window = np.zeros(n_ref + n_win, dtype=bool)
    is_window[at] = True
    merged = np.empty(n_ref + n_win)
    merged[at] = window_sorted
    merged[~is_window] = reference_sorted
    win_count = np.cumsum(is_window)
    gap = (np.arange(1, n_ref + n_win + 1) - win_count) / n_ref - win_count / n_win
    return gap, np.diff(merged)


def ks_statistic(reference_sorted: np.ndarray, window_sorted: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D = sup |F_ref - F_win|, both inputs sorted.

    Read at the last of each run of tied values, where both CDFs have taken every tied
    value in; the result equals ``scipy.stats.ks_2samp``.
    """
    return _ks(*cdf_gaps(reference_sorted, window_sorted))


def _ks(gap: np.ndarray, steps: np.ndarray) -> float:
    return float(np.abs(gap[np.append(steps != 0, True)]).max())


def ks_p_value(statistic: float, n_reference: int, n_window: int) -> float:
    """Two-sided asymptotic p-value, as ``ks_2samp(method="asymp")`` computes it.

    Smirnov's two-sample result: D is distributed as the one-sample statistic with
    n = n_ref * n_win / (n_ref + n_win) (``scipy.stats.kstwo``). SciPy's exact mode is
    three times slower at n_ref = 10,000 and differs negligibly at these sizes.
    Ties (rounded data) make the asymptotic p-value conservative, never anti-conservative.
    """
    m, n = float(n_reference), float(n_window)
    en = np.round(m * n / (m + n))
    if en < 1:  # one value on each side: nothing to test
        return 1.0
    return float(np.clip(stats.kstwo.sf(statistic, en), 0.0, 1.0))


def wasserstein(reference_sorted: np.ndarray, window_sorted: np.ndarray) -> float:
    """Wasserstein-1 distance (in the column's units) = integral of |F_ref - F_win|.

    The area between the CDFs, summed over the steps between consecutive merged values.
    Equals ``scipy.stats.wasserstein_distance``.
    """
    return _wasserstein(*cdf_gaps(reference_sorted, window_sorted))


def _wasserstein(gap: np.ndarray, steps: np.ndarray) -> float:
    return float(np.sum(np.abs(gap[:-1]) * steps))


def psi(reference_counts: np.ndarray, window_counts: np.ndarray) -> float:
    """Population stability index, sum of (q - p) * ln(q / p) over bins, smoothed.

    Every bin gets ``PSI_SMOOTHING`` = 0.5 extra rows in both samples before the shares
    are taken: the Jeffreys (Krichevsky-Trofimov) estimate of a share. Without it an
    empty bin gives ln(0) and an infinite index. A fixed epsilon share instead (1e-4 is
    common) makes an empty 10% bin add 0.69 whatever the window's size; half a row
    scales with the evidence: 0.13 in a 20-row window, where an empty 10% bin happens
    one time in eight by chance, 0.53 in a 1,000-row window, where it never does. Half
    a row barely moves a well-filled bin.
    """
    ref = reference_counts + PSI_SMOOTHING
    win = window_counts + PSI_SMOOTHING
    p, q = ref / ref.sum(), win / win.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def numeric_tests(
    feature: str, reference: NumericReference, values: np.ndarray
) -> list[TestResult]:
    """KS (effect size: Wasserstein / reference scale) and PSI on the non-missing values.

    Returns no result when the window has no non-missing value: there is no
    distribution to compare, and the missing-rate test reports the column.
    """
    window = np.sort(values[~np.isnan(values)])
    if window.size == 0:
        return []
    gap, steps = cdf_gaps(reference.sorted_values, window)
    d = _ks(gap, steps)
    distance = _wasserstein(gap, steps) / reference.scale
    index = psi(reference.bin_counts, bin_counts(reference.edges, window))
    return [
        TestResult(feature, "ks", d, ks_p_value(d, reference.n, window.size), distance),
        TestResult(feature, "psi", index, None, index),
    ]


# --- categorical columns ---------------------------------------------------------------


@dataclass(frozen=True)
class CategoricalReference:
    """Reference counts per category (categories as text, most frequent first)."""

    categories: tuple[str, ...]
    counts: np.ndarray

    @classmethod
    def from_values(cls, values: pd.Series) -> CategoricalReference:
        """Build from the reference column; missing values are left to the missing test."""
        frequencies = values.dropna().astype(str).value_counts()
        if frequencies.empty:
            raise ValueError(
                "categorical reference: expected at least one non-missing value, got 0"
            )
        return cls(tuple(str(k) for k in frequencies.index), frequencies.to_numpy())

    @property
    def n(self) -> int:
        return int(self.counts.sum())


def categorical_cells(
    reference: CategoricalReference, window: pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window counts on shared cells, rare and unseen categories pooled.

    A reference category expected fewer than ``MIN_EXPECTED`` times in the window joins
    one pooled cell, and so does every category the reference never saw: an
    unseen category has no reference share to compare with one by one, and in the pooled
    cell a handful of unseen rows neither breaks the chi-squared approximation nor goes
    unnoticed (a new category at 10% makes the pooled cell jump). The pooled cell is
    always the last one and is dropped when empty on both sides.
    """
    counts = window.dropna().astype(str).value_counts()
    n_win = int(counts.sum())
    window_counts = counts.reindex(list(reference.categories), fill_value=0).to_numpy()
    unseen = n_win - int(window_counts.sum())
    expected = n_win * reference.counts / reference.n
    kept = expected >= MIN_EXPECTED
    ref_cells = np.append(reference.counts[kept], reference.counts[~kept].sum())
    win_cells = np.append(window_counts[kept], window_counts[~kept].sum() + unseen)
    if ref_cells[-1] == 0 and win_cells[-1] == 0:
        ref_cells, win_cells = ref_cells[:-1], win_cells[:-1]
    return ref_cells.astype(float), win_cells.astype(float)


def chi2_test(reference_cells: np.ndarray, window_cells: np.ndarray) -> tuple[float, float]:
    """Pearson chi-squared on the 2 x k table (reference, window) x cells.

    A test of homogeneity rather than goodness of fit against the reference shares:
    the reference is a sample too, and treating its shares as exact would understate
    the variance by n_win / n_ref. Equals ``scipy.stats.chi2_contingency`` without
    Yates' correction. One cell (a single category on both sides) gives (0, 1).
    """
    table = np.vstack([reference_cells, window_cells])
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, float(special.chdtrc(table.shape[1] - 1, statistic))


def js_distance(reference_cells: np.ndarray, window_cells: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two cell distributions.

    Chosen over PSI for categories because it is bounded and needs no smoothing: a cell
    empty on one side contributes a finite amount (0 * log 0 = 0), so a new category does
    not depend on a pseudo-count. Equals ``scipy.spatial.distance.jensenshannon(base=2)``.
    """
    p = reference_cells / reference_cells.sum()
    q = window_cells / window_cells.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(np.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def categorical_test(
    feature: str, reference: CategoricalReference, values: pd.Series
) -> list[TestResult]:
    """Chi-squared on pooled cells, effect size the Jensen-Shannon distance on those cells."""
    ref_cells, win_cells = categorical_cells(reference, values)
    if win_cells.sum() == 0:
        return []
    statistic, p_value = chi2_test(ref_cells, win_cells)
    return [TestResult(feature, "chi2", statistic, p_value, js_distance(ref_cells, win_cells))]


# --- every column ----------------------------------------------------------------------


def missing_rate_test(
    feature: str, missing_reference: int, n_reference: int, missing_window: int, n_window: int
) -> TestResult:
    """Two-proportion z-test (pooled variance, two-sided) on the missing rates.

    Statistic: z (positive when the window misses more). Effect size: Cohen's h,
    |2 asin sqrt(p_win) - 2 asin sqrt(p_ref)|, rather than the difference of rates: the
    arcsine stabilises the variance, so the same h means the same evidence whatever the
    base rate, and a column that was never missing and now is missing in 3% of rows
    (h = 0.35) counts for more than 40% becoming 43% (h = 0.06), which matches what an
    engineer would call a broken feed. 0 vs 0 (or 100% vs 100%) gives z = 0, p = 1.
    """
    p_ref, p_win = missing_reference / n_reference, missing_window / n_window
    pooled = (missing_reference + missing_window) / (n_reference + n_window)
    effect = abs(2 * math.asin(math.sqrt(p_win)) - 2 * math.asin(math.sqrt(p_ref)))
    if pooled in (0.0, 1.0):
        return TestResult(feature, "missing", 0.0, 1.0, effect)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_reference + 1 / n_window))
    z = (p_win - p_ref) / se
    return TestResult(feature, "missing", z, math.erfc(abs(z) / math.sqrt(2)), effect)


# --- the detector interface and its registry -------------------------------------------


@dataclass(frozen=True)
class ColumnReference:
    """One reference column as the tests need it; both halves None for datetime columns."""

    name: str
    role: Role
    n_rows: int
    n_missing: int
    numeric: NumericReference | None = None
    categorical: CategoricalReference | None = None


class Detector(Protocol):
    """One family of column tests: where it applies, its window half, and when a result
    that is significant (after the window's correction) is also large enough to matter."""

    name: TestName
    """The result its decision is taken on; it carries the p-value."""
    companions: tuple[TestName, ...]
    """Further results it returns that share that decision (no p-value of their own)."""

    def applies(self, column: ColumnReference) -> bool: ...

    def run(self, column: ColumnReference, values: pd.Series) -> list[TestResult]:
        """The window's results for this column (none when there is nothing to compare)."""
        ...

    def material(self, result: TestResult, column: Mapping[str, TestResult],
                 settings: DriftSettings) -> bool:
        """Whether a significant ``result`` (``column``: every result of its column) drifts."""
        ...


class MissingRate:
    """The share of missing values, on input columns of every kind."""

    name: TestName = "missing"
    companions: tuple[TestName, ...] = ()

    def applies(self, column: ColumnReference) -> bool:
        return column.role == "feature"  # a missing prediction says nothing about the inputs

    def run(self, column: ColumnReference, values: pd.Series) -> list[TestResult]:
        missing = int(values.isna().sum())
        return [missing_rate_test(column.name, column.n_missing, column.n_rows, missing,
                                  len(values))]

    def material(self, result: TestResult, column: Mapping[str, TestResult],
                 settings: DriftSettings) -> bool:
        return (result.effect_size or 0.0) >= settings.missing_threshold


class NumericDistribution:
    """KS for significance; Wasserstein distance or PSI for size (numbers and booleans)."""

    name: TestName = "ks"
    companions: tuple[TestName, ...] = ("psi",)

    def applies(self, column: ColumnReference) -> bool:
        return column.numeric is not None

    def run(self, column: ColumnReference, values: pd.Series) -> list[TestResult]:
        assert column.numeric is not None
        return numeric_tests(column.name, column.numeric, to_numbers(values))

    def material(self, result: TestResult, column: Mapping[str, TestResult],
                 settings: DriftSettings) -> bool:
        psi = column.get("psi")
        return ((result.effect_size or 0.0) >= settings.wasserstein_threshold
                or (psi is not None and (psi.effect_size or 0.0) >= settings.psi_threshold))


class CategoricalDistribution:
    """Chi-squared on pooled cells for significance, Jensen-Shannon distance for size."""

    name: TestName = "chi2"
    companions: tuple[TestName, ...] = ()

    def applies(self, column: ColumnReference) -> bool:
        return column.categorical is not None

    def run(self, column: ColumnReference, values: pd.Series) -> list[TestResult]:
        assert column.categorical is not None
        return categorical_test(column.name, column.categorical, values)

    def material(self, result: TestResult, column: Mapping[str, TestResult],
                 settings: DriftSettings) -> bool:
        return (result.effect_size or 0.0) >= settings.categorical_threshold


DETECTORS: dict[str, Detector] = {
    d.name: d for d in (MissingRate(), NumericDistribution(), CategoricalDistribution())
}
"""Every column detector, in the order its results are reported."""

OWNER: dict[str, Detector] = {
    name: d for d in DETECTORS.values() for name in (d.name, *d.companions)
}
"""The detector that decides each result name."""
