"""Cross-validation: fit per fold, collect out-of-fold predictions, score them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.train import metrics
from mlcanary.train.splits import Fold
from mlcanary.types import Task

PipelineFactory = Callable[[pd.DataFrame, np.ndarray], Any]
"""(training rows, labels) -> an unfitted pipeline (tuned on those rows when asked)."""

IMPORTANCE_ROWS = 1500
"""Held-out rows per fold used for permutation importance."""

IMPORTANCE_FOLDS = 3
"""Folds that measure permutation importance (each costs one predict per column)."""

TRAIN_SCORE_ROWS = 10_000
"""Training rows per fold scored for the learning curve's train score (a random subset)."""


@dataclass
class FoldRun:
    """Everything one model family produced across the folds."""

    family: str
    oof: np.ndarray
    """Out-of-fold predictions: probabilities [n, classes] or values [n]; NaN where none."""
    train_scores: list[float] = field(default_factory=list)
    """Primary metric on each fold's own training rows (for the learning curve)."""
    importance: dict[str, list[float]] = field(default_factory=dict)
    """Permutation importance per raw column, one value per fold."""
    params: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_prediction(self) -> np.ndarray:
        return np.asarray(~np.isnan(self.oof if self.oof.ndim == 1 else self.oof[:, 0]))


def predict_scores(model: Any, X: pd.DataFrame, task: Task) -> np.ndarray:
    """Probabilities for classifiers, values for regressors."""
    if task == "classification":
        return np.asarray(model.predict_proba(X), dtype=float)
    return np.asarray(model.predict(X), dtype=float)


def score(task: Task, y: np.ndarray, pred: np.ndarray, classes: np.ndarray | None) -> float:
    """The primary metric (higher is better) of one prediction set."""
    if task == "regression":
        return metrics.regression_metrics(y, pred)["r2"]
    assert classes is not None
    return metrics.classification_metrics(y, pred, classes, None)["roc_auc"]


def run_folds(
    family: str,
    factory: PipelineFactory,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[Fold],
    task: Task,
    classes: np.ndarray | None,
    *,
    importance_columns: list[str] | None = None,
    seed: int = 0,
    on_fold: Callable[[], None] | None = None,
) -> FoldRun:
    """Fit ``factory``'s pipeline on each fold's training rows and predict its test rows."""
    width = len(classes) if task == "classification" and classes is not None else None
    oof = np.full((len(y), width) if width else len(y), np.nan)
    run = FoldRun(family, oof)
    rng = np.random.default_rng(seed)
    for k, (train_idx, test_idx) in enumerate(folds):
        X_train, y_train = X.iloc[train_idx], y[train_idx]
        model = factory(X_train, y_train)
        model.fit(X_train, y_train)
        run.params.append(getattr(model, "tuned_params_", {}))
        oof[test_idx] = predict_scores(model, X.iloc[test_idx], task)
        seen = subsample(np.arange(len(train_idx)), TRAIN_SCORE_ROWS, rng)
        run.train_scores.append(
            score(task, y_train[seen], predict_scores(model, X_train.iloc[seen], task), classes)
        )
        if importance_columns and k < IMPORTANCE_FOLDS:
            rows = subsample(test_idx, IMPORTANCE_ROWS, rng)
            for col, value in permutation_importance(
                model, X.iloc[rows], y[rows], importance_columns, task, classes, rng
            ).items():
                run.importance.setdefault(col, []).append(value)
        if on_fold is not None:
            on_fold()
    return run


def subsample(rows: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """``rows`` itself when small enough, else a sorted random subset of ``cap`` of them."""
    return rows if len(rows) <= cap else np.sort(rng.choice(rows, cap, replace=False))


def permutation_importance(
    model: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    columns: list[str],
    task: Task,
    classes: np.ndarray | None,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Drop of the primary metric when one raw column's values are shuffled."""
    base = score(task, y, predict_scores(model, X, task), classes)
    out = {}
    for col in columns:
        shuffled = X.copy()
        shuffled[col] = X[col].to_numpy()[rng.permutation(len(X))]
        out[col] = base - score(task, y, predict_scores(model, shuffled, task), classes)
    return out


def fold_metrics(
    run: FoldRun,
    y: np.ndarray,
    folds: list[Fold],
    task: Task,
    classes: np.ndarray | None,
    thresholds: list[float] | None,
) -> list[dict[str, float]]:
    """Every task metric on each fold's test rows (binary: at that fold's threshold)."""
    out = []
    for k, (_, test_idx) in enumerate(folds):
        if task == "regression":
            out.append(metrics.regression_metrics(y[test_idx], run.oof[test_idx]))
        else:
            assert classes is not None
            threshold = None if thresholds is None else thresholds[k]
            out.append(
                metrics.classification_metrics(y[test_idx], run.oof[test_idx], classes, threshold)
            )
    return out
