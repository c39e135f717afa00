"""The jit runtime: LightGBM's own answers, row by row and batch by batch, or it steps aside."""

from __future__ import annotations

import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from mlcanary.demo import make_churn
from mlcanary.models.runtime import NativeRuntime
from mlcanary.serve import compiled, kernels
from mlcanary.serve.choice import choose
from mlcanary.serve.forest import IDENTITY, Forest
from mlcanary.serve.jit import JitRuntime, _texts
from mlcanary.serve.onnx import OnnxRuntime
from mlcanary.serve.runtime import LoneRows, Unsupported
from mlcanary.serve.validation import columns_from_frame
from tests.serve.test_fast_runtimes import CASES, fitted, gapped, scores

LIGHTGBM = sorted(case for case in CASES if case.endswith("-lightgbm"))


@pytest.mark.parametrize("case", LIGHTGBM)
def test_the_jit_runtime_gives_the_native_answer_row_by_row(case: str, tmp_path: Path) -> None:
    make, target, model = CASES[case]
    frame = make()
    result = fitted(tmp_path, frame, target, model)
    fresh = make_churn(120, seed=99) if case.startswith("churn") else frame.sample(
        120, random_state=4)
    columns = columns_from_frame(fresh.drop(columns=[target]), result.signature)
    native = NativeRuntime(result.pipeline, result.signature)
    jit = JitRuntime(result.pipeline, result.signature)
    batches = [columns]
    if case.startswith("churn"):  # a gap of every kind: imputed, indicated, encoded
        batches.append(gapped(columns))
        unseen = dict(columns)  # categories training never saw (one-hot: none; target: mean)
        for spec in result.signature.columns:
            if spec.kind == "categorical":
                texts = np.array(columns[spec.name], dtype=object)
                texts[::4] = "never seen"
                unseen[spec.name] = texts
        batches.append(unseen)
    for batch in batches:
        want = native.predict(batch)
        for i in range(len(want.predicted)):
            got = jit.predict({name: values[i:i + 1] for name, values in batch.items()})
            np.testing.assert_allclose(scores(got), scores(want)[i:i + 1], rtol=0,
                                       atol=compiled.TOLERANCE, err_msg=f"row {i}")
            np.testing.assert_array_equal(got.predicted, want.predicted[i:i + 1])
            assert got.predicted.dtype == want.predicted.dtype
            assert type(got.predicted[0]) is type(want.predicted[0])
            assert scores(got).shape == scores(want)[i:i + 1].shape
    # every batch above went through one compiled signature: none was compiled mid-request
    assert len(kernels.predict.signatures) == 1


def walk(forest: Forest, X: np.ndarray, transform: int) -> np.ndarray:
    """The trees alone on features ``X``: a program that passes each column through."""
    n, k = X.shape
    ops = np.array([[kernels.FILL, j, kernels.NUMBERS] for j in range(k)], dtype=np.int64)
    scores, _ = kernels.predict(
        np.ascontiguousarray(X.T), np.empty((0, 0)), np.empty((0, 0), dtype=np.int64), n,
        ops, np.full(k, np.nan), np.empty(0, dtype=np.int64), np.empty(0),  # NaN stays NaN
        forest.values, forest.links, forest.flags, forest.roots, forest.plain, forest.per,
        transform, forest.sigmoid, np.empty(0), np.nan,
    )
    return np.asarray(scores)


def training_table(gaps: str, rng: np.random.Generator) -> np.ndarray:
    X = rng.normal(size=(600, 5))
    X[rng.random(X.shape) < 0.2] = 0.0
    if gaps == "nan":
        X[rng.random(X.shape) < 0.15] = np.nan
    return X


