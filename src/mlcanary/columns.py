"""How a column's raw values are read, the same in training and in serving: numbers (with
the text forms of booleans and numbers) and calendar parts of dates. No scikit-learn: the
serving process reads columns with these when validation has not already."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

_TRUE = {"true": 1.0, "yes": 1.0, "1": 1.0, "false": 0.0, "no": 0.0, "0": 0.0}


def number_column(column: pd.Series) -> np.ndarray:
    """Numbers, booleans and their text forms (``yes``, `` 1.5 ``) as float64; anything
    else, and a gap, NaN."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))
    text = column.astype("string").str.strip().str.lower()
    mapped = text.map(_TRUE).astype("Float64")
    numbers = pd.to_numeric(text, errors="coerce").astype("Float64")
    return np.asarray(mapped.fillna(numbers).to_numpy(dtype=np.float64, na_value=np.nan))


def calendar_columns(column: pd.Series, parts: Sequence[str]) -> list[np.ndarray]:
    """One float64 array per part (``month``, ``day_of_week``, ... of ``Series.dt``), NaN
    where the date is missing or unreadable (any form ``pandas.to_datetime`` reads, as UTC)."""
    if not pd.api.types.is_datetime64_any_dtype(column):
        column = pd.to_datetime(column, errors="coerce", format="mixed", utc=True)
    return [getattr(column.dt, part).to_numpy(dtype=np.float64, na_value=np.nan)
            for part in parts]
