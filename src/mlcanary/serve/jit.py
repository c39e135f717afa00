"""The jit runtime: a LightGBM pipeline as one numba-compiled call per batch.

ONNX Runtime pays a fixed cost on every ``run`` (inputs and outputs converted, every node
of the graph dispatched: ~15 µs here), and its inputs must be built with NumPy first. For
the small batches a server mostly sees, that fixed cost is the model's whole time. This
runtime reads the fitted ColumnTransformer once, at load, into a short program of feature
operations (median fill, missing indicator, calendar part, one-hot, target encoding) and
the booster into flat arrays (``forest``); each batch is then three small arrays built
from the validated columns (numbers, calendar parts from the date cache, category codes
from dictionary lookups) and one call of ``kernels.predict`` that makes the features,
walks the trees and takes the decision, without the GIL.

Features and scores are float64 and the walk follows LightGBM's own rules, so the scores
are the native pipeline's (the tests find differences of ~1e-16, from ``exp``). Anything
it does not read exactly (other steps, estimators or split kinds) raises ``Unsupported``
and another runtime serves; ``choice`` uses it only after it matches the native pipeline
on the version's reference rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, TargetEncoder

from mlcanary.models.runtime import Prediction, Rows
from mlcanary.serve import kernels
from mlcanary.serve.compiled import number_rows, one_number_row, unwrap
from mlcanary.serve.dates import DATE_PARTS, date_rows, one_date_row
from mlcanary.serve.forest import IDENTITY, Forest
from mlcanary.serve.kernels import (
    DATES,
    FILL,
    GAP,
    IS_GAP,
    NUMBERS,
    ONE_HOT,
    TABLE,
    TEXT_GAP,
    UNSEEN,
)
from mlcanary.serve.runtime import Unsupported
from mlcanary.signature import Signature
from mlcanary.train.estimators import EarlyStoppedLGBMClassifier, EarlyStoppedLGBMRegressor
from mlcanary.train.transformers import AsText, DatetimeParts, ToFloat

TOLERANCE = 1e-9
"""Largest score difference from the native pipeline on the reference rows."""

_NONE_OR_STR = {str, type(None)}
_EMPTY = np.empty((0, 0))
_NO_CODES = np.empty((0, 0), dtype=np.int64)


class JitRuntime:
    """Preprocessing, trees and decision of a LightGBM pipeline in one compiled call."""

    kind = "jit"

    def __init__(self, pipeline: Any, signature: Signature) -> None:
        native, model = unwrap(pipeline, signature)
        estimator = model[-1]
        if not isinstance(estimator, EarlyStoppedLGBMClassifier | EarlyStoppedLGBMRegressor):
            raise Unsupported(f"estimator {type(estimator).__name__}")
        self.classes = native.classes
        self.threshold = native.threshold
        self.program = Program()
        for _, steps, columns in model[0].transformers_:
            if steps != "drop":
                self.program.branch(steps, list(columns))
        forest = Forest(estimator.model_.booster_, estimator.n_estimators_)
        if forest.width != len(self.program.ops):
            raise Unsupported(f"{len(self.program.ops)} features made, the trees read "
                              f"{forest.width}")
        if (self.classes is None) != (forest.transform == IDENTITY):
            raise Unsupported("a classifier with regression scores, or the reverse")
        prior = getattr(estimator, "prior_", None)
        self.model = (
            *self.program.arrays(),
            forest.values, forest.links, forest.flags, forest.roots, forest.plain, forest.per,
            forest.transform, forest.sigmoid,
            np.array([] if prior is None else prior, dtype=np.float64),
            float("nan") if self.threshold is None else float(self.threshold),
        )
        """Everything ``kernels.predict`` takes after the batch's own arrays."""

    def predict(self, rows: Rows) -> Prediction:
        scores, index = kernels.predict(*self.program.inputs(rows), *self.model)
        if self.classes is None:
            return Prediction(scores.reshape(len(scores)), None)
        return Prediction(self.classes[index], scores)


