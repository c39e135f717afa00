"""Runtimes: what turns a validated table into predictions, behind one small interface.

The native runtime is the fitted scikit-learn / LightGBM pipeline itself; ``compiled``,
``onnx`` and ``jit`` are faster ways to the same answer, and ``choice`` picks among them.
Every runtime answers ``predict(rows) -> Prediction`` and must give the same answer for a
batch as for its rows one by one (the contract tests check it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pandas.core.arrays.masked import BaseMaskedArray

from mlcanary.signature import Signature


@dataclass(frozen=True)
class Prediction:
    """Labels or values per row, and class probabilities for classifiers."""

    predicted: np.ndarray
    proba: np.ndarray | None


Rows = pd.DataFrame | Mapping[str, Any]
"""A batch: a DataFrame, or one array per signature column (what validation gives)."""


class Unsupported(Exception):
    """A pipeline step a runtime cannot serve; another runtime serves instead."""


class Runtime(Protocol):
    kind: str

    def predict(self, rows: Rows) -> Prediction: ...


class NativeRuntime:
    """The fitted pipeline itself. Binary classifiers decide at the registered threshold.

    Probabilities are computed once and the decision is taken from them, rather than
    calling ``predict`` (which would run the pipeline a second time).
    """

    kind = "native"

    def __init__(self, pipeline: Any, signature: Signature) -> None:
        self.signature = signature
        self.threshold: float | None = getattr(pipeline, "threshold", None)
        self.model = pipeline.estimator.estimator if self.threshold is not None else pipeline
        classes = signature.classes
        self.classes = np.asarray(classes, dtype=object) if classes is not None else None
        if classes is not None and all(isinstance(c, int | np.integer) for c in classes):
            self.classes = np.asarray(classes, dtype=np.int64)

    def predict(self, rows: Rows) -> Prediction:
        if not isinstance(rows, pd.DataFrame):
            rows = pd.DataFrame(rows, copy=False)
        if self.classes is None:
            return Prediction(np.asarray(self.model.predict(rows), dtype=np.float64), None)
        proba = np.asarray(self.model.predict_proba(rows), dtype=np.float64)
        return decide(proba, self.classes, self.threshold)


def decide(proba: np.ndarray, classes: np.ndarray, threshold: float | None) -> Prediction:
    """Labels from class probabilities: the registered threshold for binary, else argmax."""
    if threshold is not None:
        index = (proba[:, 1] >= threshold).astype(np.intp)
    else:
        index = proba.argmax(axis=1)
    return Prediction(classes[index], proba)


class LoneRows:
    """A runtime that sends one-row batches of validated columns to ``row`` and every other
    batch to ``batches`` (whose kind it reports)."""

    def __init__(self, batches: Runtime, row: Runtime, first_column: str) -> None:
        self.batches = batches
        self.row = row
        self.first_column = first_column
        self.kind = batches.kind
        self.threshold = getattr(batches, "threshold", None)

    def predict(self, rows: Rows) -> Prediction:
        if not isinstance(rows, pd.DataFrame) and len(rows[self.first_column]) == 1:
            return self.row.predict(rows)
        return self.batches.predict(rows)


_PLAIN = {np.ndarray}
NAN = float("nan")


def row_numbers(data: Sequence[Any]) -> list[float] | None:
    """The value of each validated numeric column of one row as a Python number (NaN in a
    gap); None if a column is of another form."""
    if set(map(type, data)) == _PLAIN:  # numbers, or integers and booleans without gaps
        return [column.item(0) for column in data]
    values = []
    for column in data:
        if type(column) is np.ndarray:
            values.append(column.item(0))
        elif isinstance(column, BaseMaskedArray):
            masked: Any = column  # pandas types neither attribute
            values.append(NAN if masked._mask.item(0) else masked._data.item(0))
        else:
            return None
    return values
