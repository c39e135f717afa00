"""One answered request as the prediction log keeps it, and its JSON form in the store.

A record holds the validated columns and the model's arrays by reference: building one
costs a few attribute stores on the request path. Turning it into JSON happens later,
on the tap's writer thread (``encode``), and reading it back into one table row per
predicted row happens in ``window_frame``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from mlcanary.types import PREDICTION_COLUMN, SCORE_PREFIX, TARGET_COLUMN

ID_COLUMN = "__id__"
TS_COLUMN = "__ts__"
VERSION_COLUMN = "__version__"
VARIANT_COLUMN = "__variant__"
META_COLUMNS = (TARGET_COLUMN, ID_COLUMN, TS_COLUMN, VERSION_COLUMN, VARIANT_COLUMN)


@dataclass(slots=True)
class PredictionRecord:
    """One answered request: who asked what, which version answered what, how fast."""

    id: str
    ts: float
    """Epoch seconds at which the answer was ready."""
    model: str
    version: int
    inputs: Mapping[str, Any]
    """The request's columns as validated (numpy or pandas arrays, one per column)."""
    predicted: np.ndarray
    proba: np.ndarray | None
    classes: Sequence[Any] | None
    """Column order of ``proba``: the signature's classes; None for regression."""
    latency_ms: float
    variant: str = "champion"

    @property
    def rows(self) -> int:
        return len(self.predicted)


def encode(records: Sequence[PredictionRecord]) -> list[dict[str, Any]]:
    """Rows of the ``predictions`` table, with JSON text for the arrays.

    This is most of the log's CPU time, spent on a thread beside the server, so it works
    per batch where that pays (see ``_inputs_json``).
    """
    inputs = _inputs_json(records)
    return [
        {
            "id": record.id,
            "ts": record.ts,
            "model": record.model,
            "variant": record.variant,
            "version": record.version,
            "rows": record.rows,
            "inputs": document,
            "outputs": _json(_outputs(record)),
            "latency_ms": record.latency_ms,
        }
        for record, document in zip(records, inputs, strict=True)
    ]


def _outputs(record: PredictionRecord) -> dict[str, Any]:
    outputs: dict[str, Any] = {"predict": _array(record.predicted)}
    if record.proba is not None:
        outputs["probabilities"] = _array(record.proba)
    if record.classes is not None:
        outputs["classes"] = record.classes  # shared by every record of the version
    return outputs


def _json(document: Any) -> str:
    """orjson, with NaN and pd.NA written as null (``_plain``) and numpy arrays as lists."""
    return orjson.dumps(document, default=_plain, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _array(array: np.ndarray) -> Any:
    """What orjson writes natively (numbers, booleans; NaN as null), else plain values."""
    if array.dtype.kind in "biuf":
        return array if array.flags.c_contiguous else np.ascontiguousarray(array)
    return [_plain(v) for v in array.tolist()]


def _inputs_json(records: Sequence[PredictionRecord]) -> list[str]:
    """Each record's ``{column: [values...]}`` as JSON text.

    Numeric numpy columns go to orjson as they are. The others (pandas arrays: nullable
    integers, booleans, text) cost far more to convert one request at a time, so each is
    merged across the records of one model version (they share their column layout,
    validation made them) and converted in one go.
    """
    converted: list[dict[str, list[Any]]] = [{} for _ in records]
    layouts: dict[tuple[Any, ...], list[int]] = {}
    for i, record in enumerate(records):
        layouts.setdefault((record.model, record.version, *record.inputs), []).append(i)
    for members in layouts.values():
        first = records[members[0]].inputs
        for name, array in first.items():
            if isinstance(array, np.ndarray) and array.dtype.kind in "biuf":
                continue  # another record's odd type would still be written right (_plain)
            values = _merged_values([records[i].inputs[name] for i in members])
            start = 0
            for i in members:
                stop = start + records[i].rows
                converted[i][name] = values[start:stop]
                start = stop
    return [
        _json({**record.inputs, **own} if own else record.inputs)
        for record, own in zip(records, converted, strict=True)
    ]


def _merged_values(arrays: list[Any]) -> list[Any]:
    """The column's values across the batch as Python values, in one conversion.

    Missing values stay NaN or pd.NA here; ``_json`` writes both as null.
    """
    first = arrays[0]
    try:
        if isinstance(first, np.ndarray):
            return list(np.concatenate(arrays).tolist())
        merged = first if len(arrays) == 1 else type(first)._concat_same_type(arrays)
        return list(merged.to_numpy(dtype=object).tolist())
    except (TypeError, ValueError, AttributeError):  # mixed types: one piece at a time
        return [v for array in arrays for v in np.asarray(array, dtype=object).tolist()]


def _plain(value: Any) -> Any:
    """A JSON-ready value; NaN, NA and NaT become None (JSON null)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return None if value != value else value
    if isinstance(value, np.generic):
        return _plain(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.ndarray | pd.api.extensions.ExtensionArray):
        return [_plain(v) for v in np.asarray(value, dtype=object).tolist()]
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def window_frame(rows: Iterable[Mapping[Any, Any]]) -> pd.DataFrame:
    """One table row per predicted row, from joined ``predictions`` x ``feedback`` rows.

    Columns: the inputs, ``__prediction__``, ``__score__<class>`` for classifiers (as in
    the reference sample), then ``__target__`` (None until a label arrives), ``__id__``,
    ``__ts__``, ``__version__``, ``__variant__``. Records of versions with other columns
    or classes are padded with None rather than dropped.
    """
    columns: dict[str, list[Any]] = {}
    scores: dict[str, list[Any]] = {}
    meta: dict[str, list[Any]] = {name: [] for name in (PREDICTION_COLUMN, *META_COLUMNS)}
    total = 0
    for row in rows:
        inputs = orjson.loads(row["inputs"])
        outputs = orjson.loads(row["outputs"])
        n = int(row["rows"])
        _extend(columns, inputs, total, n)
        proba = outputs.get("probabilities") or []
        classes = (outputs.get("classes") or []) if proba else []
        by_class = {
            f"{SCORE_PREFIX}{label}": [p[k] for p in proba] for k, label in enumerate(classes)
        }
        _extend(scores, by_class, total, n)
        labels = orjson.loads(row["labels"]) if row["labels"] is not None else [None] * n
        meta[PREDICTION_COLUMN].extend(outputs["predict"])
        meta[TARGET_COLUMN].extend(labels)
        meta[ID_COLUMN].extend([row["id"]] * n)
        meta[TS_COLUMN].extend([row["ts"]] * n)
        meta[VERSION_COLUMN].extend([row["version"]] * n)
        meta[VARIANT_COLUMN].extend([row["variant"]] * n)
        total += n
    frame = pd.DataFrame({**columns, PREDICTION_COLUMN: meta.pop(PREDICTION_COLUMN), **scores})
    for name, values in meta.items():
        frame[name] = pd.Series(values, dtype=_META_DTYPES.get(name), index=frame.index)
    return frame


_META_DTYPES = {TS_COLUMN: "float64", VERSION_COLUMN: "int64"}


def _extend(into: dict[str, list[Any]], part: Mapping[str, list[Any]], before: int, n: int) -> None:
    """Append one record's columns; a column first seen now is padded for earlier rows."""
    for name, values in part.items():
        into.setdefault(name, [None] * before).extend(values)
    for name, values in into.items():
        if name not in part:
            values.extend([None] * n)
