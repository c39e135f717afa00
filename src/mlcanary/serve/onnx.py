"""The ONNX Runtime runtime: preprocessing, model and decision as one ONNX graph.

``serve/onnx_convert.py`` writes a fitted pipeline as an ``OnnxPlan``: the graph and, for
each of its inputs, which columns it takes and how (numbers, dates or text). This module
serves a plan with ONNX Runtime, NumPy and pandas alone: a server whose version's plan
was kept (``serve/kept.py``) imports neither scikit-learn nor LightGBM nor the converters.

Each input is laid out the way the validated columns give it with the fewest NumPy calls
(the graph's first node, ``Transpose`` or ``Gather``, makes the layout the model wants: a
NumPy call costs ~1 µs here, about what ONNX Runtime takes for such a node): numbers as
one float32 row per column; dates as every calendar part the date cache holds (ONNX
cannot parse dates); text as strings, with missing values as ``MISSING``. A lone row (a
single client's request) is read value by value, with one NumPy call per input.

The preprocessing and the model are float32, as tree ensembles in ONNX are: scores
differ from the native pipeline by ~1e-7. The server uses this runtime only after it
matches the native one on the version's reference sample within ``TOLERANCE``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from mlcanary.dates import DateCache
from mlcanary.models.runtime import Prediction, Rows, class_labels
from mlcanary.serve.runtime import number_rows, one_number_row
from mlcanary.signature import Signature

TOLERANCE = 1e-5
"""Largest score difference from the native pipeline on the reference sample."""

MISSING = "\x00missing"
"""How a missing category enters the graph (ONNX string tensors have no NaN)."""

FEATURES = "features"
OPSET = 15
"""The default-domain opset: onnxmltools' LightGBM converter supports up to 15."""

LABEL, PROBABILITIES, VALUE = "mlcanary_class", "mlcanary_probabilities", "mlcanary_value"
"""The graph's outputs: the class index and float64 probabilities, or the float64 value."""

InputKind = Literal["numbers", "dates", "text"]

Feed = Callable[[Rows], np.ndarray]
"""Raw rows -> the array one graph input takes."""

OneRow = Callable[[Rows], "np.ndarray | None"]
"""The same for validated columns of one row; None when the row needs the general path."""


@dataclass(frozen=True)
class Input:
    """One graph input: the columns of one ColumnTransformer branch, read as ``kind``."""

    name: str
    kind: InputKind
    columns: tuple[str, ...]


@dataclass(frozen=True)
class OnnxPlan:
    """Everything serving a version with ONNX Runtime needs: no fitted object, no training
    code. ``threshold`` is the registered decision threshold (binary), for the label check."""

    graph: bytes
    inputs: tuple[Input, ...]
    threshold: float | None

    GRAPH = "graph.onnx"
    PLAN = "plan.json"

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / self.GRAPH).write_bytes(self.graph)
        plan = {
            "inputs": [{"name": i.name, "kind": i.kind, "columns": list(i.columns)}
                       for i in self.inputs],
            "threshold": self.threshold,
        }
        (folder / self.PLAN).write_text(json.dumps(plan, indent=2), encoding="utf-8")

    @classmethod
    def read(cls, folder: Path) -> OnnxPlan:
        plan = json.loads((folder / cls.PLAN).read_text(encoding="utf-8"))
        inputs = tuple(
            Input(i["name"], i["kind"], tuple(i["columns"])) for i in plan["inputs"]
        )
        return cls((folder / cls.GRAPH).read_bytes(), inputs, plan["threshold"])


class OnnxRuntime:
    """A plan in one ONNX Runtime session."""

    kind = "onnx"

    def __init__(self, plan: OnnxPlan, signature: Signature, threads: int = 1) -> None:
        import onnxruntime as ort

        self.plan = plan
        self.threshold = plan.threshold
        self.classes = class_labels(signature)
        self.feeds: list[tuple[str, Feed]] = []
        self.rows: list[tuple[str, OneRow]] = []
        """The same inputs for one row, the lone client's request (None: use ``feeds``)."""
        for item in plan.inputs:
            feed, row = _readers(item, signature.date_cache())
            self.feeds.append((item.name, feed))
            self.rows.append((item.name, row))
        self.first_column = plan.inputs[-1].columns[0]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.options = options
        self.session = ort.InferenceSession(
            plan.graph, options, providers=["CPUExecutionProvider"]
        )
        self.outputs = [VALUE] if self.classes is None else [LABEL, PROBABILITIES]

    @classmethod
    def convert(cls, pipeline: Any, signature: Signature, threads: int = 1) -> OnnxRuntime:
        """Write ``pipeline`` as a plan and serve it (imports the converters)."""
        from mlcanary.serve.onnx_convert import convert

        return cls(convert(pipeline, signature)[0], signature, threads)

    def inputs(self, rows: Rows) -> dict[str, np.ndarray]:
        """The graph's inputs for a batch (what a raw ONNX Runtime caller would pass)."""
        if not isinstance(rows, pd.DataFrame):
            first = rows[self.first_column]
            if len(first) == 1:
                one = {name: row(rows) for name, row in self.rows}
                if all(value is not None for value in one.values()):
                    return cast(dict[str, np.ndarray], one)
        return {name: feed(rows) for name, feed in self.feeds}

    def predict(self, rows: Rows) -> Prediction:
        out = self.session.run(self.outputs, self.inputs(rows))
        if self.classes is None:
            return Prediction(out[0], None)
        return Prediction(self.classes[out[0]], out[1])


def _readers(item: Input, dates: DateCache) -> tuple[Feed, OneRow]:
    columns = list(item.columns)
    if item.kind == "numbers":
        return (lambda rows: _float_input(rows, columns),
                lambda rows: one_number_row(rows, columns, np.float32))
    if item.kind == "dates":
        return (lambda rows: dates.date_rows(rows, columns),
                lambda rows: dates.one_date_row(rows, columns))
    feed: Feed = lambda rows: _text_input(rows, columns)  # noqa: E731
    return feed, feed  # one validated column without gaps is the input as it is


def _float_input(rows: Rows, columns: list[str]) -> np.ndarray:
    """[k, n] float32, one row per column (the graph transposes it), NaN in the gaps."""
    if isinstance(rows, pd.DataFrame):
        frame = rows[columns]
        if all(dtype.kind == "f" for dtype in frame.dtypes):
            return np.ascontiguousarray(frame.to_numpy(dtype=np.float32).T)
    return number_rows(rows, columns, np.float32)


def _text_input(rows: Rows, columns: list[str]) -> np.ndarray:
    if len(columns) == 1:  # one validated column without gaps is the input as it is
        values = rows[columns[0]]
        if isinstance(values, np.ndarray) and values.dtype == object and (
            None not in values.tolist()
        ):
            return values.reshape(-1, 1)
    out = np.empty((_length(rows, columns[0]), len(columns)), dtype=object)
    for j, name in enumerate(columns):
        values = rows[name]
        if isinstance(values, np.ndarray) and values.dtype == object:  # validated: str or None
            out[:, j] = values
            out[:, j][values == None] = MISSING  # noqa: E711 (element-wise)
        elif isinstance(values.dtype, pd.StringDtype):
            out[:, j] = values.to_numpy(dtype=object, na_value=MISSING)
        else:
            out[:, j] = [MISSING if _is_missing(v) else str(v) for v in values]
    return out


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _length(rows: Rows, column: str) -> int:
    return len(rows[column])
