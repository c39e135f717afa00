"""Calendar parts of date columns, fast for ISO dates and exactly as training reads them.

Training expands a datetime column with ``pandas.to_datetime(format="mixed", utc=True)``,
which costs ~0.5 ms even for one value. Plain ISO dates and times (no zone: read as UTC,
as training does) are parsed by NumPy's ``datetime64`` instead, in microseconds; anything
else goes through the same pandas call as training.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.train.transformers import DatetimeParts

_FEW = 8
"""Up to this many rows, calendar parts are read row by row in Python."""
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?\Z")


def calendar_parts(values: Any, parts: tuple[str, ...] | list[str]) -> np.ndarray:
    """[n, len(parts)] floats (NaN where the date is missing), in ``DatetimeParts`` order."""
    if isinstance(values, np.ndarray) and values.dtype == object and len(values) <= _FEW:
        few = _parts_row_by_row(values, parts)
        if few is not None:
            return few
    stamps = iso_stamps(values)
    if stamps is None:
        frame = pd.DataFrame({"x": values}, copy=False)
        return np.asarray(DatetimeParts(tuple(parts)).fit(frame).transform(frame))
    missing = np.isnat(stamps)
    seconds = stamps.astype(np.int64)
    days = stamps.astype("datetime64[D]")
    months = stamps.astype("datetime64[M]")
    out = np.empty((len(stamps), len(parts)))
    for j, part in enumerate(parts):
        if part == "month":
            column = months.astype(np.int64) % 12 + 1
        elif part == "day":
            column = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
        elif part == "day_of_week":  # 1970-01-01 was a Thursday; Monday is 0
            column = (days.astype(np.int64) + 3) % 7
        elif part == "hour":
            column = seconds % 86_400 // 3600
        elif part == "minute":
            column = seconds % 3600 // 60
        else:
            raise ValueError(f"unknown calendar part {part!r}")
        out[:, j] = column
    out[missing] = np.nan
    return out


def _parts_row_by_row(values: np.ndarray, parts: tuple[str, ...] | list[str]) -> np.ndarray | None:
    """The same parts with ``datetime``, for a few rows (NumPy's fixed cost is ~15 µs)."""
    rows = []
    for value in values.tolist():
        if value is None or (isinstance(value, float) and value != value):
            rows.append([np.nan] * len(parts))
            continue
        if not isinstance(value, str) or not _ISO.match(value):
            return None
        try:  # seconds and their fractions decide no part: cut them off
            stamp = datetime.fromisoformat(value[:16])
        except ValueError:
            return None
        rows.append([stamp.weekday() if p == "day_of_week" else getattr(stamp, p) for p in parts])
    return np.array(rows, dtype=np.float64).reshape(len(values), len(parts))


def iso_stamps(values: Any) -> np.ndarray | None:
    """``datetime64[s]`` (NaT where missing) when every value is a plain ISO string or missing.

    None when any value is something else: the caller falls back to pandas.
    """
    if isinstance(values, pd.Series | pd.api.extensions.ExtensionArray):
        if not pd.api.types.is_string_dtype(values.dtype):
            return None
        values = values.to_numpy(dtype=object)
    if not isinstance(values, np.ndarray) or values.dtype != object:
        return None
    texts = []
    for value in values.tolist():
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            texts.append("NaT")
        elif isinstance(value, str) and _ISO.match(value):
            texts.append(value)
        else:
            return None
    try:  # the pattern admits no zone, so NumPy has nothing to warn about
        return np.array(texts, dtype="datetime64[s]")
    except ValueError:  # a well-formed but impossible date, e.g. 2024-02-30
        return None
