"""From request tensors to the table the pipeline expects, checked against the signature.

This is the edge: whatever the model and the monitor will see is checked here, once,
and every refusal names the input, what this model expects and what came. Two request
layouts are accepted:

* one tensor per column, named after it, of shape [n] or [n, 1]: the general form;
* one FP32/FP64 tensor ``input-0`` of shape [n, columns], in signature order: what
  generic V2 clients send, possible only when every column is a number.

The table's dtypes follow the column kind, never the tensor type, so that every batch
looks alike downstream: numeric float64, integer Int64, boolean boolean, categorical and
datetime a NumPy object array of str with None where a value is missing. (pandas' own
text array would cost ~20 µs per column per request to build; every runtime and the
prediction log read the object array directly.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from mlcanary.dates import DateCache, iso_stamps
from mlcanary.errors import InvalidInput
from mlcanary.serve.tensors import FLOATS, INTEGERS, NUMPY_TYPES, Datatype, Tensor
from mlcanary.signature import ColumnSpec, Signature
from mlcanary.types import ColumnKind

Unseen = Literal["reject", "missing"]
"""What to do with a category the model never saw: refuse the request, or treat as missing."""

MATRIX_INPUT = "input-0"

ArrayLike = np.ndarray | ExtensionArray

_NUMBERS: frozenset[Datatype] = FLOATS | INTEGERS
_ACCEPTED: dict[ColumnKind, frozenset[Datatype]] = {
    "numeric": _NUMBERS,
    "integer": _NUMBERS,
    "boolean": _NUMBERS | {"BOOL", "BYTES"},
    "categorical": frozenset({"BYTES"}),
    "datetime": frozenset({"BYTES"}),
}
_EXPECTED: dict[ColumnKind, str] = {
    "numeric": "FP64 (or another numeric type)",
    "integer": "INT64 (or another integer type, or FP with whole values)",
    "boolean": "BOOL (or numbers 0 and 1, or text true/false/yes/no)",
    "categorical": "BYTES (UTF-8 text)",
    "datetime": "BYTES (UTF-8 dates or timestamps)",
}
_INT64_LIMIT = 2**63
_TEXT_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass(slots=True)
class _Column:
    """One column's values as sent (1-D), and how an error names where they came from.

    Not frozen, like ``Tensor``: there is one for every column of every request.
    """

    where: str
    datatype: Datatype
    values: np.ndarray


Columns = dict[str, ArrayLike]
"""Validated rows as one array per signature column: cheaper to build and merge than a
DataFrame, which is made once per batch, only for runtimes that need one."""


def rows_from_tensors(
    inputs: Sequence[Tensor], signature: Signature, unseen: Unseen = "reject"
) -> pd.DataFrame:
    """The request's rows with every signature column, used or not, in signature order."""
    return as_frame(columns_from_tensors(inputs, signature, unseen))


def columns_from_tensors(
    inputs: Sequence[Tensor], signature: Signature, unseen: Unseen = "reject"
) -> Columns:
    """Every signature column, used or not, in signature order, checked.

    Inputs have unique names (``parse_request`` ensures it). An empty batch is refused:
    it would reach the model as a shape error instead of an answer.
    """
    if _is_matrix(inputs, signature):
        columns = _split_matrix(inputs[0], signature)
    else:
        columns = _match_columns(inputs, signature)
    _check_row_counts(columns)
    dates = signature.date_cache()
    return {spec.name: _checked(spec, columns[spec.name], unseen, dates)
            for spec in signature.columns}


def columns_from_frame(
    frame: pd.DataFrame, signature: Signature, unseen: Unseen = "reject"
) -> Columns:
    """A table's rows, checked and typed exactly as a request carrying them would be."""
    return columns_from_tensors(tensors_from_frame(frame, signature), signature, unseen)


def check_columns(frame: pd.DataFrame, signature: Signature) -> None:
    """Refuse a table that lacks any column the model was trained on."""
    missing = [c.name for c in signature.columns if c.name not in frame.columns]
    if missing:
        raise InvalidInput(
            f"data: missing columns {missing}; expected every column the model was trained on"
        )


