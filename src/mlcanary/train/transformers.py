"""Small scikit-learn transformers the preprocessing pipeline needs and sklearn lacks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from mlcanary.columns import calendar_columns, number_column


def _frame(X: Any) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)


class ToFloat(TransformerMixin, BaseEstimator):
    """Numbers, booleans and their text forms as float64; anything else becomes NaN."""

    def fit(self, X: Any, y: Any = None) -> ToFloat:
        self.n_features_in_ = _frame(X).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = _frame(X)
        out = np.empty(frame.shape, dtype=np.float64)
        for j in range(frame.shape[1]):
            out[:, j] = number_column(frame.iloc[:, j])
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


class AsText(TransformerMixin, BaseEstimator):
    """Categories as Python strings (so 1 and '1' are one category); missing stays NaN."""

    def fit(self, X: Any, y: Any = None) -> AsText:
        self.n_features_in_ = _frame(X).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = _frame(X)
        missing = pd.isna(frame).to_numpy()
        out = frame.to_numpy(dtype=object).astype(str).astype(object)
        out[missing] = np.nan
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


class DatetimeParts(TransformerMixin, BaseEstimator):
    """Expand one datetime column into calendar parts (month, day of week, ...)."""

    def __init__(self, parts: tuple[str, ...] = ("month", "day_of_week")) -> None:
        self.parts = parts

    def fit(self, X: Any, y: Any = None) -> DatetimeParts:
        self.n_features_in_ = _frame(X).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = _frame(X)
        blocks: list[np.ndarray] = []
        for j in range(frame.shape[1]):
            blocks.extend(calendar_columns(frame.iloc[:, j], self.parts))
        return np.column_stack(blocks) if blocks else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = list(input_features) if input_features is not None else ["x0"]
        return np.asarray([f"{n}.{p}" for n in names for p in self.parts], dtype=object)
