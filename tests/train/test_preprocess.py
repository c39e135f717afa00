"""The preprocessing pipeline serves what it trained on and tolerates what clients send."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from mlcanary.train.preprocess import build_preprocessor
from mlcanary.train.schema import infer_signature


def table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "cat": rng.choice(["a", "b", "c"], n),
            "many": rng.choice([f"k{i}" for i in range(40)], n),
            "flag": rng.choice(["yes", "no"], n),
            "day": pd.date_range("2024-01-01", periods=n, freq="13h").strftime("%Y-%m-%d %H:%M"),
            "y": rng.integers(0, 2, n),
        }
    )
    frame.loc[::7, "num"] = np.nan
    frame.loc[::11, "cat"] = None
    return frame


def fitted(frame: pd.DataFrame) -> Pipeline:
    sig = infer_signature(frame, "y", "classification")
    prep = build_preprocessor(sig, scale=True, max_onehot=20)
    return Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(
        frame.drop(columns="y"), frame["y"]
    )


def test_high_cardinality_is_target_encoded_low_is_one_hot() -> None:
    pipe = fitted(table())
    names = list(pipe[0].get_feature_names_out())
    assert sum(n.startswith("onehot__cat_") for n in names) == 3
    assert [n for n in names if n.startswith("target__")] == ["target__many"]
    assert "num__missingindicator_num" in names
    assert any(n.startswith("cat_missing__") for n in names)
    assert any(".hour" in n for n in names)


def test_unseen_categories_and_new_gaps_are_served() -> None:
    frame = table()
    pipe = fitted(frame)
    rows = frame.drop(columns="y").head(4).copy()
    rows["cat"] = ["zzz", None, "a", "new"]
    rows["many"] = ["never-seen", "k1", None, "k2"]
    rows["flag"] = [None, "yes", "no", "yes"]
    rows["day"] = [None, "2030-12-31 23:00", "2024-02-01 10:00", "not a date"]
    proba = pipe.predict_proba(rows)
    assert proba.shape == (4, 2) and np.isfinite(proba).all()


def test_predict_does_not_mutate_input_and_batches_equal_rows() -> None:
    frame = table()
    pipe = fitted(frame)
    X = frame.drop(columns="y")
    before = X.copy()
    batched = pipe.predict_proba(X)
    pd.testing.assert_frame_equal(X, before)
    one_by_one = np.vstack([pipe.predict_proba(X.iloc[[i]]) for i in range(0, len(X), 37)])
    np.testing.assert_allclose(one_by_one, batched[::37], rtol=0, atol=1e-12)
