"""Learning curve and the bias/variance verdict drawn from it.

The curve refits the model on growing shares of each fold's training rows (the most
recent rows for time splits) and scores it on that fold's test rows; the last point
is the cross-validation itself. The verdict works in units of the baseline's error,
``e0 = 1 - baseline score`` (0.5 for ROC-AUC, about 1 for R²), so one rule reads
the same across tasks:

- **high variance**: train score minus validation score exceeds ``VARIANCE_GAP`` x e0
  (the model does much better on rows it has seen than on new ones);
- **high bias**: otherwise, when the train error itself exceeds ``BIAS_ERROR`` x e0
  (the model cannot fit even the rows it learns from);
- **good fit**: neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcanary.train.evaluate import (
    TRAIN_SCORE_ROWS,
    PipelineFactory,
    predict_scores,
    score,
    subsample,
)
from mlcanary.train.splits import Fold
from mlcanary.types import Task

FRACTIONS = (0.1, 0.25, 0.5)
CURVE_FOLDS = 2
MIN_ROWS = 100
"""Smaller training sets are skipped: LightGBM needs 2 x min_child_samples rows to split."""
VARIANCE_GAP = 0.15
BIAS_ERROR = 0.3

Verdict = Literal["high bias", "high variance", "good fit"]


@dataclass
class CurvePoint:
    rows: int
    train: float
    train_std: float
    validation: float
    validation_std: float


@dataclass
class Diagnosis:
    verdict: Verdict
    reason: str
    points: list[CurvePoint]
    metric: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "metric": self.metric,
            "points": [asdict(p) for p in self.points],
        }


def learning_curve(
    factory: PipelineFactory,
    X: pd.DataFrame,
    y: np.ndarray,
    folds: list[Fold],
    task: Task,
    classes: np.ndarray | None,
    *,
    ordered_by_time: bool,
    seed: int,
    on_step: Callable[[], None] | None = None,
) -> list[CurvePoint]:
    """Points at ``FRACTIONS`` of the training rows (the full-size point comes from CV)."""
    rng = np.random.default_rng(seed)
    points = []
    for fraction in FRACTIONS:
        train_scores, val_scores, sizes = [], [], []
        for train_idx, test_idx in folds[:CURVE_FOLDS]:
            n = int(len(train_idx) * fraction)
            if ordered_by_time:
                subset = train_idx[-n:]
            else:
                subset = np.sort(rng.choice(train_idx, n, replace=False))
            if n < MIN_ROWS or (task == "classification" and np.unique(y[subset]).size < 2):
                continue
            model = factory(X.iloc[subset], y[subset])
            model.fit(X.iloc[subset], y[subset])
            seen = subsample(subset, TRAIN_SCORE_ROWS, rng)
            train_scores.append(
                score(task, y[seen], predict_scores(model, X.iloc[seen], task), classes)
            )
            val_scores.append(
                score(task, y[test_idx], predict_scores(model, X.iloc[test_idx], task), classes)
            )
            sizes.append(n)
            if on_step is not None:
                on_step()
        if sizes:
            points.append(_point(sizes, train_scores, val_scores))
    return points


def full_point(
    train_rows: list[int], train_scores: list[float], val_scores: list[float]
) -> CurvePoint:
    """The curve's last point: the cross-validation run itself."""
    return _point(train_rows, train_scores, val_scores)


def diagnose(points: list[CurvePoint], baseline_score: float, metric: str) -> Diagnosis:
    """Turn the curve into a verdict, with the numbers that led to it."""
    last = points[-1]
    e0 = max(1.0 - baseline_score, 1e-9)
    gap = last.train - last.validation
    train_error = 1.0 - last.train
    trend = ""
    if len(points) >= 2:
        rise = last.validation - points[-2].validation
        more = "still rising" if rise > 0.005 else "flat"
        trend = f"; validation {more} ({rise:+.3f} from {points[-2].rows:,} to {last.rows:,} rows)"
    numbers = (
        f"train {metric} {last.train:.3f} vs validation {last.validation:.3f} "
        f"(gap {gap:.3f} = {gap / e0:.0%} of the baseline error {e0:.3f}; "
        f"train error {train_error:.3f} = {train_error / e0:.0%} of it){trend}"
    )
    if gap > VARIANCE_GAP * e0:
        verdict: Verdict = "high variance"
        hint = "more data, stronger regularisation or a simpler model should help"
    elif train_error > BIAS_ERROR * e0:
        verdict = "high bias"
        hint = (
            "a more flexible model or better features should help, unless the target is this noisy"
        )
    else:
        verdict = "good fit"
        hint = "train and validation agree and both are well above the baseline"
    return Diagnosis(verdict, f"{numbers}: {hint}", points, metric)


def _point(sizes: list[int], train: list[float], val: list[float]) -> CurvePoint:
    return CurvePoint(
        rows=int(np.mean(sizes)),
        train=float(np.nanmean(train)),
        train_std=float(np.nanstd(train)),
        validation=float(np.nanmean(val)),
        validation_std=float(np.nanstd(val)),
    )
