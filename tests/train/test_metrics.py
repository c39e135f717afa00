"""Threshold choice and metric definitions against brute force and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mlcanary.train.metrics import choose_threshold, classification_metrics


def scores(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return y, np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0, 1)


def brute(y: np.ndarray, s: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Precision, recall and F1 at every distinct score, counted directly."""
    out = []
    positives = y.sum()
    for t in np.unique(s):
        pred = s >= t
        tp = float((pred & (y == 1)).sum())
        p = tp / pred.sum() if pred.sum() else 0.0
        r = tp / positives
        f = 2 * p * r / (p + r) if p + r else 0.0
        out.append((float(t), p, r, f))
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_max_f1_threshold_matches_brute_force(seed: int) -> None:
    y, s = scores(seed)
    chosen = choose_threshold(y, s)
    best = max(f for _, _, _, f in brute(y, s))
    assert chosen.f1 == pytest.approx(best, abs=1e-12)
    assert skm.f1_score(y, s >= chosen.value) == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("target", [0.6, 0.75, 0.9])
def test_min_precision_gives_best_recall_meeting_it(target: float) -> None:
    y, s = scores(1)
    chosen = choose_threshold(y, s, min_precision=target)
    feasible = [r for _, p, r, _ in brute(y, s) if p >= target]
    assert chosen.precision >= target
    assert chosen.recall == pytest.approx(max(feasible))


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95])
def test_min_recall_gives_best_precision_meeting_it(target: float) -> None:
    y, s = scores(2)
    chosen = choose_threshold(y, s, min_recall=target)
    feasible = [p for _, p, r, _ in brute(y, s) if r >= target]
    assert chosen.recall >= target
    assert chosen.precision == pytest.approx(max(feasible))


def test_unreachable_precision_warns_and_falls_back() -> None:
    y = np.array([0, 1, 0, 1, 0, 1])
    s = np.array([0.9, 0.9, 0.5, 0.5, 0.1, 0.1])  # precision never above 0.5
    notes: list[str] = []
    chosen = choose_threshold(y, s, min_precision=0.99, warn=notes.append)
    assert "unreachable" in chosen.rule and notes


def test_multiclass_metrics_are_macro_averages() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    proba[np.arange(300), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    m = classification_metrics(y, proba, np.array([0, 1, 2]), None)
    assert m["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )
    assert m["f1"] == pytest.approx(skm.f1_score(y, proba.argmax(1), average="macro"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba))
