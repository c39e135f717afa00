"""Performance on labelled records: the task metric with a bootstrap interval, against the
version's cross-validated baseline.

Labels arrive late and in small numbers, so a window's metric is a noisy estimate; the
question "has the model got worse?" is answered with the interval, not the point: the
window is ``degraded`` only when the whole interval lies beyond the baseline by more
than a tolerance. The bootstrap is vectorised: each resample is a row of multinomial
weights, and every metric here is a weighted sum (ROC-AUC through tied-score groups),
so 500 resamples cost a few matrix products instead of 500 metric calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcanary.types import LOWER_IS_BETTER, Task

Metric = Literal["roc_auc", "accuracy", "f1", "rmse", "mae"]
"""Metric names as ``train.metrics`` spells them (``f1`` is macro-F1 beyond two classes)."""

CLASSIFICATION: tuple[Metric, ...] = ("roc_auc", "accuracy", "f1")
REGRESSION: tuple[Metric, ...] = ("rmse", "mae")
Statistic = Callable[[np.ndarray], np.ndarray]
"""The metric as a function of resample weights [B, n], returning one value per resample [B]."""

CHUNK_CELLS = 4_000_000
"""Resample weights held at once (resamples x rows): about 32 MB of float64."""


@dataclass(frozen=True)
class Performance:
    """The window's metric, its bootstrap interval and the verdict against the baseline."""

    metric: Metric
    value: float
    ci_low: float
    ci_high: float
    baseline: float
    n: int
    degraded: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN (a metric undefined on this window) becomes None."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            is_nan = isinstance(value, float) and math.isnan(value)
            out[key] = None if is_nan else value
        return out


def default_metric(task: Task, classes: Sequence[Any] | None) -> Metric:
    """Accuracy for classifiers (the metric at the decision threshold), RMSE for regression.

    Accuracy judges the labels the server answered, so it moves when the decision boundary
    no longer fits: a 5.5-point drop of accuracy was flagged in 90.5% of windows by
    accuracy and in 7% by ROC-AUC, which ranks scores and barely notices a boundary that
    shifted. ROC-AUC and F1 are still computed and reported beside it.
    """
    return "rmse" if task == "regression" else "accuracy"


def metrics_for(task: Task, classes: Sequence[Any] | None) -> tuple[Metric, ...]:
    """Every metric a window of this task reports (ROC-AUC for two classes only)."""
    if task == "regression":
        return REGRESSION
    if classes is not None and len(classes) == 2:
        return CLASSIFICATION
    return tuple(m for m in CLASSIFICATION if m != "roc_auc")


def window_performance(
    y_true: np.ndarray,
    scores: np.ndarray,
    predicted: np.ndarray,
    *,
    task: Task,
    classes: Sequence[Any] | None,
    baseline: float,
    metric: Metric | None = None,
    tolerance: float = 0.02,
    confidence: float = 0.95,
    resamples: int = 500,
    seed: int = 0,
) -> Performance:
    """Metric of one labelled window with a percentile bootstrap interval.

    ``scores``: class probabilities [n, classes] (or the positive-class probability [n]
    for two classes), read by ROC-AUC only. ``predicted``: the labels the server
    answered (they carry the version's decision threshold), or the predicted values for
    regression. ``baseline``: the version's cross-validated value of the same metric
    (``VersionInfo.metrics[metric]``).

    Degraded: the interval lies entirely on the bad side of the baseline, past a margin
    of ``tolerance`` x |baseline| (2% by default), i.e. ci_high < baseline - margin when
    higher is better, ci_low > baseline + margin for errors (RMSE, MAE). The margin
    absorbs the baseline's own uncertainty (it is a mean over a few folds) and
    differences too small to act on; requiring the whole interval keeps the false-alarm
    rate of a healthy model at or below (1 - confidence) / 2 per window.
    """
    metric = metric or default_metric(task, classes)
    allowed = CLASSIFICATION if task == "classification" else REGRESSION
    if metric not in allowed:
        raise ValueError(
            f"performance 'metric': expected one of {allowed} for {task}, got {metric!r}"
        )
    n = len(y_true)
    if n == 0:
        raise ValueError("performance window: expected at least one labelled record, got 0")
    if len(scores) != n or len(predicted) != n:
        raise ValueError(
            f"performance window: expected as many scores and predictions as labels ({n}), "
            f"got {len(scores)} scores and {len(predicted)} predictions"
        )
    statistic = _statistic(metric, y_true, scores, predicted, classes)
    value = float(statistic(np.ones((1, n)))[0])
    draws = _bootstrap(statistic, n, resamples, np.random.default_rng(seed))
    draws = draws[~np.isnan(draws)]
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail]) if draws.size else (np.nan, np.nan)
    margin = tolerance * abs(baseline)
    if metric in LOWER_IS_BETTER:
        degraded = bool(low > baseline + margin)
    else:
        degraded = bool(high < baseline - margin)
    return Performance(metric, value, float(low), float(high), float(baseline), n, degraded)


