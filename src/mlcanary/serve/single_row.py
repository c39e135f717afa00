"""A lone row scored in Python and LightGBM's single-row predictor, with no NumPy between.

A lone client sends one row at a time. For one row ONNX Runtime takes ~15 µs, most of it
a fixed cost of each ``run`` (inputs and outputs converted, every node dispatched), and
building its inputs with NumPy adds 5-6 µs and slows the run itself (each NumPy call
evicts some of ONNX Runtime's code and trees from the caches). LightGBM's C API has a
predictor made for this case, ``LGBM_BoosterPredictForMatSingleRowFast``: its
configuration is parsed once, then each call takes one row of doubles and writes the
scores. For the demo's 29 trees that is ~2 µs a row; for 537 trees ~10 µs.

So for one row of a LightGBM pipeline the fitted ColumnTransformer's steps are read once
into Python closures that turn the validated row into the model's features as a list of
floats (median imputation and missing indicators, calendar parts from the date cache,
one-hot and target encoding as dictionary lookups), the list is copied into a kept
``ctypes`` buffer and the predictor is called through a ctypes prototype that keeps the
GIL (the call is shorter than a switch between threads). The class prior, the threshold
and the label are taken in Python too. Features and scores are float64, as in the native
pipeline, so the answer is the native one (the tests find no difference at all).

``LoneRows`` puts this in front of the runtime chosen for batches: a batch of one row goes
here, anything else (or a row this path does not read, e.g. a date never seen) goes to
that runtime. ``choice`` uses it only after it matches the native pipeline row by row on
the version's reference sample and is faster than that runtime after decoding a request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from pandas.core.arrays.masked import BaseMaskedArray
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, TargetEncoder

from mlcanary.serve.compiled import unwrap
from mlcanary.serve.dates import DATE_PARTS, all_parts, one_part_row
from mlcanary.serve.lightgbm_api import SingleRowPredictor
from mlcanary.serve.runtime import Prediction, Rows, Runtime, Unsupported
from mlcanary.signature import Signature
from mlcanary.train.estimators import EarlyStoppedLGBMClassifier, EarlyStoppedLGBMRegressor
from mlcanary.train.transformers import AsText, DatetimeParts, ToFloat

NAN = float("nan")

Branch = Callable[[Rows], "list[float] | None"]
"""One validated row -> one ColumnTransformer branch's features (None: not readable here)."""


class SingleRow:
    """One row of a LightGBM pipeline, from validated columns to a ``Prediction``."""

    def __init__(self, pipeline: Any, signature: Signature) -> None:
        native, model = unwrap(pipeline, signature)
        estimator = model[-1]
        if not isinstance(estimator, EarlyStoppedLGBMClassifier | EarlyStoppedLGBMRegressor):
            raise Unsupported(f"estimator {type(estimator).__name__}")
        used = [(steps, columns) for _, steps, columns in model[0].transformers_
                if steps != "drop"]
        self.branches = [_branch(steps, columns) for steps, columns in used]
        self.first_column = used[0][1][0]
        booster = estimator.model_.booster_
        self.classes = native.classes
        self.threshold = native.threshold
        prior = getattr(estimator, "prior_", None)
        self.prior = None if prior is None else [float(p) for p in prior]
        self.scores = SingleRowPredictor(booster, estimator.n_estimators_)
        self.binary = self.classes is not None and self.scores.outputs == 1

    def features(self, rows: Rows) -> list[float] | None:
        out: list[float] = []
        for branch in self.branches:
            part = branch(rows)
            if part is None:
                return None
            out += part
        return out

    def predict(self, rows: Rows) -> Prediction | None:
        """The prediction for one validated row; None when the row needs the batch path."""
        features = self.features(rows)
        if features is None:
            return None
        try:
            scores = self.scores(features)
        except TypeError:  # a value validation let through as other than a number
            return None
        if self.classes is None:
            return Prediction(np.array(scores), None)
        proba = [1.0 - scores[0], scores[0]] if self.binary else scores
        if self.prior is not None:
            proba = [p * w for p, w in zip(proba, self.prior, strict=True)]
            total = sum(proba)
            proba = [p / total for p in proba]
        if self.threshold is not None:
            index = 1 if proba[1] >= self.threshold else 0
        else:
            index = max(range(len(proba)), key=proba.__getitem__)
        return Prediction(self.classes[index:index + 1], np.array([proba]))


class LoneRows:
    """A runtime that sends one-row batches through ``SingleRow`` and the rest to ``batches``."""

    def __init__(self, batches: Runtime, row: SingleRow) -> None:
        self.batches = batches
        self.row = row
        self.kind = batches.kind
        self.threshold = row.threshold

    def predict(self, rows: Rows) -> Prediction:
        if not hasattr(rows, "columns") and len(rows[self.row.first_column]) == 1:
            answer = self.row.predict(rows)
            if answer is not None:
                return answer
        return self.batches.predict(rows)


# -- preprocessing, one row -------------------------------------------------------------------


