"""The compiled runtime: the fitted pipeline re-expressed as NumPy array code.

scikit-learn's ColumnTransformer spends ~1.7 ms on one row (pandas indexing, validation,
per-step overhead) and LightGBM's scikit-learn wrapper another ~0.3 ms, while the work
itself is a few microseconds: median imputation is ``where``, one-hot and target
encoding are dictionary lookups, the model is ``Booster.predict``. This runtime reads
the fitted parameters out of each step once, at load, and applies them with NumPy.

Only steps it knows are compiled; anything else raises ``Unsupported`` and the server
keeps another runtime. A compiled runtime is used only after it reproduces the
native pipeline's scores on the version's reference sample (max abs difference
``TOLERANCE``, see ``choice``): it is an optimisation, never a second opinion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from mlcanary.dates import DateCache
from mlcanary.models.runtime import NativeRuntime, Prediction, Rows, decide
from mlcanary.serve.runtime import Unsupported, float_column
from mlcanary.signature import Signature
from mlcanary.train.estimators import EarlyStoppedLGBMClassifier, EarlyStoppedLGBMRegressor
from mlcanary.train.transformers import AsText, DatetimeParts, ToFloat

TOLERANCE = 1e-9

Block = Callable[[Rows], np.ndarray]
"""Raw rows -> one block of model features (n, k)."""


class CompiledRuntime:
    """Preprocessing as NumPy, the model as its booster or coefficients."""

    kind = "compiled"

    def __init__(self, pipeline: Any, signature: Signature) -> None:
        native, model = unwrap(pipeline, signature)
        self.threshold = native.threshold
        self.classes = native.classes
        self.blocks = [
            _branch(steps, cols, signature.date_cache())
            for _, steps, cols in model[0].transformers_ if steps != "drop"
        ]
        self.score = _estimator(model[-1])

    def features(self, rows: Rows) -> np.ndarray:
        blocks = [block(rows) for block in self.blocks]
        return np.hstack(blocks) if len(blocks) > 1 else blocks[0]

    def predict(self, rows: Rows) -> Prediction:
        out = self.score(self.features(rows))
        if self.classes is None:
            return Prediction(out, None)
        return decide(out, self.classes, self.threshold)


def unwrap(pipeline: Any, signature: Signature) -> tuple[NativeRuntime, Pipeline]:
    """The native runtime (threshold, classes) and its ColumnTransformer -> model pipeline;
    ``Unsupported`` for any other shape."""
    native = NativeRuntime(pipeline, signature)
    model = native.model
    if not isinstance(model, Pipeline) or not isinstance(model[0], ColumnTransformer):
        raise Unsupported("not a ColumnTransformer pipeline")
    return native, model


# -- preprocessing --------------------------------------------------------------------------


def _branch(steps: Any, columns: list[str], dates: DateCache) -> Block:
    """Compile one ColumnTransformer branch: a chain of array functions over its columns."""
    chain = list(steps.steps) if isinstance(steps, Pipeline) else [("only", steps)]
    first = chain[0][1]
    if isinstance(first, ToFloat):
        source: Block = lambda rows: _floats(rows, columns)  # noqa: E731
    elif isinstance(first, AsText):
        source = lambda rows: _texts(rows, columns)  # noqa: E731
    elif isinstance(first, DatetimeParts):
        parts = first.parts
        source = lambda rows: np.hstack(  # noqa: E731
            [dates.calendar_parts(rows[name], parts) for name in columns])
    else:
        raise Unsupported(f"step {type(first).__name__}")
    funcs = [_step(step) for _, step in chain[1:]]

    def block(rows: Rows) -> np.ndarray:
        values = source(rows)
        for func in funcs:
            values = func(values)
        return np.asarray(values, dtype=np.float64)

    return block


def _step(step: Any) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(step, SimpleImputer):
        return _imputer(step)
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else 0.0
        scale = step.scale_ if step.with_std else 1.0
        return lambda X: (X - mean) / scale
    if isinstance(step, OneHotEncoder):
        return _onehot(step)
    if isinstance(step, TargetEncoder):
        return _target(step)
    if isinstance(step, MissingIndicator):
        features = step.features_
        return lambda X: _missing(X)[:, features].astype(np.float64)
    raise Unsupported(f"step {type(step).__name__}")


def _imputer(step: SimpleImputer) -> Callable[[np.ndarray], np.ndarray]:
    fill = step.statistics_
    features = step.indicator_.features_ if step.add_indicator else None

    def impute(X: np.ndarray) -> np.ndarray:
        missing = _missing(X)
        filled = np.where(missing, fill, X)
        if features is None:
            return filled
        indicators = missing[:, features].astype(np.float64)
        return np.hstack([filled.astype(np.float64), indicators])

    if fill.dtype == object:  # text columns: no indicator branch is compiled here
        if step.add_indicator:
            raise Unsupported("missing indicators on text columns")
        return lambda X: np.where(_missing(X), fill, X)
    return impute


def _onehot(step: OneHotEncoder) -> Callable[[np.ndarray], np.ndarray]:
    if step.drop_idx_ is not None or step.handle_unknown != "ignore":
        raise Unsupported("one-hot encoder with drop or unknown-category errors")
    lookups = [{str(c): i for i, c in enumerate(cats)} for cats in step.categories_]
    widths = [len(cats) for cats in step.categories_]
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(int)

    def encode(X: np.ndarray) -> np.ndarray:
        out = np.zeros((X.shape[0], int(sum(widths))))
        for j, lookup in enumerate(lookups):
            for i, value in enumerate(X[:, j].tolist()):
                k = lookup.get(value)
                if k is not None:
                    out[i, offsets[j] + k] = 1.0
        return out

    return encode


def _target(step: TargetEncoder) -> Callable[[np.ndarray], np.ndarray]:
    n_features = len(step.categories_)
    per_feature = len(step.encodings_) // n_features
    lookups = [{str(c): i for i, c in enumerate(cats)} for cats in step.categories_]
    defaults = np.atleast_1d(step.target_mean_)

    def encode(X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], n_features * per_feature))
        for j, lookup in enumerate(lookups):
            index = np.array([lookup.get(v, -1) for v in X[:, j].tolist()])
            for k in range(per_feature):
                table = step.encodings_[j * per_feature + k]
                column = table[np.maximum(index, 0)]
                out[:, j * per_feature + k] = np.where(index >= 0, column, defaults[k])
        return out

    return encode


def _floats(rows: Rows, columns: list[str]) -> np.ndarray:
    if not isinstance(rows, pd.DataFrame):
        return np.column_stack([float_column(rows[name]) for name in columns])
    selected = rows[columns]
    if all(dtype.kind == "f" for dtype in selected.dtypes):  # the common case, in one copy
        return selected.to_numpy(dtype=np.float64)
    out = np.empty((len(rows), len(columns)))
    for j, name in enumerate(columns):
        column = rows[name]
        if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
            out[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:  # text forms of booleans and numbers, exactly as ToFloat reads them
            out[:, j] = ToFloat().fit(rows[[name]]).transform(rows[[name]])[:, 0]
    return out


def _texts(rows: Rows, columns: list[str]) -> np.ndarray:
    if not isinstance(rows, pd.DataFrame):
        data = [rows[name] for name in columns]
        if all(type(v) is np.ndarray and v.dtype == object for v in data):
            # validated text: str, or None where missing (which ``_missing`` reads as such)
            out = np.empty((len(data[0]), len(columns)), dtype=object)
            for j, values in enumerate(data):
                out[:, j] = values
            return out
    frame = _frame(rows, columns)
    return np.asarray(AsText().fit(frame).transform(frame))




def _frame(rows: Rows, columns: list[str]) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows[columns]
    return pd.DataFrame({name: rows[name] for name in columns}, copy=False)


def _missing(X: np.ndarray) -> np.ndarray:
    if X.dtype == object:
        return np.asarray(pd.isna(X))
    return np.asarray(np.isnan(X))


# -- estimators ------------------------------------------------------------------------------

ONE_THREAD = 4096
"""LightGBM predicts batches up to this many rows on one thread (on every core beyond): on a
small batch its OpenMP threads wait for each other longer than the trees take."""


def lightgbm_scores(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The booster's public ``predict`` up to its early-stopped iteration: float64 features
    in, as the native pipeline gives LightGBM, so scores are the native ones."""
    booster, iterations = model.model_.booster_, model.n_estimators_

    def predict(X: np.ndarray) -> np.ndarray:
        threads = 1 if len(X) <= ONE_THREAD else 0  # 0: LightGBM's default, every core
        return np.asarray(booster.predict(X, num_iteration=iterations, num_threads=threads))

    return predict



def _estimator(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(model, EarlyStoppedLGBMClassifier):
        trees = lightgbm_scores(model)
        prior = model.prior_

        def classify(X: np.ndarray) -> np.ndarray:
            raw = trees(X)
            proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
            if prior is not None:
                proba = proba * prior
                proba = proba / proba.sum(axis=1, keepdims=True)
            return proba

        return classify
    if isinstance(model, EarlyStoppedLGBMRegressor):
        return lightgbm_scores(model)
    if isinstance(model, LogisticRegression):
        coef, intercept = model.coef_, model.intercept_

        def logistic(X: np.ndarray) -> np.ndarray:
            z = X @ coef.T + intercept
            if z.shape[1] == 1:
                p = 1.0 / (1.0 + np.exp(-z[:, 0]))
                return np.column_stack([1.0 - p, p])
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return np.asarray(e / e.sum(axis=1, keepdims=True))

        return logistic
    if isinstance(model, Ridge):
        coef, intercept = model.coef_, model.intercept_
        return lambda X: X @ coef + intercept
    raise Unsupported(f"estimator {type(model).__name__}")