def _bootstrap(
    statistic: Statistic, n: int, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``resamples`` values of the metric, on multinomial weights, in memory-bounded chunks."""
    chunk = max(1, CHUNK_CELLS // n)
    out = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        weights = rng.multinomial(n, np.full(n, 1 / n), size=size).astype(float)
        out.append(statistic(weights))
    return np.concatenate(out)


def _statistic(
    metric: Metric,
    y_true: np.ndarray,
    scores: np.ndarray,
    predicted: np.ndarray,
    classes: Sequence[Any] | None,
) -> Statistic:
    """A function of resample weights [B, n] returning the metric per resample [B]."""
    if metric in ("rmse", "mae"):
        error = np.asarray(predicted, dtype=float) - np.asarray(y_true, dtype=float)
        if metric == "rmse":
            return lambda w: np.sqrt(w @ error**2 / w.sum(axis=1))
        return lambda w: w @ np.abs(error) / w.sum(axis=1)
    labels = np.asarray(classes if classes is not None else np.unique(y_true))
    truth, guess = _indices(y_true, labels), _indices(predicted, labels)
    if metric == "accuracy":
        correct = (truth == guess).astype(float)
        return lambda w: w @ correct / w.sum(axis=1)
    if metric == "f1":
        return _f1(truth, guess, len(labels))
    if len(labels) != 2:
        raise ValueError(
            f"performance 'metric': roc_auc needs two classes, got {len(labels)}; use 'f1'"
        )
    positive = np.asarray(scores, dtype=float)
    positive = positive[:, 1] if positive.ndim == 2 else positive
    return _roc_auc(truth == 1, positive)


def _indices(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Position of each value among ``labels``; -1 for a label the version never had.

    Matched by value first (1.0 is class 1), then by text (a label logged as "1").
    """
    found = pd.Index(labels).get_indexer(pd.Index(values))
    as_text = pd.Index(labels.astype(str)).get_indexer(pd.Index(values.astype(str)))
    return np.asarray(np.where(found >= 0, found, as_text))


def _f1(truth: np.ndarray, guess: np.ndarray, n_classes: int) -> Statistic:
    """F1 of the positive class for two classes, macro-F1 over all classes beyond."""
    k = np.arange(n_classes)
    hit = ((truth[:, None] == k) & (guess[:, None] == k)).astype(float)
    false_pos = ((guess[:, None] == k) & (truth[:, None] != k)).astype(float)
    false_neg = ((truth[:, None] == k) & (guess[:, None] != k)).astype(float)
    if n_classes == 2:
        hit, false_pos, false_neg = hit[:, 1:], false_pos[:, 1:], false_neg[:, 1:]

    def f1(w: np.ndarray) -> np.ndarray:
        tp, fp, fn = w @ hit, w @ false_pos, w @ false_neg
        denominator = 2 * tp + fp + fn
        safe = np.where(denominator > 0, denominator, 1.0)
        per_class = np.where(denominator > 0, 2 * tp / safe, 0.0)  # sklearn's zero_division=0
        return np.asarray(per_class.mean(axis=1))

    return f1


def _roc_auc(is_positive: np.ndarray, score: np.ndarray) -> Statistic:
    """Weighted ROC-AUC: pairs (positive, negative) ordered correctly, ties counting half.

    Scores are sorted once; tied scores form groups. For each resample the weight of
    negatives strictly below each group comes from a cumulative sum, so the AUC of all
    resamples is a handful of [B, groups] array operations.
    """
    order = np.argsort(score, kind="stable")
    sorted_score, positive = score[order], is_positive[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])

    def auc(w: np.ndarray) -> np.ndarray:
        w = w[:, order]
        pos = np.add.reduceat(w * positive, starts, axis=1)
        neg = np.add.reduceat(w * ~positive, starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        pairs = pos.sum(axis=1) * neg.sum(axis=1)
        correct = np.sum(pos * (below + 0.5 * neg), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.where(pairs > 0, correct / pairs, np.nan))

    return auc
