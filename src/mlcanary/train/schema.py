"""Column role inference: which kind each raw column is and whether the model uses it."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable

import numpy as np
import pandas as pd

from mlcanary.errors import InvalidInput
from mlcanary.signature import ColumnSpec, Signature
from mlcanary.types import ColumnKind, Task

DATETIME_PARTS = ("month", "day_of_week", "day", "hour", "minute")
"""Calendar parts a datetime column is expanded into (those that vary in training).

The absolute time (year, epoch) is left out on purpose: it only extrapolates.
"""

_DATELIKE = re.compile(r"^\s*\d{1,4}[-/.:]\d{1,2}")
_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|key)$|Id$|ID$", re.IGNORECASE)
_FOUND_ID, _TOLD_ID = "ID-like", "identifier (as told)"
"""How an identifier's note begins (``is_identifier`` reads it, in old signatures too)."""
_TRUE = frozenset({"true", "yes"})
_FALSE = frozenset({"false", "no"})


def infer_signature(
    frame: pd.DataFrame,
    target: str,
    task: Task,
    warn: Callable[[str], None] | None = None,
    ids: Collection[str] = (),
) -> Signature:
    """Decide the role of every non-target column; ``ids`` are identifiers, whatever
    their values look like.

    ``warn`` is called with a message for each column that is dropped or transformed
    in a way the user should know about.
    """
    columns = []
    for name in frame.columns:
        if name == target:
            continue
        spec = infer_column(frame[name])
        if name in ids and spec.used:
            spec.used, spec.categories = False, None
            spec.note = f"{_TOLD_ID}: left out of the model, still accepted and profiled"
        columns.append(spec)
    if warn is not None:  # only once every column passed, so an error stands alone
        for spec in columns:
            if spec.note:
                warn(f"column '{spec.name}': {spec.note}")
    if not any(c.used for c in columns):
        raise InvalidInput(
            "no usable feature columns: every column besides the target is constant or ID-like; "
            "expected at least one column that varies"
        )
    return Signature(columns, target, task)


def infer_column(series: pd.Series) -> ColumnSpec:
    """Infer one column's kind and whether it is worth feeding to the model."""
    name = str(series.name)
    values = series.dropna()
    nullable = bool(series.isna().any())
    if values.empty:
        raise InvalidInput(
            f"column '{name}': all {len(series)} values are missing; expected at least one "
            f"value (remove the column or fill it)"
        )
    kind = _kind_of(name, series, values)
    spec = ColumnSpec(name=name, kind=kind, nullable=nullable)
    if kind == "datetime":
        stamps = to_datetime(values)
        parts = [p for p in DATETIME_PARTS if getattr(stamps.dt, p).nunique() > 1]
        spec.datetime_parts = parts
        if parts:
            spec.note = f"datetime expanded into {', '.join(parts)} (absolute time dropped)"
        else:
            spec.used, spec.note = False, "datetime with one calendar value: dropped"
        return spec
    n_unique = int(values.nunique())
    if kind == "categorical":
        counts = values.astype(str).value_counts()
        spec.categories = sorted(counts.index.tolist())
    if n_unique <= 1 and not nullable:
        spec.used = False
        spec.note = (
            f"constant ({values.iloc[0]!r} in all {len(series)} rows): dropped from the model, "
            "still accepted and profiled"
        )
    elif _is_id_like(name, kind, values, n_unique):
        spec.used, spec.categories = False, None  # no list to refuse new IDs by
        spec.note = (
            f"{_FOUND_ID} ({n_unique} distinct values in {len(values)} rows): dropped from the "
            "model, still accepted and profiled"
        )
    return spec


def is_identifier(spec: ColumnSpec) -> bool:
    """Whether the column was left out of the model as an identifier (found or told)."""
    return not spec.used and spec.note.startswith((_FOUND_ID, _TOLD_ID))


def to_datetime(values: pd.Series) -> pd.Series:
    """Parse a column of dates or timestamps; unparseable entries become NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    return pd.to_datetime(values, errors="coerce", format="mixed", utc=True)


def require_column(frame: pd.DataFrame, column: str, flag: str) -> None:
    """Raise the standard message when an option names a column the table lacks."""
    if column not in frame.columns:
        raise InvalidInput(
            f"{flag} '{column}': no such column; expected one of {_sample(frame.columns)}"
        )


def check_time_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """Return the parsed time column, or explain why it is not a time."""
    require_column(frame, column, "--time-column")
    series = frame[column]
    values = series.dropna()
    if values.empty or _kind_of(column, series, values) != "datetime":
        examples = ", ".join(repr(v) for v in values.astype(str).unique()[:3].tolist())
        raise InvalidInput(
            f"--time-column '{column}': expected dates or timestamps (e.g. '2024-01-31'), "
            f"got values like {examples or 'nothing (all missing)'}"
        )
    if series.isna().any():
        raise InvalidInput(
            f"--time-column '{column}': {int(series.isna().sum())} rows have no time; "
            "expected a time on every row to order the folds"
        )
    return to_datetime(series)


def _kind_of(name: str, series: pd.Series, values: pd.Series) -> ColumnKind:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    python_types = {type(v) for v in values.head(10_000)}
    text = values.astype(str)
    numbers = pd.to_numeric(text, errors="coerce")
    numeric_share = float(numbers.notna().mean())
    has_text_type = any(issubclass(t, str) for t in python_types)
    has_number_type = any(issubclass(t, int | float | np.number) for t in python_types)
    if (has_text_type and has_number_type) or 0.5 <= numeric_share < 1.0:
        bad = text[numbers.isna()].unique()[:3].tolist()
        raise InvalidInput(
            f"column '{name}': mixes numbers ({numeric_share:.0%} of values) with text "
            f"({', '.join(repr(b) for b in bad)}); expected one type per column "
            "(clean the values or make them all text)"
        )
    if numeric_share == 1.0:
        return "numeric"
    lowered = set(text.str.strip().str.lower().unique())
    if lowered <= (_TRUE | _FALSE) and len(lowered) == 2:
        return "boolean"
    if text.head(1000).str.match(_DATELIKE).mean() >= 0.95:
        parsed = to_datetime(values)
        if parsed.notna().mean() >= 0.95:
            return "datetime"
    return "categorical"


def _is_id_like(name: str, kind: ColumnKind, values: pd.Series, n_unique: int) -> bool:
    n = len(values)
    if n < 20:
        return False
    if kind == "categorical":
        return n_unique / n > 0.95
    if kind == "integer" and n_unique == n:
        ordered = values.sort_values().to_numpy()
        consecutive = bool(np.all(np.diff(ordered) == 1))
        return consecutive or bool(_ID_NAME.search(name))
    return False


def _sample(columns: Iterable[object], k: int = 10) -> str:
    names = [str(n) for n in columns]
    shown = ", ".join(repr(n) for n in names[:k])
    return f"[{shown}{', ...' if len(names) > k else ''}]"
