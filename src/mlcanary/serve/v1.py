"""TF-Serving style ``{"instances": [...]}`` for plain-JSON clients.

Rows come as objects (column -> value) or as lists in signature order; they are turned
into per-column V2 tensors so that one validation path checks every request.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcanary.errors import InvalidInput
from mlcanary.models.runtime import Prediction
from mlcanary.serve.tensors import Tensor
from mlcanary.signature import Signature

_TEXT_KINDS = frozenset({"categorical", "datetime"})


def tensors_from_instances(document: object, signature: Signature) -> list[Tensor]:
    """Per-column tensors from ``{"instances": [...]}``, or a message saying what is wrong."""
    if not isinstance(document, dict) or "instances" not in document:
        raise InvalidInput('request body: expected a JSON object {"instances": [...]}')
    rows = document["instances"]
    if not isinstance(rows, list) or not rows:
        raise InvalidInput("'instances': expected a non-empty list of rows")
    names = [c.name for c in signature.columns]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            unknown = sorted(set(row) - set(names))
            missing = [n for n in names if n not in row]
            if unknown or missing:
                raise InvalidInput(
                    f"instance {i}: unknown columns {unknown}, missing columns {missing}; "
                    f"expected the columns {names}"
                )
            values = [row[n] for n in names]
        elif isinstance(row, list):
            if len(row) != len(names):
                raise InvalidInput(
                    f"instance {i}: expected {len(names)} values in the order {names}, "
                    f"got {len(row)}"
                )
            values = row
        else:
            raise InvalidInput(
                f"instance {i}: expected an object or a list, got {type(row).__name__}"
            )
        for name, value in zip(names, values, strict=True):
            columns[name].append(value)
    return [_tensor(spec.name, spec.kind, columns[spec.name]) for spec in signature.columns]


def _tensor(name: str, kind: str, values: list[Any]) -> Tensor:
    where = f"column '{name}'"
    if kind in _TEXT_KINDS or any(isinstance(v, str) for v in values):
        data = np.array([None if v is None else str(v).encode() for v in values], dtype=object)
        if kind not in _TEXT_KINDS and kind != "boolean":
            bad = next(v for v in values if isinstance(v, str))
            raise InvalidInput(f"{where}: expected numbers, got text {bad!r}")
        return Tensor(name, "BYTES", [len(values)], data)
    if any(isinstance(v, dict | list) for v in values):
        raise InvalidInput(f"{where}: expected one value per row, got a nested object or list")
    numbers = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return Tensor(name, "FP64", [len(values)], numbers)


def predictions_document(prediction: Prediction, signature: Signature) -> dict[str, Any]:
    """``predictions`` per row, plus ``probabilities`` and ``classes`` for classifiers."""
    document: dict[str, Any] = {"predictions": prediction.predicted.tolist()}
    if prediction.proba is not None:
        document["probabilities"] = prediction.proba.tolist()
        document["classes"] = signature.classes
    return document
