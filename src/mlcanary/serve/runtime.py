"""Fast runtimes' shared parts (the interface and the native runtime are in ``models/``).

The native runtime is the fitted scikit-learn / LightGBM pipeline itself; ``compiled``,
``onnx`` and ``jit`` are faster ways to the same answer, and ``choice`` picks among them.
Every runtime answers ``predict(rows) -> Prediction`` and must give the same answer for a
batch as for its rows one by one (the contract tests check it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.core.arrays.masked import BaseMaskedArray

from mlcanary.models.runtime import Prediction, Rows, Runtime


class Unsupported(Exception):
    """A pipeline step a runtime cannot serve; another runtime serves instead."""


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
