"""Window performance: metrics equal scikit-learn's, intervals cover, the verdict is one-sided."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from mlcanary.monitor.performance import (
    _statistic,
    default_metric,
    window_performance,
)
from tests.monitor.drift_data import fewest_allowed


def binary(rng: np.random.Generator, n: int, signal: float = 1.0) -> tuple[np.ndarray, ...]:
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=n))))
    score = np.round(score, 2)  # ties, as a calibrated model's rounded output has
    proba = np.c_[1 - score, score]
    return y, proba, (score >= 0.5).astype(int)


def test_default_metrics_follow_the_task() -> None:
    assert default_metric("classification", [0, 1]) == "accuracy"
    assert default_metric("classification", ["a", "b", "c"]) == "accuracy"
    assert default_metric("regression", None) == "rmse"


@pytest.mark.parametrize("metric", ["roc_auc", "accuracy", "f1"])
def test_binary_point_values_equal_sklearn(metric: str) -> None:
    y, proba, predicted = binary(np.random.default_rng(0), 700)
    result = window_performance(
        y, proba, predicted, task="classification", classes=[0, 1], baseline=0.8, metric=metric
    )
    expected = {
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
        "accuracy": skm.accuracy_score(y, predicted),
        "f1": skm.f1_score(y, predicted),
    }[metric]
    assert result.value == pytest.approx(expected)
    assert result.ci_low <= result.value <= result.ci_high and result.n == 700


def test_macro_f1_over_all_classes_equals_sklearn() -> None:
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c", "d"]
    y = rng.choice(classes[:3], 500)  # 'd' is never true and never predicted: F1 0
    predicted = np.where(rng.random(500) < 0.7, y, rng.choice(classes[:3], 500))
    result = window_performance(  # macro-F1 named: the default is accuracy
        y, np.zeros((500, 4)), predicted, task="classification", classes=classes, baseline=0.5,
        metric="f1",
    )
    expected = skm.f1_score(y, predicted, labels=classes, average="macro", zero_division=0.0)
    assert result.metric == "f1" and result.value == pytest.approx(expected)


def test_regression_errors_equal_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    predicted = y + rng.normal(0, 0.5, 400)
    rmse = window_performance(
        y, predicted, predicted, task="regression", classes=None, baseline=0.5
    )
    mae = window_performance(
        y, predicted, predicted, task="regression", classes=None, baseline=0.4, metric="mae"
    )
    assert rmse.value == pytest.approx(np.sqrt(skm.mean_squared_error(y, predicted)))
    assert mae.value == pytest.approx(skm.mean_absolute_error(y, predicted))


def test_weighted_auc_equals_the_auc_of_the_resampled_rows() -> None:
    """A bootstrap weight vector is a resample: its AUC is the AUC of the repeated rows."""
    rng = np.random.default_rng(3)
    y, proba, predicted = binary(rng, 300)
    statistic = _statistic("roc_auc", y, proba, predicted, [0, 1])
    rows = rng.integers(300, size=(5, 300))
    weights = np.stack([np.bincount(r, minlength=300) for r in rows]).astype(float)
    expected = [skm.roc_auc_score(y[r], proba[r, 1]) for r in rows]
    assert statistic(weights) == pytest.approx(expected)


def test_intervals_cover_the_true_value() -> None:
    """95% intervals of accuracy on 200 windows from a model with 80% true accuracy.

    Coverage is Binomial(200, 0.95) if the intervals are right: at least 182 (1st
    percentile) must contain 0.8.
    """
    rng = np.random.default_rng(4)
    covered = 0
    for seed in range(200):
        y = rng.integers(0, 2, 400)
        predicted = np.where(rng.random(400) < 0.8, y, 1 - y)
        result = window_performance(
            y,
            np.c_[1 - predicted, predicted],
            predicted,
            task="classification",
            classes=[0, 1],
            baseline=0.8,
            metric="accuracy",
            seed=seed,
        )
        covered += result.ci_low <= 0.8 <= result.ci_high
    assert covered >= fewest_allowed(200, 0.95)


def test_a_healthy_window_is_not_degraded_and_a_broken_one_is() -> None:
    rng = np.random.default_rng(5)
    y, proba, predicted = binary(rng, 1_000, signal=1.0)
    healthy = window_performance(
        y, proba, predicted, task="classification", classes=[0, 1], baseline=0.75
    )
    baseline = healthy.value  # the window performs exactly as in validation
    healthy = window_performance(
        y, proba, predicted, task="classification", classes=[0, 1], baseline=baseline
    )
    assert not healthy.degraded
    y, proba, predicted = binary(rng, 1_000, signal=0.5)  # a weaker model
    broken = window_performance(
        y, proba, predicted, task="classification", classes=[0, 1], baseline=baseline
    )
    assert broken.value < baseline and broken.degraded
    assert broken.ci_high < baseline * 0.98


def test_for_errors_higher_is_worse() -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(size=500)
    worse = y + rng.normal(0, 2.0, 500)
    result = window_performance(y, worse, worse, task="regression", classes=None, baseline=1.0)
    assert result.ci_low > 1.02 and result.degraded
    fine = y + rng.normal(0, 1.0, 500)
    assert not window_performance(
        y, fine, fine, task="regression", classes=None, baseline=1.0
    ).degraded


def test_one_class_window_has_no_auc_and_no_verdict() -> None:
    y = np.ones(50, dtype=int)
    proba = np.c_[np.full(50, 0.3), np.full(50, 0.7)]
    result = window_performance(
        y, proba, np.ones(50), task="classification", classes=[0, 1], baseline=0.9,
        metric="roc_auc",
    )
    assert np.isnan(result.value) and not result.degraded
    data = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert data["value"] is None and data["baseline"] == 0.9


def test_seeded_and_large_windows_are_chunked() -> None:
    """20,000 rows: the bootstrap runs in chunks; its interval has the analytic width.

    Hanley and McNeil's standard error of the AUC (1982) from the data itself; the
    percentile interval should span about 2 x 1.96 of it (15% slack: 500 resamples
    estimate the 2.5% and 97.5% quantiles to within ~10%).
    """
    rng = np.random.default_rng(7)
    y, proba, predicted = binary(rng, 20_000)
    first = window_performance(
        y, proba, predicted, task="classification", classes=[0, 1], baseline=0.8, seed=1
    )
    second = window_performance(
        y, proba, predicted, task="classification", classes=[0, 1], baseline=0.8, seed=1
    )
    assert first == second
    auc, n_pos, n_neg = first.value, int(y.sum()), int((1 - y).sum())
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (
        n_pos * n_neg
    )
    width = 2 * stats.norm.ppf(0.975) * np.sqrt(variance)
    assert first.ci_high - first.ci_low == pytest.approx(width, rel=0.15)


def test_bad_calls_are_refused_by_name() -> None:
    y = np.array([0, 1])
    proba = np.array([[0.5, 0.5], [0.2, 0.8]])
    kwargs = {"task": "classification", "classes": [0, 1], "baseline": 0.8}
    with pytest.raises(ValueError, match="at least one labelled record"):
        window_performance(y[:0], proba[:0], y[:0], **kwargs)
    with pytest.raises(ValueError, match="as many scores and predictions as labels"):
        window_performance(y, proba[:1], y, **kwargs)
    with pytest.raises(ValueError, match="'metric'"):
        window_performance(y, proba, y, metric="rmse", **kwargs)
    with pytest.raises(ValueError, match="two classes"):
        window_performance(
            np.array([0, 1, 2]),
            np.eye(3),
            np.array([0, 1, 2]),
            task="classification",
            classes=[0, 1, 2],
            baseline=0.8,
            metric="roc_auc",
        )
