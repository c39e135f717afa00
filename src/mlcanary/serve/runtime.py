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
