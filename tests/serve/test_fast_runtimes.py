"""The compiled and ONNX runtimes reproduce the native pipeline, or step aside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris, make_classification

from mlcanary.config import Settings
from mlcanary.demo import make_churn
from mlcanary.models.runtime import NativeRuntime, Prediction
from mlcanary.serve.choice import choose
from mlcanary.serve.compiled import ONE_THREAD, CompiledRuntime, lightgbm_scores, unwrap
from mlcanary.serve.onnx import OnnxRuntime, _float_input
from mlcanary.serve.runtime import Unsupported, float_column, one_number_row
from mlcanary.serve.validation import columns_from_frame
from mlcanary.train.fit import TrainResult, train
from mlcanary.train.spec import TrainSpec


def fitted(tmp_path: Path, frame: pd.DataFrame, target: str, model: str) -> TrainResult:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    spec = TrainSpec.parse(data=path, target=target, model=model, folds=3)
    return train(spec, Settings(home=tmp_path / "home"))


CASES = {
    "churn-lightgbm": (lambda: make_churn(1500, seed=3), "churned", "lightgbm"),
    "churn-logistic": (lambda: make_churn(1500, seed=3), "churned", "logistic"),
    "iris-lightgbm": (lambda: load_iris(as_frame=True).frame, "target", "lightgbm"),
    "iris-logistic": (lambda: load_iris(as_frame=True).frame, "target", "logistic"),
    "iris-names-lightgbm": (lambda: named_iris(), "species", "lightgbm"),
    "skewed-3-classes-lightgbm": (lambda: skewed_classes(), "target", "lightgbm"),
    "diabetes-lightgbm": (lambda: load_diabetes(as_frame=True).frame, "target", "lightgbm"),
    "diabetes-ridge": (lambda: load_diabetes(as_frame=True).frame, "target", "logistic"),
}


def gapped(columns: dict[str, object]) -> dict[str, object]:
    """Validated churn columns with a gap of every kind (text, date, integer, boolean,
    number), as the "treat unseen as missing" policy and nullable columns make them."""
    out: dict[str, object] = dict(columns)
    for name, step in (("plan", 7), ("city", 3), ("signup_date", 11)):
        texts = np.array(columns[name], dtype=object)
        texts[::step] = None
        out[name] = texts
    for name, dtype, step in (("tenure_months", "Int64", 5), ("autopay", "boolean", 4)):
        values = pd.array(columns[name], dtype=dtype)
        values[::step] = None
        out[name] = values
    charges = np.array(columns["monthly_charges"], dtype=np.float64)
    charges[::6] = np.nan
    out["monthly_charges"] = charges
    return out


def named_iris() -> pd.DataFrame:
    """Iris with the species as text: labels that are strings, not class indices."""
    iris = load_iris(as_frame=True)
    names = np.asarray(iris.target_names)[iris.frame["target"]]
    return iris.frame.drop(columns="target").assign(species=names)


def skewed_classes() -> pd.DataFrame:
    """Three classes in proportions 70/22/8: a reweighted model with a prior far from flat."""
    X, y = make_classification(
        1200, 6, n_informative=4, n_classes=3, weights=[0.7, 0.22, 0.08], random_state=5
    )
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]).assign(target=y)


FAST = {"compiled": (CompiledRuntime, 1e-9), "onnx": (OnnxRuntime.convert, 1e-5)}


def scores(prediction: Prediction) -> np.ndarray:
    return prediction.proba if prediction.proba is not None else prediction.predicted


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_runtimes_equal_native_on_fresh_rows(case: str, tmp_path: Path) -> None:
    make, target, model = CASES[case]
    frame = make()
    result = fitted(tmp_path, frame, target, model)
    rows = clean = frame.drop(columns=[target])
    if case.startswith("churn"):  # rows the model never saw, with gaps and unseen values
        rows = make_churn(300, seed=99).drop(columns=[target])
        clean = rows.copy()
        rows.loc[::7, "plan"] = "platinum"
        rows.loc[::5, "monthly_charges"] = np.nan
        rows.loc[::11, "signup_date"] = None
    native = NativeRuntime(result.pipeline, result.signature)
    # The server hands validated columns, not a DataFrame: both must give the same answer.
    columns = columns_from_frame(clean, result.signature)
    for kind, (factory, tolerance) in FAST.items():
        fast = factory(result.pipeline, result.signature)
        if kind == "onnx" and result.signature.task == "regression":
            # Float32 trees cannot hold 1e-5 on values in the hundreds: the choice refuses it.
            why = choose(result.pipeline, result.signature, clean, "auto").note
            diff = np.abs(scores(fast.predict(rows)) - scores(native.predict(rows))).max()
            assert diff < 1e-5 or "onnx: differed by" in why, why
            continue
        few = [{name: values[:n] for name, values in columns.items()} for n in (1, 13)]
        if case.startswith("churn"):  # validated columns with gaps; row 0 has one in each
            gappy = gapped(columns)
            few += [gappy, *({name: values[i:i + n] for name, values in gappy.items()}
                             for i, n in ((0, 1), (1, 1), (0, 13)))]
        for batch in (rows, columns, *few):
            want, got = native.predict(batch), fast.predict(batch)
            np.testing.assert_allclose(scores(got), scores(want), rtol=0, atol=tolerance)
            np.testing.assert_array_equal(got.predicted, want.predicted, err_msg=kind)
            assert got.predicted.dtype == want.predicted.dtype, kind
            assert type(got.predicted[0]) is type(want.predicted[0]), kind


def test_unsupported_estimators_keep_the_native_runtime(tmp_path: Path) -> None:
    frame = load_iris(as_frame=True).frame
    result = fitted(tmp_path, frame, "target", "random-forest")
    with pytest.raises(Unsupported, match="RandomForestClassifier"):
        CompiledRuntime(result.pipeline, result.signature)
    with pytest.raises(Unsupported, match="RandomForestClassifier"):
        OnnxRuntime.convert(result.pipeline, result.signature)
    choice = choose(result.pipeline, result.signature, frame.drop(columns="target"))
    assert isinstance(choice.runtime, NativeRuntime) and "RandomForestClassifier" in choice.note


def test_a_forced_runtime_that_cannot_serve_is_refused(tmp_path: Path) -> None:
    frame = load_iris(as_frame=True).frame
    result = fitted(tmp_path, frame, "target", "random-forest")
    with pytest.raises(RuntimeError, match="runtime 'onnx' cannot serve this version"):
        choose(result.pipeline, result.signature, frame.drop(columns="target"), "onnx")


def test_choice_says_which_runtime_serves_and_why(tmp_path: Path) -> None:
    frame = make_churn(1500, seed=3)
    result = fitted(tmp_path, frame, "churned", "lightgbm")
    reference = frame.drop(columns="churned").head(300)
    choice = choose(result.pipeline, result.signature, reference)
    assert choice.runtime.kind == "onnx"
    assert choice.note.startswith("onnx runtime (max abs difference")
    for wanted in ("native", "compiled", "onnx"):
        forced = choose(result.pipeline, result.signature, reference, wanted)
        assert forced.runtime.kind == wanted and forced.note.startswith(f"{wanted} runtime")
    after = choose(result.pipeline, result.signature, reference, "auto", start="compiled")
    assert after.runtime.kind == "compiled"  # a kept choice starts the order where it was


@pytest.mark.parametrize("n", [1, 4, 16, 17, 200])
def test_onnx_float_input_reads_gaps_in_masked_columns_as_the_column_path_does(n: int) -> None:
    def repeat(values: list[object]) -> list[object]:
        return (values * n)[:n]

    rows = {
        "i": pd.array(repeat([1, None, 3, 2**20]), dtype="Int64"),
        "f": np.array(repeat([0.5, np.nan, 2.0, -1.0])),
        "b": pd.array(repeat([True, None, False, True]), dtype="boolean"),
        "g": pd.array(repeat([4, 5, 6, 7]), dtype="Int64"),
    }
    names = list(rows)
    got = _float_input(rows, names)  # one row per column: the graph transposes it
    want = np.array([float_column(rows[name]) for name in names], dtype=np.float32)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == (4, n)
    if n > 1:
        assert np.isnan(got[[0, 1, 2], 1]).all() and not np.isnan(got[3]).any()
    one = one_number_row({name: values[:1] for name, values in rows.items()}, names, np.float32)
    assert one is not None
    np.testing.assert_array_equal(one, want[:, :1])
    assert one.dtype == np.float32 and one.flags.c_contiguous and one.shape == (4, 1)


def test_lightgbm_trees_give_the_boosters_scores_on_one_thread_and_on_all(
    tmp_path: Path,
) -> None:
    frame = load_diabetes(as_frame=True).frame
    result = fitted(tmp_path, frame, "target", "lightgbm")
    model = unwrap(result.pipeline, result.signature)[1][-1]
    booster, n = model.model_.booster_, model.n_estimators_
    trees = lightgbm_scores(model)
    rng = np.random.default_rng(0)
    for rows in (1, 64, ONE_THREAD + 500):  # the last on every core
        X = rng.normal(size=(rows, booster.num_feature()))
        np.testing.assert_array_equal(trees(X), booster.predict(X, num_iteration=n))
