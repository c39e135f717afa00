"""The bias/variance verdict on models built to underfit, overfit, or fit well."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from mlcanary.train.curves import CurvePoint, diagnose, full_point, learning_curve
from mlcanary.train.evaluate import run_folds
from mlcanary.train.splits import make_folds


def verdict(X: pd.DataFrame, y: np.ndarray, make: Any) -> tuple[str, str]:
    folds, _ = make_folds(y, "classification", 5, seed=0)
    classes = np.unique(y)
    factory = lambda *_: make()  # noqa: E731
    run = run_folds("m", factory, X, y, folds, "classification", classes)
    points = learning_curve(
        factory, X, y, folds, "classification", classes, ordered_by_time=False, seed=0
    )
    val = [float(roc_auc_score(y[te], run.oof[te, 1])) for _, te in folds]
    points.append(full_point([len(tr) for tr, _ in folds], run.train_scores, val))
    d = diagnose(points, 0.5, "roc_auc")
    return d.verdict, d.reason


def xor(n: int = 3000, noise: float = 0.0, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 2)), columns=["a", "b"])
    y = ((X["a"] * X["b"] > 0) ^ (rng.random(n) < noise)).astype(int).to_numpy()
    return X, y


def test_linear_model_on_xor_is_high_bias() -> None:
    X, y = xor()
    v, reason = verdict(X, y, lambda: make_pipeline(StandardScaler(), LogisticRegression()))
    assert v == "high bias", reason


def test_unpruned_tree_on_noisy_labels_is_high_variance() -> None:
    X, y = xor(noise=0.3)
    v, reason = verdict(X, y, lambda: DecisionTreeClassifier(random_state=0))
    assert v == "high variance", reason
    assert "train roc_auc 1.000" in reason


def test_shallow_tree_on_clean_xor_is_a_good_fit() -> None:
    X, y = xor()
    v, reason = verdict(X, y, lambda: DecisionTreeClassifier(max_depth=4, random_state=0))
    assert v == "good fit", reason


@pytest.mark.parametrize(
    ("train", "val", "expected"),
    [(0.99, 0.80, "high variance"), (0.70, 0.69, "high bias"), (0.95, 0.93, "good fit")],
)
def test_rule_boundaries(train: float, val: float, expected: str) -> None:
    points = [CurvePoint(100, train, 0, val - 0.02, 0), CurvePoint(200, train, 0, val, 0)]
    assert diagnose(points, 0.5, "roc_auc").verdict == expected
