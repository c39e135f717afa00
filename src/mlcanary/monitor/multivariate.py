"""The domain-classifier test: can a model tell window rows from reference rows?

Univariate tests look at one column at a time, so they miss a change in how columns
move together: two correlated inputs that stop being correlated leave both marginals
intact. A classifier trained to separate reference rows from window rows sees every
column at once; if it separates them on rows it has not trained on (ROC-AUC above 0.5),
the joint distribution has changed.

The classifier is small on purpose (LightGBM, one thread, 30 trees of 15 leaves, 63
bins, a few thousand rows): it runs on every window. Its held-out AUC is a Mann-Whitney U
statistic, so its p-value comes from the Mann-Whitney null without any permutation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mlcanary.monitor.detectors import TestResult

FEATURE = "__dataset__"
"""The ``feature`` name of the domain-classifier result: it reads all columns."""

MAX_ROWS = 10_000
"""Rows per side (reference, window) at most, so the classifier's power grows with the
window up to the reference sample's default size: the AUC's null spread is ~0.018 at
1,000 rows per side, ~0.006 at 10,000. Its cost stays bounded (see docs/statistics.md
for the time per window)."""

MIN_ROWS = 50
"""Rows per side at least; below this the held-out AUC is too noisy to be worth a model."""

PARAMS = {
    "objective": "binary",
    "num_leaves": 15,
    "learning_rate": 0.1,
    "min_data_in_leaf": 20,
    "max_bin": 63,
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}
ROUNDS = 30


def auc_test(negative: np.ndarray, positive: np.ndarray) -> tuple[float, float, float]:
    """ROC-AUC of ``positive`` over ``negative`` scores, its one-sided p-value, its null
    standard error.

    AUC = U / (n_neg * n_pos), with U the Mann-Whitney statistic of the positive scores.
    Under the null (scores exchangeable) U is approximately normal with mean
    n_neg * n_pos / 2 and variance n_neg * n_pos / 12 * (n + 1 - sum(t^3 - t) / (n (n - 1))),
    where t are the sizes of groups of tied scores: trees give many tied scores, and
    without the correction the p-value would be too large. One-sided (AUC > 0.5): a
    classifier that does worse than chance on held-out rows is noise, not drift.
    Equals ``scipy.stats.mannwhitneyu(positive, negative, alternative="greater",
    method="asymptotic", use_continuity=False)``. The null standard error of the AUC,
    sqrt(variance) / (n_neg * n_pos), also serves for the effect's confidence bound:
    near the threshold (AUC 0.55) it is within a few percent of the actual standard
    error, which shrinks as the AUC moves away from 0.5 (Hanley and McNeil, 1982).
    """
    n_neg, n_pos = negative.size, positive.size
    scores = np.concatenate([negative, positive])
    ranks = stats.rankdata(scores)
    u = float(ranks[n_neg:].sum() - n_pos * (n_pos + 1) / 2)
    n = n_neg + n_pos
    _, ties = np.unique(scores, return_counts=True)
    tie_term = float(np.sum(ties.astype(float) ** 3 - ties)) / (n * (n - 1))
    variance = n_neg * n_pos / 12 * (n + 1 - tie_term)
    auc = u / (n_neg * n_pos)
    if variance <= 0:  # every score tied: the classifier found nothing
        return auc, 1.0, 0.0
    z = (u - n_neg * n_pos / 2) / math.sqrt(variance)
    return auc, float(stats.norm.sf(z)), math.sqrt(variance) / (n_neg * n_pos)


@dataclass(frozen=True)
class DomainClassifier:
    """The held-out AUC of the classifier, its evidence and its precision."""

    auc: float
    p_value: float
    """One-sided, against AUC = 0.5."""
    standard_error: float
    rows: int
    """Rows per side (reference, window) that were compared."""

    @property
    def effect_size(self) -> float:
        """AUC - 0.5: 0 when indistinguishable, 0.5 when perfectly separated."""
        return self.auc - 0.5

    def lower_bound(self, alpha: float) -> float:
        """One-sided (1 - alpha) lower confidence bound of the effect size."""
        return self.effect_size - float(stats.norm.isf(alpha)) * self.standard_error

    def as_test(self, drift: bool = False) -> TestResult:
        return TestResult(
            FEATURE, "domain_classifier", self.auc, self.p_value, self.effect_size, drift
        )


def split_halves(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random half of ``rows`` for training (True), identical rows kept on one side.

    Windows repeat rows (the same client retrying, the same record scored twice). If a
    repeated row landed in both halves, the classifier would recognise it on the held-
    out half and separate the window from the reference by memory, not by distribution:
    on weather windows drawn with replacement this tripled the false-alarm rate (16%
    at a 5% level). Each distinct row gets one coin flip, so copies travel together.
    """
    contiguous = np.ascontiguousarray(rows)
    as_bytes = contiguous.view(np.dtype((np.void, contiguous.dtype.itemsize * rows.shape[1])))
    _, group = np.unique(as_bytes.ravel(), return_inverse=True)
    return np.asarray(rng.random(int(group.max()) + 1) < 0.5)[group]


def domain_classifier_test(
    reference: np.ndarray, window: np.ndarray, *, seed: int, max_rows: int = MAX_ROWS
) -> DomainClassifier | None:
    """Train on half of (reference sample + window), score ROC-AUC on the other half.

    ``reference`` and ``window`` are row-aligned float matrices with the same columns
    (numbers with NaN for missing, categories as integer codes; see
    ``decision.Reference``). Both sides are subsampled to the same size, min(window
    rows, ``max_rows``), so the AUC compares balanced classes and its cost does not grow
    with the window. Returns None when either side has fewer than ``MIN_ROWS`` rows.

    Randomness (subsampling, split, the trees' seed) only through ``seed``.
    """
    if reference.shape[1] != window.shape[1]:
        raise ValueError(
            f"domain classifier: expected the same columns on both sides, got "
            f"{reference.shape[1]} in the reference and {window.shape[1]} in the window"
        )
    size = min(len(window), len(reference), max_rows)
    if size < MIN_ROWS or reference.shape[1] == 0:
        return None
    rng = np.random.default_rng(seed)
    rows = np.vstack(
        [
            reference[rng.choice(len(reference), size, replace=False)],
            window[rng.choice(len(window), size, replace=False)],
        ]
    )
    labels = np.r_[np.zeros(size), np.ones(size)]
    train = split_halves(rows, rng)
    if len(np.unique(labels[train])) < 2 or len(np.unique(labels[~train])) < 2:
        return None
    # Here, not at the top: a watch child that has analysed no window yet (most starts)
    # need not hold LightGBM and the scikit-learn it imports.
    import lightgbm as lgb

    params = {**PARAMS, "seed": int(rng.integers(2**31 - 1))}
    data = lgb.Dataset(rows[train], labels[train])
    scores = np.asarray(lgb.train(params, data, ROUNDS).predict(rows[~train], num_threads=1))
    held_out = labels[~train]
    negative, positive = scores[held_out == 0], scores[held_out == 1]
    return DomainClassifier(*auc_test(negative, positive), rows=size)
