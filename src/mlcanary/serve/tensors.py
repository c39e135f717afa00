"""Open Inference Protocol v2 tensors, and how their elements travel: JSON lists or raw bytes.

A tensor arrives in one of two encodings. JSON ``data`` is a flat or nested (row-major)
list. The binary tensor data extension sends the elements raw after the JSON header:
fixed-width little-endian for numbers and BOOL, and for BYTES each element as a 4-byte
little-endian length followed by its bytes. Both decode to the same NumPy array, so
nothing past this module knows which one the client chose.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from mlcanary.errors import InvalidInput

Datatype = Literal[
    "BOOL",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
"""The tensor element types this server reads and writes (BF16 is not among them)."""

DATATYPES: tuple[Datatype, ...] = get_args(Datatype)
FLOATS: frozenset[Datatype] = frozenset({"FP16", "FP32", "FP64"})
INTEGERS: frozenset[Datatype] = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)

# Explicit little-endian types: the wire order, whatever the host's.
NUMPY_TYPES: dict[Datatype, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}

_CLEAN_KINDS: dict[Datatype, str] = {
    **dict.fromkeys(INTEGERS, "iu"),
    **dict.fromkeys(FLOATS, "iuf"),
    "BOOL": "b",
    "BYTES": "O",
}
"""NumPy kinds that need no element-by-element check when JSON ``data`` is read."""
_BY_NAME: dict[str, Datatype] = {name: name for name in DATATYPES}
_LENGTH = struct.Struct("<I")
_FLOAT_INTS = 2**1024  # a Python int this large or larger does not fit a float64


@dataclass(eq=False, slots=True)
class Tensor:
    """One named array as the protocol carries it.

    Not frozen: a frozen dataclass sets each field through ``object.__setattr__``, which
    cost ~1.3 µs a tensor, for every column of every request.

    Parsed tensors hold ``data`` as an array of ``shape``; when it came as raw bytes the
    array is a read-only view of the request body, not a copy. BYTES elements are
    ``bytes``, or ``None`` where JSON sent ``null``. Tensors built for a response may
    also hold ``str`` elements or a plain (nested) list.
    """

    name: str
    datatype: Datatype
    shape: list[int]
    data: np.ndarray | list[Any]
    parameters: dict[str, Any] = field(default_factory=dict)

    def array(self) -> np.ndarray:
        """``data`` as an array of ``shape`` with the datatype's NumPy type."""
        return np.asarray(self.data, dtype=NUMPY_TYPES[self.datatype]).reshape(self.shape)


def datatype_named(value: object, where: str) -> Datatype:
    """Read a datatype name, or say which names exist."""
    found = _BY_NAME.get(value) if isinstance(value, str) else None
    if found is None:
        raise InvalidInput(
            f"{where}: unknown datatype {value!r}; expected one of {', '.join(DATATYPES)}"
        )
    return found


def from_json(data: object, datatype: Datatype, shape: list[int], where: str) -> np.ndarray:
    """Decode a JSON ``data`` list (flat or nested, row-major) into an array of ``shape``.

    ``null`` is read as NaN in FP tensors and as ``None`` in BYTES tensors: strict JSON
    has no NaN, so null is how a JSON client sends a missing value.
    """
    if not isinstance(data, list):
        raise InvalidInput(f"{where}: expected 'data' as a list, got {type(data).__name__}")
    try:
        values = np.asarray(data, dtype=np.object_ if datatype == "BYTES" else None)
        if values.dtype.kind not in _CLEAN_KINDS[datatype]:
            # NumPy turned mixed elements into text or floats; keep the client's own
            # values, so that the error can name the one that is wrong.
            values = np.asarray(data, dtype=np.object_)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(
            f"{where}: 'data' nests lists of unequal lengths; expected a flat list, or nested "
            f"lists that follow shape {shape}"
        ) from exc
    flat = values if values.ndim == 1 else values.reshape(-1)
    expected = shape[0] if len(shape) == 1 else math.prod(shape)
    if flat.size != expected:
        raise InvalidInput(
            f"{where}: expected {expected} elements for shape {shape}, got {flat.size}"
        )
    out = (_bytes_from_json(flat, where) if datatype == "BYTES"
           else _numbers_from_json(flat, datatype, where))
    return out if len(shape) == 1 else out.reshape(shape)


def from_raw(
    raw: bytes | memoryview, datatype: Datatype, shape: list[int], where: str
) -> np.ndarray:
    """Decode one tensor's binary data (the extension's layout) into an array of ``shape``."""
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_from_raw(memoryview(raw), count, shape, where).reshape(shape)
    target = NUMPY_TYPES[datatype]
    if len(raw) != count * target.itemsize:
        raise InvalidInput(
            f"{where}: expected {count * target.itemsize} bytes of binary data for {datatype} "
            f"with shape {shape} ({target.itemsize} per element), got {len(raw)}"
        )
    if datatype == "BOOL" and count:
        largest = int(np.frombuffer(raw, dtype=np.uint8).max())
        if largest > 1:
            raise InvalidInput(f"{where}: expected BOOL bytes 0 or 1, got {largest}")
    return np.frombuffer(raw, dtype=target).reshape(shape)