def tensors_from_frame(frame: pd.DataFrame, signature: Signature) -> list[Tensor]:
    """One tensor per signature column, typed as a client would send the file's values."""
    check_columns(frame, signature)
    tensors = []
    for spec in signature.columns:
        column = frame[spec.name]
        n = len(column)
        if pd.api.types.is_bool_dtype(column) and not column.isna().any():
            tensors.append(Tensor(spec.name, "BOOL", [n], column.to_numpy(dtype=bool)))
        elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            tensors.append(Tensor(spec.name, "FP64", [n], values))
        else:
            texts = [None if pd.isna(v) else str(v).encode() for v in column.tolist()]
            tensors.append(Tensor(spec.name, "BYTES", [n], np.array(texts, dtype=object)))
    return tensors


def as_frame(columns: Columns) -> pd.DataFrame:
    return pd.DataFrame(columns, copy=False)  # every column is a fresh array already


def merge_columns(parts: Sequence[Columns]) -> Columns:
    """Stack several requests' columns into one batch, column by column."""
    if len(parts) == 1:
        return parts[0]
    out: Columns = {}
    for name, first in parts[0].items():
        arrays = [part[name] for part in parts]
        if isinstance(first, np.ndarray):
            out[name] = np.concatenate(arrays)  # type: ignore[arg-type]
        else:
            out[name] = type(first)._concat_same_type(arrays)  # type: ignore[attr-defined]
    return out


