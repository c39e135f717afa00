"""Choosing a runtime: the first, in a fixed order, that matches the native pipeline.

The order is ``ORDER``: ONNX Runtime, then the compiled (NumPy) runtime, then the native
pipeline itself. Measured end to end (``benchmarks/runtimes_served.py``, docs/benchmarks.md),
ONNX serves 1.10-1.25x the requests/s of the compiled runtime and the compiled runtime
3-14x the native pipeline's on one pinned core. A candidate serves only after it matches
the native pipeline on the version's reference rows: ONNX to ``onnx.TOLERANCE`` (float32),
the compiled runtime to ``compiled.TOLERANCE``, with the same labels wherever the native
score is not within that tolerance of the decision threshold. Nothing is timed at load, so
which runtime serves a version does not depend on how busy the machine was.

A forced runtime (``wanted`` other than ``auto``) must verify the same way. The choice
made for ``auto`` is kept with the version (``serve/kept.py``), so later starts skip it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcanary.models.runtime import NativeRuntime, Prediction, Runtime
from mlcanary.serve.runtime import Unsupported
from mlcanary.serve.validation import Columns, columns_from_frame
from mlcanary.signature import Signature

log = logging.getLogger(__name__)

RuntimeChoice = Literal["auto", "native", "compiled", "onnx"]
ORDER: tuple[str, ...] = ("onnx", "compiled", "native")
"""Tried in this order; the first that verifies serves."""

Factory = Callable[[Any, Signature], tuple[Runtime, float]]
"""A runtime over a pipeline, and how far its scores may be from the native ones."""


def _onnx(pipeline: Any, signature: Signature) -> tuple[Runtime, float]:
    from mlcanary.serve import onnx  # imported when a pipeline is loaded, not with serving

    return onnx.OnnxRuntime.convert(pipeline, signature), onnx.TOLERANCE


def _compiled(pipeline: Any, signature: Signature) -> tuple[Runtime, float]:
    from mlcanary.serve import compiled

    return compiled.CompiledRuntime(pipeline, signature), compiled.TOLERANCE


CANDIDATES: dict[str, Factory] = {"onnx": _onnx, "compiled": _compiled}


@dataclass(frozen=True)
class Choice:
    """The runtime that serves, why, and the native answer it was verified against."""

    runtime: Runtime
    note: str
    expected: Prediction
    """The native pipeline's answer on the reference rows."""
    threshold: float | None


def choose(
    pipeline: Any,
    signature: Signature,
    reference: pd.DataFrame,
    wanted: RuntimeChoice = "auto",
    start: str | None = None,
) -> Choice:
    """The runtime to serve with, and a sentence saying which and why (metadata, logs).

    ``start``: begin the order there (a kept choice: the runtimes before it failed)."""
    rows = columns_from_frame(reference, signature)
    native = NativeRuntime(pipeline, signature)
    expected = native.predict(rows)
    order = ORDER if wanted == "auto" else (wanted,)
    if start is not None and wanted == "auto":
        order = ORDER[ORDER.index(start):]
    failures: list[str] = []
    for kind in order:
        if kind == "native":
            return Choice(native, _why("native", None, failures), expected, native.threshold)
        runtime, found = _verified(kind, pipeline, signature, rows, expected)
        if runtime is not None:
            return Choice(runtime, _why(kind, found, failures), expected, native.threshold)
        failures.append(f"{kind}: {found}")
    raise RuntimeError(f"runtime '{wanted}' cannot serve this version: {'; '.join(failures)}")


def _why(kind: str, difference: str | None, failures: list[str]) -> str:
    why = f"{kind} runtime"
    if difference is not None:
        why += f" (max abs difference from native {difference})"
    return why + (f"; not {'; not '.join(failures)}" if failures else "")


def _verified(
    kind: str, pipeline: Any, signature: Signature, rows: Columns, expected: Prediction
) -> tuple[Runtime | None, str]:
    """The runtime if it matches ``expected``; else None and why not."""
    try:
        runtime, tolerance = CANDIDATES[kind](pipeline, signature)
        got = runtime.predict(rows)
    except Unsupported as exc:
        return None, f"not available ({exc})"
    except Exception as exc:  # a converter's bug must not stop the server: another serves
        log.warning("runtime %s failed on the reference rows", kind, exc_info=True)
        return None, f"failed ({type(exc).__name__}: {exc})"
    same, found = compare(expected, got, tolerance, getattr(runtime, "threshold", None))
    return (runtime if same else None), found


def compare(
    expected: Prediction, got: Prediction, tolerance: float, threshold: float | None
) -> tuple[bool, str]:
    """Whether ``got`` matches ``expected`` (scores within ``tolerance``, the same labels
    away from ties), and the largest difference or why not."""
    difference = _difference(expected, got)
    if difference > tolerance:
        return False, f"differed by {difference:.1e}"
    if not _same_labels(expected, got, tolerance, threshold):
        return False, "gave other labels"
    return True, f"{difference:.1e}"


def _difference(expected: Prediction, got: Prediction) -> float:
    a = expected.proba if expected.proba is not None else expected.predicted
    b = got.proba if got.proba is not None else got.predicted
    if a is None or b is None or len(a) == 0:
        return 0.0
    return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))


def _same_labels(
    expected: Prediction, got: Prediction, tolerance: float, threshold: float | None
) -> bool:
    """Labels agree, except where the native score is within ``tolerance`` of a tie."""
    differ = expected.predicted != got.predicted
    if expected.proba is None or not differ.any():
        return not bool(differ.any())
    proba = expected.proba
    if threshold is not None:
        close = np.abs(proba[:, 1] - threshold) <= tolerance
    else:
        top = np.sort(proba, axis=1)
        close = top[:, -1] - top[:, -2] <= 2 * tolerance
    return bool(np.all(close[differ]))
