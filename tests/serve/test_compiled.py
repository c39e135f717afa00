"""The compiled runtime reproduces the native pipeline, or steps aside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris

from mlcanary.config import Settings
from mlcanary.demo import make_churn
from mlcanary.serve.batch import tensors_from_frame
from mlcanary.serve.compiled import CompiledRuntime, Unsupported, verified
from mlcanary.serve.runtime import NativeRuntime
from mlcanary.serve.validation import columns_from_tensors
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
    "diabetes-lightgbm": (lambda: load_diabetes(as_frame=True).frame, "target", "lightgbm"),
    "diabetes-ridge": (lambda: load_diabetes(as_frame=True).frame, "target", "logistic"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_equals_native_on_fresh_rows(case: str, tmp_path: Path) -> None:
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
    native = NativeRuntime(result.pipeline, result.signature).predict(rows)
    compiled = CompiledRuntime(result.pipeline, result.signature).predict(rows)
    expected = native.proba if native.proba is not None else native.predicted
    got = compiled.proba if compiled.proba is not None else compiled.predicted
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(compiled.predicted, native.predicted)
    # The server hands validated columns, not a DataFrame: same answer.
    tensors = tensors_from_frame(clean, result.signature)
    columns = columns_from_tensors(tensors, result.signature)
    from_columns = CompiledRuntime(result.pipeline, result.signature).predict(columns)
    native_columns = NativeRuntime(result.pipeline, result.signature).predict(columns)
    np.testing.assert_array_equal(from_columns.predicted, native_columns.predicted)
    a = from_columns.proba if from_columns.proba is not None else from_columns.predicted
    b = native_columns.proba if native_columns.proba is not None else native_columns.predicted
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_unsupported_estimators_keep_the_native_runtime(tmp_path: Path) -> None:
    frame = load_iris(as_frame=True).frame
    result = fitted(tmp_path, frame, "target", "random-forest")
    with pytest.raises(Unsupported, match="RandomForestClassifier"):
        CompiledRuntime(result.pipeline, result.signature)
    runtime, why = verified(result.pipeline, result.signature, frame.drop(columns="target"))
    assert isinstance(runtime, NativeRuntime) and "RandomForestClassifier" in why
