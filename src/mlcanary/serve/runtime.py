"""Fast runtimes' shared parts (the interface and the native runtime are in ``models/``).

The native runtime is the fitted scikit-learn / LightGBM pipeline itself; ``onnx`` and
``compiled`` are faster ways to the same answer, and ``choice`` picks among them.
Every runtime answers ``predict(rows) -> Prediction`` and must give the same answer for a
batch as for its rows one by one (the contract tests check it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.columns import number_column
from mlcanary.models.runtime import Rows


class Unsupported(Exception):
    """A pipeline step a runtime cannot serve; another runtime serves instead."""


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
        elif isinstance(column, pd.api.extensions.ExtensionArray):  # a nullable column
            value = column[0]
            values.append(NAN if value is pd.NA else value)
        else:
            return None
    return values


def float_column(values: Any) -> np.ndarray:
    """One column as float64, read exactly as ``ToFloat`` reads it."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return values
    if isinstance(values, np.ndarray):
        return values.astype(np.float64)
    return number_column(pd.Series(values, copy=False))  # nullable arrays, text forms


def number_rows(rows: Rows, columns: list[str], dtype: Any) -> np.ndarray:
    """[k, n] of ``dtype``, one row per numeric column, NaN in the gaps, as ``ToFloat`` reads
    them: the ONNX runtime's numbers in the layout they build most cheaply.

    Validated numbers are float64 arrays, integers and booleans nullable arrays (read
    through their public ``to_numpy``, gaps as NaN): they convert together in one C call."""
    data = []
    for name in columns:
        values = rows[name]
        if type(values) is np.ndarray and values.dtype.kind in "fiub":
            data.append(values)
        else:
            data.append(float_column(values))
    return np.array(data, dtype=dtype).reshape(len(data), len(rows[columns[0]]))


def one_number_row(rows: Rows, columns: list[str], dtype: Any) -> np.ndarray | None:
    """``number_rows`` of one validated row: each value read as a Python number (a gap as
    NaN) and one NumPy call; None if a column is of another form."""
    values = row_numbers([rows[name] for name in columns])
    return None if values is None else np.array(values, dtype=dtype).reshape(-1, 1)
