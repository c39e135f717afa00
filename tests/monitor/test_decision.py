"""The decision rule and the report, on small synthetic tables where every case is visible."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlcanary.monitor.decision import (
    DriftSettings,
    Reference,
    analyse,
    decide,
    importance_weights,
    significant,
)
from mlcanary.monitor.detectors import TestResult
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX
from mlcanary.signature import ColumnSpec, Signature

SIGNATURE = Signature(
    [
        ColumnSpec("amount", "numeric", nullable=True),
        ColumnSpec("age", "integer", nullable=False),
        ColumnSpec("plan", "categorical", nullable=False),
        ColumnSpec("active", "boolean", nullable=False),
        ColumnSpec("signup", "datetime", nullable=False),
        ColumnSpec("constant", "numeric", nullable=False, used=False),
    ],
    target="churn",
    task="classification",
    classes=["no", "yes"],
)
IMPORTANCE = {"amount": 0.5, "age": 0.2, "plan": 0.2, "active": 0.1, "constant": 0.3}


def table(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    amount = rng.lognormal(3, 1, rows)
    amount[rng.random(rows) < 0.05] = np.nan
    score = rng.random(rows)
    return pd.DataFrame(
        {
            "amount": amount,
            "age": rng.integers(18, 90, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.6, 0.3, 0.1]),
            "active": rng.choice(["true", "false"], rows),
            "signup": pd.date_range("2020-01-01", periods=rows, freq="h").astype(str),
            "constant": np.ones(rows),
            PREDICTION_COLUMN: np.where(score > 0.5, "yes", "no"),
            f"{SCORE_PREFIX}no": 1 - score,
            f"{SCORE_PREFIX}yes": score,
        }
    )


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference.from_sample(table(np.random.default_rng(0), 5_000), SIGNATURE, IMPORTANCE)


def by_test(report_tests: tuple[TestResult, ...], feature: str) -> dict[str, TestResult]:
    return {t.test: t for t in report_tests if t.feature == feature}


def test_unchanged_window_every_column_reported_nothing_flagged(reference: Reference) -> None:
    report = analyse(reference, table(np.random.default_rng(1), 1_000))
    assert not report.dataset_drift and report.drifted_columns == ()
    assert by_test(report.tests, "amount").keys() == {"missing", "ks", "psi"}
    assert by_test(report.tests, "plan").keys() == {"missing", "chi2"}
    assert by_test(report.tests, "active").keys() == {"missing", "ks", "psi"}  # text booleans
    assert by_test(report.tests, "signup").keys() == {"missing"}  # datetimes: missingness only
    assert by_test(report.tests, "constant").keys() == {"missing", "ks", "psi"}  # unused: reported
    assert by_test(report.tests, PREDICTION_COLUMN).keys() == {"chi2"}
    assert by_test(report.tests, f"{SCORE_PREFIX}yes").keys() == {"ks", "psi"}
    assert report.n_columns == 6 and report.n_window == 1_000 and report.n_reference == 5_000
    assert report.multivariate is not None and report.multivariate.test == "domain_classifier"


def test_a_constant_unused_column_that_varies_is_flagged_but_weighs_nothing(
    reference: Reference,
) -> None:
    window = table(np.random.default_rng(2), 1_000)
    window["constant"] = np.random.default_rng(2).normal(1, 0.5, 1_000)
    report = analyse(reference, window, DriftSettings(multivariate=False))
    assert report.drifted_columns == ("constant",)
    assert report.drift_share == 0.0 and not report.dataset_drift


def test_an_important_column_drifting_makes_the_dataset_drift(reference: Reference) -> None:
    window = table(np.random.default_rng(3), 1_000)
    window["amount"] = window["amount"] * 1.5
    report = analyse(reference, window, DriftSettings(multivariate=False))
    assert report.drifted_columns == ("amount",)
    assert report.drift_share == pytest.approx(0.5) and report.dataset_drift  # 0.5 / 1.0
    tests = by_test(report.tests, "amount")
    assert tests["ks"].drift and tests["psi"].drift and not tests["missing"].drift


def test_all_missing_window_column_is_flagged_by_its_missing_rate(reference: Reference) -> None:
    window = table(np.random.default_rng(4), 1_000)
    window["amount"] = np.nan
    report = analyse(reference, window, DriftSettings(multivariate=False))
    tests = by_test(report.tests, "amount")
    assert tests.keys() == {"missing"} and tests["missing"].drift
    assert report.drifted_columns == ("amount",)


def test_windows_without_predictions_skip_the_prediction_tests(reference: Reference) -> None:
    window = table(np.random.default_rng(5), 500).iloc[:, :6]
    report = analyse(reference, window, DriftSettings(multivariate=False))
    assert {t.feature for t in report.tests} == {c.name for c in SIGNATURE.columns}
    assert not report.prediction_drift


def test_prediction_drift_is_reported_apart_from_the_inputs(reference: Reference) -> None:
    window = table(np.random.default_rng(6), 1_000)
    window[f"{SCORE_PREFIX}yes"] = window[f"{SCORE_PREFIX}yes"] ** 0.5
    report = analyse(reference, window, DriftSettings(multivariate=False))
    assert report.prediction_drift and report.drifted_columns == ()


def test_empty_window_and_missing_columns_are_refused_by_name(reference: Reference) -> None:
    window = table(np.random.default_rng(7), 10)
    with pytest.raises(ValueError, match="drift window: expected at least one row, got 0"):
        analyse(reference, window.iloc[:0])
    with pytest.raises(ValueError, match=r"missing \['plan'\]"):
        analyse(reference, window.drop(columns="plan"))
    with pytest.raises(ValueError, match="at least one row"):
        Reference.from_sample(window.iloc[:0], SIGNATURE, IMPORTANCE)


def test_report_as_dict_is_json_ready_with_the_agreed_keys(reference: Reference) -> None:
    report = analyse(reference, table(np.random.default_rng(8), 300))
    data = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert set(data["tests"][0]) == {
        "feature",
        "test",
        "statistic",
        "p_value",
        "effect_size",
        "drift",
    }
    assert data["n_drifted"] == len(data["drifted_columns"]) and data["n_window"] == 300


def test_analyse_is_seeded_and_pure(reference: Reference) -> None:
    window = table(np.random.default_rng(9), 800)
    before = window.copy()
    assert analyse(reference, window, seed=3) == analyse(reference, window, seed=3)
    pd.testing.assert_frame_equal(window, before)


def test_regression_tests_the_predicted_value_as_a_number() -> None:
    signature = Signature([ColumnSpec("x", "numeric", nullable=False)], "y", "regression")
    rng = np.random.default_rng(10)
    sample = pd.DataFrame({"x": rng.normal(size=2_000), PREDICTION_COLUMN: rng.normal(size=2_000)})
    reference = Reference.from_sample(sample, signature, {"x": 1.0})
    window = pd.DataFrame({"x": rng.normal(size=500), PREDICTION_COLUMN: rng.normal(2, 1, 500)})
    report = analyse(reference, window, DriftSettings(multivariate=False))
    assert by_test(report.tests, PREDICTION_COLUMN)["ks"].drift and report.prediction_drift


def test_importance_weights_keep_the_positive_part_and_unused_columns_weigh_nothing() -> None:
    weights = importance_weights(SIGNATURE, {"amount": 0.6, "age": -0.1, "constant": 5.0})
    assert weights == pytest.approx(
        {"amount": 1.0, "age": 0.0, "plan": 0.0, "active": 0.0, "signup": 0.0, "constant": 0.0}
    )
    equal = importance_weights(SIGNATURE, {})
    assert equal["amount"] == pytest.approx(0.2) and equal["constant"] == 0.0


def test_benjamini_hochberg_keeps_power_that_bonferroni_gives_up() -> None:
    p_values = np.array([0.01, 0.02, 0.03, 0.04, 0.5])
    assert significant(p_values, 0.05, "bh").tolist() == [True, True, True, True, False]
    assert significant(p_values, 0.05, "bonferroni").tolist() == [True, False, False, False, False]


def test_a_column_needs_significance_and_a_material_effect() -> None:
    tests = [
        TestResult("a", "ks", 0.2, 1e-9, 0.05),  # real but small: Wasserstein and PSI low
        TestResult("a", "psi", 0.02, None, 0.02),
        TestResult("b", "ks", 0.2, 1e-9, 0.05),  # real, small in units, but PSI is high
        TestResult("b", "psi", 0.3, None, 0.3),
        TestResult("c", "chi2", 9.0, 0.2, 0.5),  # large but not significant
        TestResult("d", "missing", 12.0, 1e-12, 0.3),
    ]
    decided = {(t.feature, t.test): t.drift for t in decide(tests, DriftSettings())}
    assert decided == {
        ("a", "ks"): False,
        ("a", "psi"): False,
        ("b", "ks"): True,
        ("b", "psi"): True,
        ("c", "chi2"): False,
        ("d", "missing"): True,
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"alpha": 0.0}, "'alpha'"),
        ({"correction": "holm"}, "'correction'"),
        ({"share_threshold": -0.1}, "'share_threshold'"),
    ],
)
def test_settings_are_validated(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftSettings(**change)