def to_json(tensor: Tensor) -> list[Any]:
    """The flat JSON ``data`` list of a tensor; BYTES elements become text."""
    values = tensor.array().reshape(-1).tolist()
    if tensor.datatype == "BYTES":
        return [v.decode() if isinstance(v, bytes) else v for v in values]
    return values


def to_raw(tensor: Tensor) -> bytes:
    """A tensor's elements in the binary tensor data layout."""
    values = tensor.array()
    if tensor.datatype != "BYTES":
        return np.ascontiguousarray(values).tobytes()
    chunks: list[bytes] = []
    for value in values.reshape(-1).tolist():
        item = value.encode() if isinstance(value, str) else (value or b"")
        chunks += (_LENGTH.pack(len(item)), item)
    return b"".join(chunks)


def _numbers_from_json(flat: np.ndarray, datatype: Datatype, where: str) -> np.ndarray:
    target = NUMPY_TYPES[datatype]
    if flat.size == 0:
        return np.empty(0, dtype=target)
    kind = flat.dtype.kind
    if datatype == "BOOL":
        if kind != "b":
            raise _reject(flat, where, "true or false", lambda v: isinstance(v, bool))
        return flat.astype(target)
    if datatype in INTEGERS:
        return _integers_from_json(flat, datatype, where)
    if kind in "iuf":
        if target == np.float64:  # nothing overflows; ``flat`` is a fresh array already
            return flat.astype(np.float64, copy=False)
        source = flat.astype(np.float64)
    elif kind == "O" and all(_is_number(v) for v in flat.tolist()):
        source = np.array([np.nan if v is None else v for v in flat.tolist()], dtype=np.float64)
    else:
        raise _reject(flat, where, "numbers (or null)", _is_number)
    with np.errstate(over="ignore"):
        out = source.astype(target)
    largest = float(np.finfo(target).max)
    if np.count_nonzero(np.isinf(out) & np.isfinite(source)):
        raise _reject(
            source,
            where,
            f"{datatype} values within ±{largest:g}",
            lambda v: not math.isfinite(v) or abs(v) <= largest,
        )
    return out


def _integers_from_json(flat: np.ndarray, datatype: Datatype, where: str) -> np.ndarray:
    target = NUMPY_TYPES[datatype]
    info = np.iinfo(target)
    if flat.dtype.kind in "iu" and flat.min() >= info.min and flat.max() <= info.max:
        return flat.astype(target)
    values = flat.tolist()
    if not all(_is_int(v) for v in values):
        raise _reject(flat, where, "integers", _is_int)
    if not all(info.min <= v <= info.max for v in values):
        raise _reject(
            flat,
            where,
            f"{datatype} values in [{info.min}, {info.max}]",
            lambda v: info.min <= v <= info.max,
        )
    return np.array(values, dtype=target)


def _bytes_from_json(flat: np.ndarray, where: str) -> np.ndarray:
    out = np.empty(flat.size, dtype=np.object_)
    for index, value in enumerate(flat.tolist()):
        if value is not None and not isinstance(value, str):
            raise _reject(flat, where, "strings (or null)", lambda v: v is None or type(v) is str)
        try:
            out[index] = None if value is None else value.encode()
        except UnicodeEncodeError as exc:
            raise InvalidInput(
                f"{where}: element {index} is not encodable as UTF-8 ({exc.reason}); expected text"
            ) from exc
    return out


def _bytes_from_raw(view: memoryview, count: int, shape: list[int], where: str) -> np.ndarray:
    data = bytes(view)  # one copy; slicing bytes then makes each element in one step
    end, unpack, size = len(data), _LENGTH.unpack_from, _LENGTH.size
    items: list[bytes] = []
    position = 0
    while position < end:
        start = position + size
        if start > end:
            raise InvalidInput(
                f"{where}: BYTES element {len(items)} is cut short ({end - position} bytes "
                "left); expected a 4-byte little-endian length before each element"
            )
        (length,) = unpack(data, position)
        position = start + length
        if position > end:
            raise InvalidInput(
                f"{where}: BYTES element {len(items)} declares {length} bytes, but only "
                f"{end - start} remain in its binary data"
            )
        items.append(data[start:position])
    if len(items) != count:
        raise InvalidInput(
            f"{where}: expected {count} elements for shape {shape}, got {len(items)}"
        )
    out = np.empty(count, dtype=np.object_)
    out[:] = items
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, float) or value is None:
        return True
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < _FLOAT_INTS


def _reject(flat: np.ndarray, where: str, expected: str, ok: Callable[[Any], bool]) -> InvalidInput:
    """The error for the first element that is not what the datatype allows."""
    values = flat.tolist()
    index = next((i for i, v in enumerate(values) if not _safely(ok, v)), 0)
    return InvalidInput(
        f"{where}: expected {expected} in 'data', got {values[index]!r} at element {index}"
    )


def _safely(ok: Callable[[Any], bool], value: object) -> bool:
    try:
        return ok(value)
    except TypeError:  # a comparison with text or null: not an allowed value either
        return False