class Program:
    """The ColumnTransformer's output, one feature operation per model feature, and the
    sources they read: numeric columns, date columns (every calendar part of each), and
    text columns as category codes (each with its encoder's categories)."""

    def __init__(self) -> None:
        self.numbers: list[str] = []
        self.dates: list[str] = []
        self.texts: list[tuple[str, dict[str, int]]] = []
        self.fills: list[int] = []
        """Per text source: the code a missing text takes (the imputer's fill)."""
        self.ops: list[tuple[int, int, int]] = []
        self.values: list[float] = []
        self.tables: list[float] = []

    def arrays(self) -> tuple[Any, ...]:
        return (
            np.array(self.ops, dtype=np.int64).reshape(len(self.ops), 3),
            np.array(self.values, dtype=np.float64),
            np.array(self.fills, dtype=np.int64),
            np.array(self.tables, dtype=np.float64),
        )

    def branch(self, steps: Any, columns: list[str]) -> None:
        chain = [step for _, step in steps.steps] if isinstance(steps, Pipeline) else [steps]
        first, rest = chain[0], chain[1:]
        if isinstance(first, ToFloat):
            sources = [self._source(self.numbers, name) for name in columns]
            self._imputed(NUMBERS, sources, rest)
        elif isinstance(first, DatetimeParts):
            picked = [DATE_PARTS.index(part) for part in first.parts]
            sources = [self._source(self.dates, name) * len(DATE_PARTS) + k
                       for name in columns for k in picked]
            self._imputed(DATES, sources, rest)
        elif isinstance(first, AsText):
            self._text(columns, rest)
        else:
            raise Unsupported(f"step {type(first).__name__}")

    def _op(self, op: int, source: int, argument: int = 0, value: float = 0.0) -> None:
        self.ops.append((op, source, argument))
        self.values.append(value)

    @staticmethod
    def _source(sources: list[str], name: str) -> int:
        if name not in sources:
            sources.append(name)
        return sources.index(name)

    def _imputed(self, where: int, sources: list[int], steps: list[Any]) -> None:
        """Median (or mean, or constant) fills, then the indicators of the columns that
        had gaps in training."""
        if len(steps) != 1 or not isinstance(steps[0], SimpleImputer):
            raise Unsupported("numeric steps other than one imputer")
        step = steps[0]
        marker = step.missing_values
        if not (isinstance(marker, float) and marker != marker):
            raise Unsupported(f"an imputer of {marker!r}")
        fills = [float(v) for v in step.statistics_]
        if len(fills) != len(sources) or any(fill != fill for fill in fills):
            raise Unsupported("an imputer with an empty column")  # sklearn drops it
        for source, fill in zip(sources, fills, strict=True):
            self._op(FILL, source, where, fill)
        if step.add_indicator:
            for j in step.indicator_.features_:
                self._op(IS_GAP, sources[int(j)], where)

    def _codes(self, name: str, lookup: dict[str, int], fill: int) -> int:
        self.texts.append((name, lookup))
        self.fills.append(fill)
        return len(self.texts) - 1

    def _text(self, columns: list[str], steps: list[Any]) -> None:
        if len(steps) == 1 and isinstance(steps[0], MissingIndicator):
            for j in steps[0].features_:
                self._op(TEXT_GAP, self._codes(columns[int(j)], {}, GAP))
            return
        if len(steps) != 2 or not isinstance(steps[0], SimpleImputer) or steps[0].add_indicator:
            raise Unsupported("categorical steps other than most-frequent + encoder")
        fills = [str(v) for v in steps[0].statistics_]
        encoder = steps[1]
        lookups = [{str(c): i for i, c in enumerate(cats)} for cats in encoder.categories_]
        sources = [self._codes(name, lookup, lookup.get(fill, UNSEEN))
                   for name, lookup, fill in zip(columns, lookups, fills, strict=True)]
        if isinstance(encoder, OneHotEncoder):
            if (encoder.drop_idx_ is not None or encoder.handle_unknown != "ignore"
                    or getattr(encoder, "_infrequent_enabled", False)):
                raise Unsupported("one-hot encoder with drop, infrequent categories or "
                                  "unknown-category errors")
            for source, cats in zip(sources, encoder.categories_, strict=True):
                for k in range(len(cats)):
                    self._op(ONE_HOT, source, k)
        elif isinstance(encoder, TargetEncoder):
            per = len(encoder.encodings_) // len(encoder.categories_)
            means = [float(m) for m in np.atleast_1d(encoder.target_mean_)]
            for j, source in enumerate(sources):
                for k in range(per):
                    self._op(TABLE, source, len(self.tables), means[k])
                    self.tables += [float(v) for v in encoder.encodings_[j * per + k]]
        else:
            raise Unsupported(f"encoder {type(encoder).__name__}")

    # -- a batch's arrays ------------------------------------------------------------------

    def inputs(self, rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """numbers [k, n], calendar parts [n, 5 x dates], codes [texts, n], n."""
        if isinstance(rows, pd.DataFrame):
            n = len(rows)
        else:
            first = (self.numbers or self.dates or [name for name, _ in self.texts])[0]
            n = len(rows[first])
        one = n == 1 and not isinstance(rows, pd.DataFrame)  # a lone row: value by value
        numbers = one_number_row(rows, self.numbers, np.float64) if one and self.numbers else None
        dates = one_date_row(rows, self.dates) if one and self.dates else None
        if numbers is None:
            numbers = number_rows(rows, self.numbers, np.float64) if self.numbers else _EMPTY
        if dates is None:
            dates = date_rows(rows, self.dates) if self.dates else _EMPTY
        return numbers, dates, self._codes_of(rows, n), n

    def _codes_of(self, rows: Rows, n: int) -> np.ndarray:
        if not self.texts:
            return _NO_CODES
        codes = []
        for name, lookup in self.texts:
            texts = _texts(rows[name])
            codes.append([GAP if text is None else lookup.get(text, UNSEEN) for text in texts])
        return np.array(codes, dtype=np.int64).reshape(len(codes), n)


def _texts(values: Any) -> list[str | None]:
    """A column's texts, None where missing, exactly as ``AsText`` reads them."""
    if type(values) is np.ndarray and values.dtype == object:
        texts: list[str | None] = values.tolist()
        if set(map(type, texts)) <= _NONE_OR_STR:  # validated text: nothing to convert
            return texts
    frame = pd.DataFrame({"x": values}, copy=False)
    read = AsText().fit(frame).transform(frame)[:, 0].tolist()
    return [None if pd.isna(text) else str(text) for text in read]
