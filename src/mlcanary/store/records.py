"""One answered request as the prediction log keeps it, and its binary form in the store.

A record holds the validated columns and the model's arrays by reference: building one
costs a few attribute stores on the request path. Turning it into bytes happens later,
on the tap's writer thread (``encode``: numeric columns as raw blocks, the rest as JSON in
a small header), and reading it back into one table row per predicted row happens in
``window_frame``, which also reads the JSON documents older stores hold.
"""

from __future__ import annotations

import itertools
import operator
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


RECORD = b"\x01"
"""First byte of a binary record (``pack``); JSON text, as older stores hold, starts "{"."""
_LENGTH = 4
BLOCK_ROWS = 8
"""Records of fewer rows keep their numeric columns in the JSON header too."""


def encode(records: Sequence[PredictionRecord]) -> list[dict[str, Any]]:
    """Rows of the ``predictions`` table, with the arrays as binary records (``pack``).

    This is the log's CPU time, spent on a thread beside the server (on a small box, on
    the server's core), so it works per batch: the records of one model version share
    their column layout (validation made them), and each column is converted once for
    all of them. JSON documents, one per request, cost three times as much at 64 rows.
    """
    inputs = _inputs_records(records)
    return [
        {
            "id": record.id,
            "ts": record.ts,
            "model": record.model,
            "variant": record.variant,
            "version": record.version,
            "rows": record.rows,
            "inputs": document,
            "outputs": _outputs_record(record),
            "latency_ms": record.latency_ms,
        }
        for record, document in zip(records, inputs, strict=True)
    ]


Block = tuple[str, "str | list[str]", int, bytes]
"""``(dtype, names, width, data)`` of one block of a binary record (``pack``)."""


def pack(n: int, blocks: Sequence[Block], values: Mapping[str, Any], **extra: Any) -> bytes:
    """One binary record: ``RECORD``, the length of a JSON header, the header, then each
    block's data. A block named by a list holds those columns of n values each, one after
    the other; one named by a string holds that array, 1-D (width 0) or [n, width].
    ``values`` holds the columns of other types as JSON lists, ``extra`` anything else."""
    header = orjson.dumps({"n": n, "blocks": [block[:3] for block in blocks],
                           "values": values, **extra}, default=_plain,
                          option=orjson.OPT_SERIALIZE_NUMPY)
    return _framed(header, [block[3] for block in blocks])


def _framed(header: bytes, data: list[bytes]) -> bytes:
    return b"".join([RECORD, len(header).to_bytes(_LENGTH, "little"), header, *data])


