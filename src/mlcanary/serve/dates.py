"""Calendar parts of date columns, fast for ISO dates and exactly as training reads them.

Training expands a datetime column with ``pandas.to_datetime(format="mixed", utc=True)``,
which costs ~0.5 ms even for one value. Plain ISO dates and times (no zone: read as UTC,
as training does) are read with ``datetime.fromisoformat`` instead, once per distinct text
(a bounded cache: most rows are a dictionary lookup); anything else goes through the same
pandas call as training. ``iso_stamps`` checks a column of ISO text at once, for validation.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.train.transformers import DatetimeParts

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?\Z")
_PARTS = ("month", "day", "day_of_week", "hour", "minute")
_CACHE_LIMIT = 65_536
_cache: dict[str, tuple[int, int, int, int, int]] = {}
"""ISO text -> its parts. Dates repeat (a sign-up day, an order hour), so most rows are one
dictionary lookup; the cache is emptied when it reaches the limit."""
_NAN_ROW = (np.nan,) * len(_PARTS)


def calendar_parts(values: Any, parts: tuple[str, ...] | list[str]) -> np.ndarray:
    """[n, len(parts)] floats (NaN where the date is missing), in ``DatetimeParts`` order."""
    if isinstance(values, pd.Series | pd.api.extensions.ExtensionArray) and (
        pd.api.types.is_string_dtype(values.dtype)
    ):
        values = values.to_numpy(dtype=object)
    if isinstance(values, np.ndarray) and values.dtype == object:
        table = _iso_parts(values)
        if table is not None:
            return table[:, [_PARTS.index(p) for p in parts]]
    frame = pd.DataFrame({"x": values}, copy=False)
    return np.asarray(DatetimeParts(tuple(parts)).fit(frame).transform(frame))


def _iso_parts(values: np.ndarray) -> np.ndarray | None:
    """Every part of every row, [n, 5]; None when a value is not a plain ISO date."""
    rows: list[tuple[float, ...]] = []
    for value in values.tolist():
        if value is None or (isinstance(value, float) and value != value):
            rows.append(_NAN_ROW)
            continue
        if not isinstance(value, str):
            return None
        known = _cache.get(value)
        if known is None:
            if not _ISO.match(value):
                return None
            try:  # seconds and their fractions decide no part: cut them off
                stamp = datetime.fromisoformat(value[:16])
            except ValueError:  # well-formed but impossible, e.g. 2024-02-30
                return None
            known = (stamp.month, stamp.day, stamp.weekday(), stamp.hour, stamp.minute)
            if len(_cache) >= _CACHE_LIMIT:
                _cache.clear()
            _cache[value] = known
        rows.append(known)
    return np.array(rows, dtype=np.float64).reshape(len(values), len(_PARTS))


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