def _branch(steps: Any, columns: list[str]) -> Branch:
    chain = [step for _, step in steps.steps] if isinstance(steps, Pipeline) else [steps]
    first, rest = chain[0], chain[1:]
    if isinstance(first, ToFloat):
        return _numbers(columns, _imputation(rest))
    if isinstance(first, DatetimeParts):
        return _dates(columns, first.parts, _imputation(rest))
    if isinstance(first, AsText):
        return _texts(columns, rest)
    raise Unsupported(f"step {type(first).__name__}")


Impute = Callable[[list[float]], list[float]]


def _imputation(steps: list[Any]) -> Impute:
    """Median imputation, then the indicators of the columns that had gaps in training."""
    if len(steps) != 1 or not isinstance(steps[0], SimpleImputer):
        raise Unsupported("numeric steps other than one imputer")
    step = steps[0]
    fills = [float(v) for v in step.statistics_]
    if any(fill != fill for fill in fills):  # a column empty in training: sklearn drops it
        raise Unsupported("an imputer with an empty column")
    features = [int(j) for j in step.indicator_.features_] if step.add_indicator else []
    none_missing = [0.0] * len(features)

    def impute(values: list[float]) -> list[float]:
        total = sum(values)
        if total == total:  # no NaN among them (a NaN makes the sum NaN): nothing to fill
            return values + none_missing
        out = [fill if value != value else value
               for value, fill in zip(values, fills, strict=True)]
        return out + [1.0 if values[j] != values[j] else 0.0 for j in features]

    return impute


def _numbers(columns: list[str], impute: Impute) -> Branch:
    pick = itemgetter(*columns) if len(columns) > 1 else lambda rows: (rows[columns[0]],)

    def numbers(rows: Rows) -> list[float] | None:
        values = row_numbers(pick(rows))
        return None if values is None else impute(values)

    return numbers


_PLAIN = {np.ndarray}


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


def _dates(columns: list[str], parts: tuple[str, ...], impute: Impute) -> Branch:
    picked = [DATE_PARTS.index(part) for part in parts]

    def dates(rows: Rows) -> list[float] | None:
        values: list[float] = []
        for name in columns:
            column = rows[name]
            if type(column) is not np.ndarray or column.dtype != object:
                return None
            found = one_part_row(column.item(0))
            if found is None:  # not read before: read it fully
                found = tuple(all_parts(column)[0].tolist())
            values += [found[k] for k in picked]
        return impute(values)

    return dates


def _texts(columns: list[str], steps: list[Any]) -> Branch:
    if len(steps) == 1 and isinstance(steps[0], MissingIndicator):
        features = [columns[int(j)] for j in steps[0].features_]

        def missing(rows: Rows) -> list[float] | None:
            texts = _row_texts(rows, features)
            return None if texts is None else [1.0 if t is None else 0.0 for t in texts]

        return missing
    if len(steps) != 2 or not isinstance(steps[0], SimpleImputer) or steps[0].add_indicator:
        raise Unsupported("categorical steps other than most-frequent + encoder")
    fills = [str(v) for v in steps[0].statistics_]
    encoder = steps[1]
    if isinstance(encoder, OneHotEncoder):
        if encoder.drop_idx_ is not None or encoder.handle_unknown != "ignore":
            raise Unsupported("one-hot encoder with drop or unknown-category errors")
        # each category's block of zeros with its one, built once; an unseen one: all zeros
        blocks = [
            ({str(c): [1.0 if i == k else 0.0 for i in range(len(cats))]
              for k, c in enumerate(cats)}, [0.0] * len(cats))
            for cats in encoder.categories_
        ]
        return _encoded(columns, fills, blocks)
    if isinstance(encoder, TargetEncoder):
        per = len(encoder.encodings_) // len(encoder.categories_)
        means = [float(m) for m in np.atleast_1d(encoder.target_mean_)]
        blocks = []
        for j, cats in enumerate(encoder.categories_):
            tables = [encoder.encodings_[j * per + k] for k in range(per)]
            blocks.append(({str(c): [float(t[i]) for t in tables] for i, c in enumerate(cats)},
                           means))
        return _encoded(columns, fills, blocks)
    raise Unsupported(f"encoder {type(encoder).__name__}")


def _encoded(
    columns: list[str], fills: list[str], blocks: list[tuple[dict[str, list[float]], list[float]]]
) -> Branch:
    """Each column's text (its fill when missing) looked up to its block of features."""
    def encoded(rows: Rows) -> list[float] | None:
        texts = _row_texts(rows, columns)
        if texts is None:
            return None
        out: list[float] = []
        for text, fill, (table, unseen) in zip(texts, fills, blocks, strict=True):
            out += table.get(fill if text is None else text, unseen)
        return out

    return encoded


def _row_texts(rows: Rows, columns: list[str]) -> list[str | None] | None:
    """The row's text of each column, None where missing; None for a column not validated
    text (the batch path reads it)."""
    texts: list[str | None] = []
    for name in columns:
        column = rows[name]
        if type(column) is not np.ndarray or column.dtype != object:
            return None
        text = column.item(0)
        if text is not None and type(text) is not str:
            return None
        texts.append(text)
    return texts