def unpack(blob: bytes | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(header, columns)`` of a record ``pack`` wrote, or ``({}, document)`` for an older
    store's JSON text. Columns are numpy arrays (the blocks) or lists."""
    if isinstance(blob, str) or blob[:1] != RECORD:
        return {}, orjson.loads(blob)
    view = memoryview(blob)
    offset = 1 + _LENGTH + int.from_bytes(view[1:1 + _LENGTH], "little")
    header = orjson.loads(view[1 + _LENGTH:offset])
    n = int(header["n"])
    columns: dict[str, Any] = dict(header["values"])
    for dtype, names, width in header["blocks"]:
        kind = np.dtype(dtype)
        count = n * (len(names) if isinstance(names, list) else max(width, 1))
        array = np.frombuffer(view, dtype=kind, count=count, offset=offset)
        offset += count * kind.itemsize
        if isinstance(names, list):  # one column after the other
            columns.update({name: array[k * n:(k + 1) * n] for k, name in enumerate(names)})
        else:
            columns[names] = array.reshape(n, width) if width else array
    if "names" in header:  # the order they came in
        columns = {name: columns[name] for name in header["names"]}
    return header, columns


def _outputs_record(record: PredictionRecord) -> bytes:
    blocks: list[Block] = []
    values: dict[str, Any] = {}
    predicted = record.predicted
    if predicted.dtype.kind in "biuf" and predicted.ndim == 1:
        blocks.append((predicted.dtype.str, "predict", 0, predicted.tobytes()))
    else:
        values["predict"] = predicted.tolist()
    if record.proba is not None:
        proba = record.proba.reshape(record.rows, -1)
        blocks.append((proba.dtype.str, "probabilities", proba.shape[1], proba.tobytes()))
    classes = list(record.classes) if record.classes is not None else None
    return pack(record.rows, blocks, values, classes=classes)


def outputs_of(blob: bytes | str) -> dict[str, Any]:
    """``{"predict": [...], "probabilities": [[...]] (classifiers), "classes": [...]}`` of a
    stored record, binary or JSON."""
    header, columns = unpack(blob)
    if not header:
        return columns
    out = {"predict": _listed(columns["predict"])}
    if "probabilities" in columns:
        out["probabilities"] = columns["probabilities"]
    if header.get("classes") is not None:
        out["classes"] = header["classes"]
    return out


def _listed(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _inputs_records(records: Sequence[PredictionRecord]) -> list[bytes]:
    """Each record's validated columns as a binary record.

    Records of one model version share their column layout (validation made them), so
    the layout is read once per batch: numeric numpy columns go as their bytes, one block
    per dtype; the others (pandas arrays: nullable integers, booleans; text) go to the
    header as JSON lists, each merged across the records and converted in one go (one
    request at a time costs far more).
    """
    out: list[bytes] = [b""] * len(records)
    layouts: dict[tuple[Any, ...], list[int]] = {}
    for i, record in enumerate(records):  # names and dtypes, in C-level loops
        key = (record.model, record.version, tuple(record.inputs),
               tuple(map(_DTYPE, record.inputs.values())))
        layouts.setdefault(key, []).append(i)
    for (_, _, in_order, _), members in layouts.items():
        order = list(in_order)
        groups: dict[str, list[str]] = {}
        others: list[str] = []
        for name, array in records[members[0]].inputs.items():
            dtype = _block_dtype(array)
            if dtype is None:
                others.append(name)
            else:
                groups.setdefault(dtype, []).append(name)
        merged = {name: _merged_values([records[i].inputs[name] for i in members])
                  for name in others}
        described = [[dtype, names, 0] for dtype, names in groups.items()]
        sizes = [len(names) * np.dtype(dtype).itemsize for dtype, names in groups.items()]
        start = 0
        for i in members:
            inputs, rows = records[i].inputs, records[i].rows
            stop = start + rows
            own = {name: values[start:stop] for name, values in merged.items()}
            start = stop
            if rows < BLOCK_ROWS:  # orjson writes a few numbers faster than numpy copies them
                out[i] = pack(rows, [], {**inputs, **own})
                continue
            data = [b"".join([inputs[name].tobytes() for name in names])
                    for names in groups.values()]
            if any(len(d) != rows * size for d, size in zip(data, sizes, strict=True)):
                # not one value per row (never from validation): every column as JSON
                out[i] = pack(rows, [], {name: _merged_values([inputs[name]]) for name in order})
                continue
            header = {"n": rows, "blocks": described, "values": own, "names": order}
            out[i] = _framed(orjson.dumps(header, default=_plain), data)
    return out


_DTYPE = operator.attrgetter("dtype")


def _block_dtype(array: Any) -> str | None:
    """The dtype a column travels in a block as; None for one that goes to the header."""
    if isinstance(array, np.ndarray) and array.dtype.kind in "biuf" and array.ndim == 1:
        return str(array.dtype.str)
    return None


def _merged_values(arrays: list[Any]) -> list[Any]:
    """The column's values across the batch as Python values, in one conversion.

    Missing values stay NaN or pd.NA here; the header's JSON writes both as null.
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

    Columns: the inputs (when the rows hold them), ``__prediction__``,
    ``__score__<class>`` for classifiers (as in the reference sample), then
    ``__target__`` (None until a label arrives), ``__id__``, ``__ts__``,
    ``__version__``, ``__variant__``. Records of versions with other columns
    or classes are padded with None rather than dropped. Each record's pieces are kept as
    they are read (numpy blocks, lists) and joined once per column at the end.
    """
    columns: dict[str, _Column] = {}
    scores: dict[str, _Column] = {}
    predicted, labels = _Column(), _Column()
    ids: list[Any] = []
    ts: list[float] = []
    versions: list[int] = []
    variants: list[str] = []
    counts: list[int] = []
    total = 0
    for row in rows:
        outputs = outputs_of(row["outputs"])
        n = int(row["rows"])
        if "inputs" in row:
            for name, values in unpack(row["inputs"])[1].items():
                columns.setdefault(name, _Column()).add(values, total)
        proba = outputs.get("probabilities")
        if proba is not None and len(proba):
            for k, label in enumerate(outputs.get("classes") or []):
                values = proba[:, k] if isinstance(proba, np.ndarray) else [p[k] for p in proba]
                scores.setdefault(f"{SCORE_PREFIX}{label}", _Column()).add(values, total)
        predicted.add(outputs["predict"], total)
        if row["labels"] is not None:
            labels.add(orjson.loads(row["labels"]), total)
        ids.append(row["id"])
        ts.append(row["ts"])
        versions.append(row["version"])
        variants.append(row["variant"])
        counts.append(n)
        total += n
    frame = pd.DataFrame({
        **{name: column.values(total) for name, column in columns.items()},
        PREDICTION_COLUMN: predicted.values(total),
        **{name: column.values(total) for name, column in scores.items()},
    })
    index = frame.index
    frame[TARGET_COLUMN] = pd.Series(labels.values(total, numeric=False), index=index)
    frame[ID_COLUMN] = pd.Series(_repeated(ids, counts), index=index)
    frame[TS_COLUMN] = pd.Series(np.repeat(np.asarray(ts, dtype=float), counts), index=index)
    frame[VERSION_COLUMN] = pd.Series(np.repeat(np.asarray(versions, dtype=np.int64), counts),
                                      index=index)
    frame[VARIANT_COLUMN] = pd.Series(_repeated(variants, counts), index=index)
    return frame


def _repeated(values: list[Any], counts: list[int]) -> list[Any]:
    return list(itertools.chain.from_iterable(map(itertools.repeat, values, counts)))


class _Column:
    """One column's pieces, record after record; rows a record lacks are None."""

    def __init__(self) -> None:
        self.pieces: list[Any] = []
        self.filled = 0

    def add(self, values: Any, at: int) -> None:
        if at > self.filled:
            self.pieces.append([None] * (at - self.filled))
        self.pieces.append(values)
        self.filled = at + len(values)

    def values(self, total: int, numeric: bool = True) -> Any:
        """The column: one numpy array when every piece is one of a numeric dtype (float
        widened to float64, as JSON read it), else a list of Python values."""
        if total > self.filled:
            self.pieces.append([None] * (total - self.filled))
            self.filled = total
        pieces = self.pieces
        if numeric and pieces and all(isinstance(p, np.ndarray) for p in pieces):
            kinds = {p.dtype for p in pieces}
            if len(kinds) == 1 and pieces[0].dtype.kind in "biuf":
                joined = np.concatenate(pieces) if len(pieces) > 1 else pieces[0].copy()
                return joined.astype(np.float64) if joined.dtype.kind == "f" else joined
        return list(itertools.chain.from_iterable(
            p.tolist() if isinstance(p, np.ndarray) else p for p in pieces))
