"""Calendar parts of date columns, fast for ISO dates and exactly as training reads them.

Training expands a datetime column with ``pandas.to_datetime(format="mixed", utc=True)``,
which costs ~0.5 ms even for one value. Plain ISO dates and times (no zone: read as UTC,
as training does) are read with ``datetime.fromisoformat`` instead, once per distinct text
(a bounded cache: most rows are a dictionary lookup); anything else goes through the same
pandas call as training. ``iso_stamps`` checks a column of ISO text at once, for validation,
and ``all_known`` lets validation skip even that when every date was read before.

The cache is a ``DateCache`` object: each model version's signature holds one
(``Signature.date_cache``), which its validation and its runtime share.
"""

from __future__ import annotations

import itertools
import re
import threading
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.columns import calendar_columns

_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?\Z")
_PARTS = ("month", "day", "day_of_week", "hour", "minute")
DATE_PARTS = _PARTS
"""The parts the cache holds for each date, in the order of its rows."""
CACHE_LIMIT = 65_536
"""Distinct texts a cache holds; a full one is replaced by an empty one."""
_NAN_ROW = (np.nan,) * len(_PARTS)


class _Known:
    """ISO text -> a row of ``table`` holding its parts (row 0: missing, all NaN).

    Dates repeat (a sign-up day, an order hour), so most rows are one dictionary lookup and
    the parts of a whole column are one NumPy ``take``. A full table is replaced by a new
    one, never emptied in place, so a thread still reading the old one reads whole rows.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows: dict[Any, int] = {None: 0}
        self.table = np.empty((limit + 1, len(_PARTS)), dtype=np.float64)
        self.table[0] = np.nan
        self.parts: dict[Any, tuple[float, ...]] = {None: _NAN_ROW}
        """The same rows as tuples, for a few values at a time (no NumPy call at all)."""
        self.size = 1

    def add(self, text: str, parts: tuple[float, ...]) -> None:
        if self.size > self.limit:
            return
        self.table[self.size] = parts  # the row first, then the keys that point at it
        self.parts[text] = parts
        self.rows[text] = self.size
        self.size += 1


class DateCache:
    """The calendar parts of the date texts read so far, and the readers that use them."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self.limit = limit
        self.known = _Known(limit)
        self._lock = threading.Lock()

    def calendar_parts(self, values: Any, parts: tuple[str, ...] | list[str]) -> np.ndarray:
        """[n, len(parts)] floats (NaN where the date is missing), in ``DatetimeParts``
        order."""
        if not isinstance(values, np.ndarray) and isinstance(
            values, pd.Series | pd.api.extensions.ExtensionArray
        ) and pd.api.types.is_string_dtype(values.dtype):
            values = values.to_numpy(dtype=object)
        if isinstance(values, np.ndarray) and values.dtype == object:
            table = self._iso_parts(values)
            if table is not None:
                columns = _columns(tuple(parts))
                return table if columns is None else table[:, columns]
        return np.column_stack(calendar_columns(pd.Series(values, copy=False), parts))

    def all_parts(self, values: Any) -> np.ndarray:
        """[n, 5] float64: every part of ``DATE_PARTS``, in that order (NaN where missing).

        Plain ISO texts are one lookup each into the cache's table and one ``take``, with
        no column picked or converted (the ONNX graph picks the parts its model uses)."""
        if isinstance(values, np.ndarray) and values.dtype == object:
            known = self.known  # one table throughout, even if a full one is replaced
            try:  # the common case, every text read before: a list of rows, one C call
                return known.table.take([known.rows[text] for text in values.tolist()], axis=0)
            except (KeyError, TypeError):  # a text not read yet, or an unhashable value
                table = self._iso_parts(values)
                if table is not None:
                    return table
        return self.calendar_parts(values, _PARTS)

    def date_rows(self, rows: Any, columns: list[str]) -> np.ndarray:
        """[n, 5 x columns] float64, C-contiguous: every part of ``DATE_PARTS`` of each
        date column in turn (a runtime picks the parts its model uses)."""
        blocks = [self.all_parts(rows[name]) for name in columns]
        block = blocks[0] if len(blocks) == 1 else np.hstack(blocks)
        return np.ascontiguousarray(block, dtype=np.float64)

    def one_date_row(self, rows: Any, columns: list[str]) -> np.ndarray | None:
        """``date_rows`` of one row of validated date texts read before, by dictionary
        lookups alone; None otherwise (the caller takes ``date_rows``)."""
        values: list[float] = []
        for name in columns:
            column = rows[name]
            found = (self.one_part_row(column.item(0))
                     if type(column) is np.ndarray and column.dtype == object else None)
            if found is None:
                return None
            values.extend(found)
        return np.array([values], dtype=np.float64)

    def one_part_row(self, text: Any) -> tuple[float, ...] | None:
        """Every part of one value read before (None otherwise: the caller reads it fully)."""
        return self.known.parts.get(text) if isinstance(text, str | None) else None

    def all_known(self, texts: np.ndarray) -> bool:
        """True when every value is missing (None) or a date text read before, hence valid.

        Validation's check of a column whose dates all repeat: one dictionary lookup each,
        where ``iso_stamps`` matches a pattern and parses every value (~0.7 µs a row).
        """
        rows = self.known.rows
        try:
            return all(text in rows for text in texts.tolist())
        except TypeError:  # an unhashable value: not a date
            return False

    def _iso_parts(self, values: np.ndarray) -> np.ndarray | None:
        """Every part of every row, [n, 5]; None when a value is not a plain ISO date."""
        known = self.known
        texts = values.tolist()
        try:
            rows = np.fromiter(map(known.rows.get, texts, itertools.repeat(-1)), np.intp,
                               len(texts))
        except TypeError:  # an unhashable value: not a date
            return None
        if len(rows) == 0 or rows.min() >= 0:
            return known.table.take(rows, axis=0)
        out = known.table.take(rows.clip(0), axis=0)
        for i in np.flatnonzero(rows < 0).tolist():
            found = self._parse(texts[i])
            if found is None:
                return None
            out[i] = found
        return out

    def _parse(self, value: Any) -> tuple[float, ...] | None:
        """The parts of one value not in the cache (and remember them); None if not ISO."""
        parts = parse_iso(value)
        if parts is None or value is None or not isinstance(value, str):
            return parts
        with self._lock:
            if self.known.size > self.limit:
                self.known = _Known(self.limit)
            self.known.add(value, parts)
        return parts


def _columns(parts: tuple[str, ...]) -> list[int] | None:
    """Where each part is in a cached row; None when the parts are all of them, in order."""
    return None if parts == _PARTS else [_PARTS.index(p) for p in parts]


def parse_iso(value: Any) -> tuple[float, ...] | None:
    """Every part of ``DATE_PARTS`` of one plain ISO date text (all NaN for a missing value);
    None for anything else."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return _NAN_ROW
    if not isinstance(value, str) or not _ISO.match(value) or value[17:19] >= "60":
        return None  # (seconds are cut off below, but 60 is as invalid here as in training)
    try:  # seconds and their fractions decide no part: cut them off
        stamp = datetime.fromisoformat(value[:16])
    except ValueError:  # well-formed but impossible, e.g. 2024-02-30
        return None
    return tuple(
        float(p) for p in (stamp.month, stamp.day, stamp.weekday(), stamp.hour, stamp.minute)
    )


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
