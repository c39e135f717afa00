"""Task metrics, keyed by scikit-learn scorer-style names, and the decision threshold.

Classification: ``roc_auc``, ``average_precision``, ``log_loss``, ``accuracy`` and, at
the decision threshold, ``precision``, ``recall``, ``f1`` (macro averages for more
than two classes, where ROC-AUC and AP are one-vs-rest over the classes present).
Regression: ``rmse``, ``mae``, ``r2``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from mlcanary.types import Task


def primary_metric(task: Task) -> str:
    """The score the learning curve and tuning use (higher is better)."""
    return "roc_auc" if task == "classification" else "r2"


@dataclass(frozen=True)
class Threshold:
    """Where a binary classifier turns scores into the positive label, and why."""

    value: float
    rule: str
    precision: float
    recall: float
    f1: float


def choose_threshold(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    min_precision: float | None = None,
    min_recall: float | None = None,
    warn: Callable[[str], None] | None = None,
) -> Threshold:
    """Pick the threshold on out-of-fold scores of the positive class.

    Max F1 by default; with ``min_precision`` the highest-recall threshold that keeps
    precision at or above it; with ``min_recall`` the highest-precision one that keeps
    recall at or above it. An unreachable target falls back to the closest threshold,
    with a warning.
    """
    precision, recall, thresholds = skm.precision_recall_curve(y_true, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    if min_precision is not None:
        ok = precision >= min_precision
        rule = f"highest recall with precision >= {min_precision:g}"
        key = np.where(ok, recall, -1.0)
        if not ok.any():
            key, rule = precision, f"highest precision (target {min_precision:g} unreachable)"
    elif min_recall is not None:
        ok = recall >= min_recall
        rule = f"highest precision with recall >= {min_recall:g}"
        key = np.where(ok, precision, -1.0)
        if not ok.any():
            key, rule = recall, f"highest recall (target {min_recall:g} unreachable)"
    else:
        key, rule = f1, "max F1 on out-of-fold predictions"
    if "unreachable" in rule and warn is not None:
        warn(f"threshold: {rule}")
    best = int(np.flatnonzero(key == key.max())[-1])  # ties: the higher threshold
    return Threshold(
        value=float(thresholds[best]),
        rule=rule,
        precision=float(precision[best]),
        recall=float(recall[best]),
        f1=float(f1[best]),
    )


def classification_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    threshold: float | None,
) -> dict[str, float]:
    """All classification metrics for one set of predictions (``proba``: [n, classes])."""
    y_idx = np.searchsorted(classes, y_true)
    binary = len(classes) == 2
    if binary:
        predicted = (proba[:, 1] >= (0.5 if threshold is None else threshold)).astype(int)
    else:
        predicted = proba.argmax(axis=1)
    average = "binary" if binary else "macro"
    out = {
        "roc_auc": _ovr(skm.roc_auc_score, y_idx, proba, binary),
        "average_precision": _ovr(skm.average_precision_score, y_idx, proba, binary),
        "log_loss": float(
            skm.log_loss(y_idx, np.clip(proba, 1e-15, 1), labels=range(len(classes)))
        ),
        "accuracy": float(skm.accuracy_score(y_idx, predicted)),
    }
    labels = None if binary else list(range(len(classes)))
    p, r, f, _ = skm.precision_recall_fscore_support(
        y_idx, predicted, average=average, labels=labels, zero_division=0.0
    )
    out.update(precision=float(p), recall=float(r), f1=float(f))
    return out


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, predicted))),
        "mae": float(skm.mean_absolute_error(y_true, predicted)),
        "r2": float(skm.r2_score(y_true, predicted)),
    }


def _ovr(score: Callable[..., float], y_idx: np.ndarray, proba: np.ndarray, binary: bool) -> float:
    if binary:
        if np.unique(y_idx).size < 2:
            return float("nan")
        return float(score(y_idx, proba[:, 1]))
    per_class = [
        score(y_idx == k, proba[:, k])
        for k in range(proba.shape[1])
        if 0 < (y_idx == k).sum() < len(y_idx)
    ]
    return float(np.mean(per_class)) if per_class else float("nan")


def summarise(per_fold: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation over folds, per metric (NaN folds ignored)."""
    names = per_fold[0].keys() if per_fold else []
    out = {}
    for name in names:
        values = np.array([f[name] for f in per_fold], dtype=float)
        values = values[~np.isnan(values)]
        out[name] = (float(values.mean()), float(values.std())) if values.size else (np.nan, np.nan)
    return out