OBJECTIVES = {
    "binary": ({"objective": "binary"}, lambda X: (X[:, 0] + X[:, 1] > 0).astype(int)),
    "multiclass": ({"objective": "multiclass", "num_class": 3},
                   lambda X: np.digitize(X[:, 0] - X[:, 2], [-0.5, 0.5])),
    "regression": ({"objective": "regression"}, lambda X: 3 * X[:, 0] - X[:, 3] ** 2),
}
MISSING = {  # how the trees treat gaps: LightGBM's three missing-value types
    "none": ("none", {}),
    "nan": ("nan", {}),
    "zero": ("none", {"zero_as_missing": True}),
}


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("missing", sorted(MISSING))
def test_the_tree_walk_gives_lightgbms_raw_scores_bit_for_bit(objective: str, missing: str
                                                              ) -> None:
    rng = np.random.default_rng(len(objective) * 7 + len(missing))
    params, label = OBJECTIVES[objective]
    gaps, extra = MISSING[missing]
    X = training_table(gaps, rng)
    y = label(np.nan_to_num(X))
    booster = lgb.train({**params, **extra, "verbose": -1, "num_leaves": 15,
                         "min_data_in_leaf": 5}, lgb.Dataset(X, y), num_boost_round=25)
    forest = Forest(booster, 25)
    assert forest.plain == (missing == "none")  # both walks are tested
    # fresh rows with every value the rules single out: NaN, 0, -0, values within
    # LightGBM's zero threshold of 0, and each split's threshold itself and its neighbours
    test = rng.normal(size=(400, 5))
    specials = [np.nan, 0.0, -0.0, 1e-40, -1e-40, 1e-35, -1e-30]
    mask = rng.random(test.shape) < 0.25
    test[mask] = rng.choice(specials, size=int(mask.sum()))
    splits = forest.links[:, 0] >= 0
    for node in np.flatnonzero(splits)[:60]:
        row, threshold = rng.integers(len(test)), forest.values[node]
        feature = forest.links[node, 0]
        test[row, feature] = rng.choice([threshold, np.nextafter(threshold, np.inf),
                                         np.nextafter(threshold, -np.inf)])
    raw = walk(forest, test, IDENTITY)
    want_raw = booster.predict(test, raw_score=True).reshape(len(test), forest.per)
    np.testing.assert_array_equal(raw, want_raw)
    got = walk(forest, test, forest.transform)
    want = booster.predict(test)
    if objective == "binary":
        got = got[:, 1]
    elif objective == "regression":
        got = got[:, 0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


def test_trees_the_walk_does_not_read_exactly_are_refused() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] > 0).astype(int)
    base = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5}
    categories = X.copy()
    categories[:, 1] = rng.integers(0, 6, size=len(X))
    cases = {
        "categorical": (base, lgb.Dataset(categories, (categories[:, 1] % 2).astype(int),
                                          categorical_feature=[1])),
        "linear trees": ({**base, "linear_tree": True}, lgb.Dataset(X, y)),
        "objective 'poisson": ({**base, "objective": "poisson"},
                               lgb.Dataset(X, rng.poisson(2.0, len(X)))),
        "averaged": ({**base, "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.5},
                     lgb.Dataset(X, y)),
    }
    for why, (params, data) in cases.items():
        booster = lgb.train(params, data, num_boost_round=5)
        with pytest.raises(Unsupported, match=why):
            Forest(booster, 5)


def test_text_not_in_validated_form_is_read_as_the_pipeline_reads_it() -> None:
    assert _texts(np.array(["a", None, "b"], dtype=object)) == ["a", None, "b"]
    assert _texts(np.array([1, None, 2.5, "x"], dtype=object)) == ["1", None, "2.5", "x"]
    assert _texts(pd.Series(["a", None], dtype="string")) == ["a", None]


def test_lone_rows_go_to_the_row_runtime_and_the_rest_to_the_batch_runtime(tmp_path: Path
                                                                          ) -> None:
    result = fitted(tmp_path, make_churn(1500, seed=3), "churned", "lightgbm")
    rows = make_churn(20, seed=8).drop(columns=["churned"])
    columns = columns_from_frame(rows, result.signature)
    batches = OnnxRuntime(result.pipeline, result.signature)
    jit = JitRuntime(result.pipeline, result.signature)
    lone = LoneRows(batches, jit, result.signature.columns[0].name)
    assert lone.kind == "onnx" and lone.threshold == batches.threshold
    one = {name: values[:1] for name, values in columns.items()}
    np.testing.assert_array_equal(lone.predict(one).proba, jit.predict(one).proba)
    for batch in (rows.head(1), columns):  # a table of one row, and many rows: batches
        np.testing.assert_array_equal(lone.predict(batch).proba, batches.predict(batch).proba)


def test_the_choice_says_what_serves_lone_rows(tmp_path: Path) -> None:
    frame = make_churn(1500, seed=3)
    reference = frame.drop(columns="churned").head(300)
    for part in ("logistic", "trees"):
        (tmp_path / part).mkdir()
    logistic = fitted(tmp_path / "logistic", frame, "churned", "logistic")
    runtime, why = choose(logistic.pipeline, logistic.signature, reference)
    assert "jit: not available (estimator LogisticRegression)" in why
    assert why.endswith(f"lone rows: {runtime.kind} (jit not available (estimator "
                        "LogisticRegression))"), why
    trees = fitted(tmp_path / "trees", frame, "churned", "lightgbm")
    runtime, why = choose(trees.pipeline, trees.signature, reference)
    # which is faster here is the machine's business; whichever it is, the note says
    if isinstance(runtime, JitRuntime):
        assert why.startswith("jit runtime") and why.endswith("; lone rows: jit"), why
    elif isinstance(runtime, LoneRows):
        assert "lone rows: jit (" in why and "faster a request than" in why, why
    else:
        assert "(jit " in why and "slower a request)" in why, why
    forced, note = choose(trees.pipeline, trees.signature, reference, "onnx")
    assert isinstance(forced, OnnxRuntime) and "lone rows" not in note
    forced, note = choose(trees.pipeline, trees.signature, reference, "jit")
    assert isinstance(forced, JitRuntime) and note.startswith("jit runtime (jit: max abs")


def test_without_numba_the_other_runtimes_serve(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    frame = make_churn(1500, seed=3)
    result = fitted(tmp_path, frame, "churned", "lightgbm")
    monkeypatch.setitem(sys.modules, "mlcanary.serve.jit", None)  # import fails, as without
    runtime, why = choose(result.pipeline, result.signature,
                          frame.drop(columns="churned").head(300))
    assert runtime.kind in ("onnx", "compiled") and not isinstance(runtime, LoneRows)
    failure = ("not available (cannot import it: ModuleNotFoundError: import of "
               "mlcanary.serve.jit halted; None in sys.modules)")
    assert f"jit: {failure}" in why, why
    assert why.endswith(f"lone rows: {runtime.kind} (jit {failure})"), why
