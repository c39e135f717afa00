"""What a model answers: ``Prediction``, the ``Runtime`` interface every way of predicting
shares, and the native runtime (the fitted pipeline itself)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mlcanary.signature import Signature


@dataclass(frozen=True)
class Prediction:
    """Labels or values per row, and class probabilities for classifiers."""

    predicted: np.ndarray
    proba: np.ndarray | None


Rows = pd.DataFrame | Mapping[str, Any]
"""A batch: a DataFrame, or one array per signature column (what validation gives)."""


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
        self.classes = class_labels(signature)

    def predict(self, rows: Rows) -> Prediction:
        if not isinstance(rows, pd.DataFrame):
            rows = pd.DataFrame(rows, copy=False)
        if self.classes is None:
            return Prediction(np.asarray(self.model.predict(rows), dtype=np.float64), None)
        proba = np.asarray(self.model.predict_proba(rows), dtype=np.float64)
        return decide(proba, self.classes, self.threshold)


def class_labels(signature: Signature) -> np.ndarray | None:
    """The signature's classes as an array labels are looked up in (integers as int64, so
    labels keep their type); None for a regressor."""
    classes = signature.classes
    if classes is None:
        return None
    if all(isinstance(c, int | np.integer) for c in classes):
        return np.asarray(classes, dtype=np.int64)
    return np.asarray(classes, dtype=object)


def decide(proba: np.ndarray, classes: np.ndarray, threshold: float | None) -> Prediction:
    """Labels from class probabilities: the registered threshold for binary, else argmax."""
    if threshold is not None:
        index = (proba[:, 1] >= threshold).astype(np.intp)
    else:
        index = proba.argmax(axis=1)
    return Prediction(classes[index], proba)