def row_count(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _is_matrix(inputs: Sequence[Tensor], signature: Signature) -> bool:
    return (
        len(inputs) == 1
        and inputs[0].name == MATRIX_INPUT
        and MATRIX_INPUT not in signature.names(used_only=False)
    )


def _split_matrix(tensor: Tensor, signature: Signature) -> dict[str, _Column]:
    where = f"input '{MATRIX_INPUT}'"
    names = signature.names(used_only=False)
    text = [c for c in signature.columns if c.kind in ("categorical", "datetime")]
    if text:
        described = ", ".join(f"'{c.name}' ({c.kind})" for c in text[:10])
        raise InvalidInput(
            f"{where}: one [n, {len(names)}] tensor can carry only numeric, integer and boolean "
            f"columns, but this model also takes {described}, which travel as BYTES; expected "
            f"one tensor per column, named {_listed(names)}"
        )
    shape = tensor.shape
    if tensor.datatype not in ("FP32", "FP64") or len(shape) != 2 or shape[1] != len(names):
        raise InvalidInput(
            f"{where}: expected FP32 or FP64 with shape [n, {len(names)}] (columns "
            f"{_listed(names)} in this order), got {tensor.datatype} with shape {shape}"
        )
    matrix = tensor.array()
    return {
        name: _Column(f"{where} column {j} ('{name}')", tensor.datatype, matrix[:, j])
        for j, name in enumerate(names)
    }


def _match_columns(inputs: Sequence[Tensor], signature: Signature) -> dict[str, _Column]:
    expected = signature.names(used_only=False)
    sent = [t.name for t in inputs]
    expected_set, sent_set = set(expected), set(sent)
    unknown = [name for name in sent if name not in expected_set]
    missing = [name for name in expected if name not in sent_set]
    if unknown:
        also = f"; missing {_listed(missing)}" if missing else ""
        raise InvalidInput(
            f"inputs {_listed(unknown)}: not columns of this model; expected one tensor per "
            f"column, named {_listed(expected)}{also}"
        )
    if missing:
        raise InvalidInput(
            f"inputs: missing columns {_listed(missing)}; expected one tensor per column, "
            f"named {_listed(expected)}"
        )
    specs = {spec.name: spec for spec in signature.columns}
    return {t.name: _column(t, specs[t.name]) for t in inputs}


def _column(tensor: Tensor, spec: ColumnSpec) -> _Column:
    where = f"input '{tensor.name}'"
    shape = tensor.shape
    typed = tensor.datatype in _ACCEPTED[spec.kind]
    if not typed or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        hint = "; a column tensor has shape [n] or [n, 1]" if typed else ""
        raise InvalidInput(
            f"{where}: expected {_EXPECTED[spec.kind]} with shape [n], "
            f"got {tensor.datatype} with shape {shape}{hint}"
        )
    data = tensor.data  # parsed tensors hold an array of their datatype already
    values = (data if type(data) is np.ndarray and data.dtype == NUMPY_TYPES[tensor.datatype]
              else tensor.array())
    return _Column(where, tensor.datatype, values if values.ndim == 1 else values.reshape(-1))


def _check_row_counts(columns: dict[str, _Column]) -> None:
    counts = {len(column.values) for column in columns.values()}
    if len(counts) == 1 and 0 not in counts:
        return
    by_count: dict[int, list[str]] = {}
    for name, column in columns.items():
        by_count.setdefault(len(column.values), []).append(name)
    if len(by_count) > 1:
        described = "; ".join(f"{n} in {_listed(names)}" for n, names in by_count.items())
        raise InvalidInput(
            f"inputs: expected the same number of rows in every input, got {described}"
        )
    if 0 in by_count:
        raise InvalidInput("inputs: expected at least one row, got 0")


def _checked(spec: ColumnSpec, column: _Column, unseen: Unseen, dates: DateCache) -> ArrayLike:
    if spec.kind not in ("categorical", "datetime"):
        values, missing = _NUMBERS_OF_KIND[spec.kind](column)
        _require_values(spec, column, missing)
        return values
    texts, missing = _texts(column)
    _require_values(spec, column, missing)
    if spec.kind == "datetime":
        _check_dates(texts, missing, column.where, dates)
    # An unused column's new values (a new ID, a constant that varies) are news for the
    # monitor, not a reason to refuse the request.
    if spec.kind == "categorical" and spec.used and spec.categories is not None:
        texts = _known_categories(texts, spec, column.where, unseen)
    return texts


def _require_values(spec: ColumnSpec, column: _Column, missing: np.ndarray) -> None:
    # np.count_nonzero, here and below, is a C call; ndarray.any() and .all() go through
    # Python and cost ~2 µs on a short array, for every column of every request.
    if not spec.nullable and np.count_nonzero(missing):
        raise InvalidInput(
            f"{column.where}: missing value at row {int(missing.argmax())} "
            f"({int(missing.sum())} in all); expected a value in every row "
            f"('{spec.name}' is not nullable: training data had none missing)"
        )


def _numbers(column: _Column) -> tuple[ArrayLike, np.ndarray]:
    values = column.values.astype(np.float64)
    return values, np.isnan(values)


def _integers(column: _Column) -> tuple[ArrayLike, np.ndarray]:
    values = column.values
    if column.datatype in FLOATS:
        missing = np.isnan(values)
        filled = np.where(missing, 0.0, values)  # a gap counts as whole; inf is out of range
        whole = (np.abs(filled) < _INT64_LIMIT) & (np.floor(filled) == filled)
        if np.count_nonzero(whole) < len(whole):
            row = int(whole.argmin())
            raise InvalidInput(
                f"{column.where}: expected whole numbers (or NaN) for an integer column, "
                f"got {values[row].item()!r} at row {row}"
            )
        return pd.arrays.IntegerArray(filled.astype(np.int64), missing), missing
    if column.datatype == "UINT64" and np.count_nonzero(values >= _INT64_LIMIT):
        row = int((values >= _INT64_LIMIT).argmax())
        raise InvalidInput(
            f"{column.where}: expected integers below 2**63, got {values[row].item()} at row {row}"
        )
    missing = np.zeros(len(values), dtype=bool)
    return pd.arrays.IntegerArray(values.astype(np.int64), missing), missing


def _booleans(column: _Column) -> tuple[ArrayLike, np.ndarray]:
    values = column.values
    missing = np.zeros(len(values), dtype=bool)
    if column.datatype == "BOOL":
        return pd.arrays.BooleanArray(values.astype(bool), missing), missing
    if column.datatype == "BYTES":  # the text forms a CSV file holds ("yes", "False", ...)
        texts, missing = _texts(column)
        flags = []
        for i, text in enumerate(texts.tolist()):
            flag = False if text is None else _TEXT_BOOLEANS.get(text.strip().lower())
            if flag is None:
                raise InvalidInput(
                    f"{column.where}: expected true/false, yes/no or 1/0 for a boolean column, "
                    f"got {text!r} at row {i}"
                )
            flags.append(flag)
        return pd.arrays.BooleanArray(np.array(flags, dtype=bool), missing), missing
    if column.datatype in FLOATS:
        missing = np.isnan(values)
    bad = ~missing & (values != 0) & (values != 1)
    if np.count_nonzero(bad):
        row = int(bad.argmax())
        raise InvalidInput(
            f"{column.where}: expected 0 or 1 (or NaN) for a boolean column, "
            f"got {values[row].item()!r} at row {row}"
        )
    return pd.arrays.BooleanArray(values == 1, missing), missing


def _texts(column: _Column) -> tuple[np.ndarray, np.ndarray]:
    """Text as an object array with None where missing, and the missing mask.

    None, b"" and "" are missing, the way an empty field in a CSV file is.
    """
    values = column.values.tolist()
    try:  # parsed requests hold bytes (or None): one comprehension decodes them all
        texts = [value.decode() if value else None for value in values]
    except (AttributeError, UnicodeDecodeError):  # text already, or not UTF-8
        texts = [_text(value, row, column.where) for row, value in enumerate(values)]
    out = np.empty(len(texts), dtype=np.object_)
    out[:] = texts
    return out, np.array([text is None for text in texts], dtype=bool)


def _text(value: str | bytes | None, row: int, where: str) -> str | None:
    if not value:
        return None
    if isinstance(value, str):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{where}: row {row} is not valid UTF-8 ({exc.reason} at byte "
            f"{exc.start}); expected UTF-8 text"
        ) from exc


_NUMBERS_OF_KIND: dict[ColumnKind, Callable[[_Column], tuple[ArrayLike, np.ndarray]]] = {
    "numeric": _numbers,
    "integer": _integers,
    "boolean": _booleans,
}


def _check_dates(texts: np.ndarray, missing: np.ndarray, where: str, dates: DateCache) -> None:
    if dates.all_known(texts) or iso_stamps(texts) is not None:  # plain ISO dates: no pandas
        return
    rows = np.flatnonzero(~missing)
    parsed = pd.to_datetime(pd.Series(texts[rows]), errors="coerce", format="mixed", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(rows[int(bad.argmax())])
        raise InvalidInput(
            f"{where}: expected dates or timestamps (e.g. '2024-01-31'), "
            f"got {texts[row]!r} at row {row}"
        )


def _known_categories(
    texts: np.ndarray, spec: ColumnSpec, where: str, unseen: Unseen
) -> np.ndarray:
    """Check (or, under "missing", blank in place) the values training never saw."""
    allowed = spec.category_set()
    rows = [i for i, t in enumerate(texts.tolist()) if t is not None and t not in allowed]
    if not rows:
        return texts
    unknown = np.zeros(len(texts), dtype=bool)
    unknown[rows] = True
    if unseen == "missing":
        texts[unknown] = None
        return texts
    row = int(unknown.argmax())
    distinct = len(set(texts[unknown]))
    others = f" ({distinct} unseen values in all)" if distinct > 1 else ""
    raise InvalidInput(
        f"{where}: unseen category {texts[row]!r} at row {row}{others}; "
        f"expected one of {_listed(spec.categories or [])}"
    )


def _listed(names: Sequence[str], k: int = 10) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    more = f", ... ({len(names)} in all)" if len(names) > k else ""
    return f"[{shown}{more}]"
