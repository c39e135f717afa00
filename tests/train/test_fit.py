"""Training end to end through the library: each task, each CV plan, tuning, thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris

from mlcanary.config import Settings
from mlcanary.train.fit import TrainResult, train
from mlcanary.train.spec import TrainSpec
from tests.conftest import write_csv


def fit(path: Path, tmp_path: Path, **options: object) -> TrainResult:
    spec = TrainSpec.parse(data=path, **options)
    return train(spec, Settings(home=tmp_path / "home"))


def dated_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "when": pd.date_range("2023-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "store": rng.choice([f"s{i}" for i in range(12)], n),
            "x": x,
            "label": np.where(x + rng.normal(0, 0.7, n) > 0.3, "buy", "skip"),
        }
    ).sample(frac=1.0, random_state=seed)  # time order must come from --time-column


def test_regression_reports_rmse_mae_r2_beside_mean_baseline(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "diabetes.csv", load_diabetes(as_frame=True).frame)
    result = fit(path, tmp_path, target="target", model="lightgbm")
    assert set(result.metrics) == {"rmse", "mae", "r2"}
    assert result.metrics["r2"][0] > 0.3
    assert abs(result.baseline["r2"][0]) < 0.05  # the mean predicts nothing
    assert result.linear["r2"][0] > 0.4
    assert result.threshold is None
    assert result.signature.task == "regression"


def test_multiclass_uses_macro_metrics_and_no_threshold(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "iris.csv", load_iris(as_frame=True).frame)
    result = fit(path, tmp_path, target="target", model="random-forest")
    assert result.signature.classes == [0, 1, 2]
    assert result.metrics["roc_auc"][0] > 0.95 and result.metrics["f1"][0] > 0.85
    assert result.baseline["roc_auc"][0] == pytest.approx(0.5)
    assert result.threshold is None
    assert result.pipeline.predict_proba(pd.read_csv(path).drop(columns="target")).shape == (150, 3)


def test_time_column_gives_forward_chaining_folds(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dated.csv", dated_frame())
    result = fit(path, tmp_path, target="label", time_column="when", folds=4)
    assert result.plan == "4 forward-chaining time splits"
    held_out = ~np.isnan(result.oof[:, 0])
    assert held_out.sum() == 600 - 600 // 5  # the first block trains, never tests
    assert not held_out[: 600 // 5].any()  # and it is the earliest block
    assert result.profile["rows"] == held_out.sum()
    assert result.signature.classes == ["buy", "skip"]


def test_group_column_keeps_groups_whole_and_out_of_the_features(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dated.csv", dated_frame())
    result = fit(path, tmp_path, target="label", group_column="store", folds=3)
    assert result.plan.startswith("stratified group 3-fold (12 groups)")
    store = next(c for c in result.signature.columns if c.name == "store")
    assert not store.used and "group column" in store.note


def test_min_precision_sets_the_registered_threshold(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dated.csv", dated_frame())
    default = fit(path, tmp_path, target="label", model="logistic")
    strict = fit(path, tmp_path, target="label", model="logistic", min_precision=0.9)
    assert default.threshold is not None and strict.threshold is not None
    assert strict.threshold.precision >= 0.9
    assert strict.threshold.value > default.threshold.value
    assert strict.pipeline.threshold == strict.threshold.value


def test_trials_run_a_nested_search_per_fold_and_for_the_final_model(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dated.csv", dated_frame(400))
    result = fit(path, tmp_path, target="label", model="logistic", trials=3, folds=3)
    assert set(result.params) == {"C"}
    assert result.metrics["roc_auc"][0] > 0.75


def test_threshold_metrics_are_cross_fitted(tmp_path: Path) -> None:
    """Precision/recall per fold use a threshold chosen without that fold's rows."""
    path = write_csv(tmp_path / "dated.csv", dated_frame())
    result = fit(path, tmp_path, target="label", model="logistic")
    pooled_f1 = result.threshold.f1 if result.threshold else 0.0
    # Choosing on the pooled scores is optimistic; cross-fitted F1 cannot beat it on average.
    assert result.metrics["f1"][0] <= pooled_f1 + 0.02


@pytest.mark.parametrize(("last", "shifted_rows"), [(300, 300), (100, 0)])
def test_reference_last_draws_the_drift_reference_from_the_newest_rows(
    tmp_path: Path, last: int, shifted_rows: int
) -> None:
    """900 rows, the last 300 with x moved by +10: a 300-row reference is exactly those rows;
    100 rows (fewer than the minimum) falls back to every held-out row."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=900)
    x[600:] += 10
    frame = pd.DataFrame({"x": x, "z": rng.normal(size=900),
                          "y": (rng.normal(size=900) + x > 0).astype(int)})
    path = write_csv(tmp_path / "shifted.csv", frame)
    result = fit(path, tmp_path, target="y", model="logistic", folds=3, reference_last=last)
    if shifted_rows:
        assert len(result.reference) == shifted_rows
        assert (result.reference["x"] > 5).all()
        np.testing.assert_allclose(np.sort(result.reference["x"]), np.sort(x[600:]))
    else:
        assert len(result.reference) == 900
        assert (result.reference["x"] > 5).sum() == 300
