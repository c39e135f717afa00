"""Choosing a runtime: every candidate must match the native pipeline, the fastest serves.

The native pipeline is the reference. The compiled (NumPy) and jit (numba) runtimes must
match it to ``compiled.TOLERANCE`` and the ONNX one to ``onnx.TOLERANCE`` on the version's
reference rows, with the same labels wherever the native score is not within that
tolerance of the decision threshold. The verified candidates are then timed on one row
and on a 64-row batch (a lone client and a busy server) and the one with the smallest
sum serves.

Where another runtime wins but the jit runtime verified too, one-row batches may still go
through jit: only where it is faster at one row in the condition a server calls it in
(see ``_gain_after_a_request``). A forced runtime (``wanted`` other than ``auto``) serves
every batch itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcanary.models.runtime import NativeRuntime, Prediction, Runtime
from mlcanary.serve import compiled, onnx
from mlcanary.serve.messages import encode_request, parse_request
from mlcanary.serve.runtime import LoneRows, Unsupported
from mlcanary.serve.validation import (
    Columns,
    columns_from_frame,
    columns_from_tensors,
    tensors_from_frame,
)
from mlcanary.signature import Signature

log = logging.getLogger(__name__)

RuntimeChoice = Literal["auto", "native", "compiled", "onnx", "jit"]

TIMING_BATCHES = (1, 64)
TIMING_REPEATS = 7
LONE_RUNS, LONE_RUN = 12, 9
"""Runs of one-row requests decoded and predicted, per runtime, to judge which is faster."""

Factory = Callable[[Any, Signature], Runtime]


def jit_runtime(pipeline: Any, signature: Signature) -> Runtime:
    """The jit runtime, numba imported only when a pipeline is loaded (~0.4 s)."""
    try:
        from mlcanary.serve.jit import JitRuntime
    except Exception as exc:  # numba missing, broken on this platform, or cannot compile
        log.warning("the jit runtime cannot be imported", exc_info=True)
        raise Unsupported(f"cannot import it: {type(exc).__name__}: {exc}") from exc
    return JitRuntime(pipeline, signature)


CANDIDATES: dict[str, tuple[Factory, float]] = {
    "compiled": (compiled.CompiledRuntime, compiled.TOLERANCE),
    "onnx": (onnx.OnnxRuntime, onnx.TOLERANCE),
    "jit": (jit_runtime, compiled.TOLERANCE),
}


@dataclass(frozen=True)
class Trial:
    """One candidate on the reference rows: how far from native, and how fast."""

    kind: str
    runtime: Runtime | None
    difference: float | None
    seconds: tuple[float, ...] = ()
    failure: str = ""

    def describe(self) -> str:
        if self.runtime is None:
            return f"{self.kind}: {self.failure}"
        times = " / ".join(
            f"{s * 1e6:,.0f} µs ({n} row{'s' if n > 1 else ''})"
            for n, s in zip(TIMING_BATCHES, self.seconds, strict=True)
        )
        if self.difference is None:
            return f"{self.kind}: {times}"
        return f"{self.kind}: max abs difference {self.difference:.1e}, {times}"


def choose(
    pipeline: Any, signature: Signature, reference: pd.DataFrame, wanted: RuntimeChoice = "auto"
) -> tuple[Runtime, str]:
    """The runtime to serve with, and a sentence saying which and why (metadata, logs).

    ``wanted`` other than ``auto`` forces one runtime; it must still verify.
    """
    rows = columns_from_frame(reference, signature)
    native = NativeRuntime(pipeline, signature)
    expected = native.predict(rows)
    trials = [Trial("native", native, None, _timings(native, rows))]
    for kind, (factory, tolerance) in CANDIDATES.items():
        if wanted not in ("auto", kind):
            continue
        trials.append(_trial(kind, factory, tolerance, pipeline, signature, rows, expected))
    usable = [t for t in trials if t.runtime is not None and (wanted in ("auto", t.kind))]
    if not usable:
        failed = "; ".join(t.describe() for t in trials if t.kind == wanted)
        raise RuntimeError(f"runtime '{wanted}' cannot serve this version: {failed}")
    best = min(usable, key=lambda t: sum(t.seconds))
    assert best.runtime is not None
    others = "; ".join(t.describe() for t in trials if t is not best)
    why = f"{best.kind} runtime ({best.describe()}"
    why += f"; vs {others})" if others else ")"
    if wanted != "auto":
        return best.runtime, why
    jit = next((t for t in trials if t.kind == "jit"), None)
    runtime, lone = _lone_rows(best, jit, signature, reference)
    return runtime, f"{why}; lone rows: {lone}"


def _trial(
    kind: str,
    factory: Factory,
    tolerance: float,
    pipeline: Any,
    signature: Signature,
    rows: Columns,
    expected: Prediction,
) -> Trial:
    try:
        runtime = factory(pipeline, signature)
        got = runtime.predict(rows)
    except Unsupported as exc:
        return Trial(kind, None, None, failure=f"not available ({exc})")
    except Exception as exc:  # a converter's bug must not stop the server: native serves
        log.warning("runtime %s failed on the reference rows", kind, exc_info=True)
        return Trial(kind, None, None, failure=f"failed ({type(exc).__name__}: {exc})")
    difference = _difference(expected, got)
    if difference > tolerance:
        return Trial(kind, None, difference, failure=f"differed by {difference:.1e}")
    if not _same_labels(expected, got, tolerance, getattr(runtime, "threshold", None)):
        return Trial(kind, None, difference, failure="gave other labels")
    return Trial(kind, runtime, difference, _timings(runtime, rows))


def _lone_rows(
    best: Trial, jit: Trial | None, signature: Signature, reference: pd.DataFrame
) -> tuple[Runtime, str]:
    """``best``'s runtime, with one-row batches through the jit runtime where that verified
    and is faster after decoding a request; and a phrase saying which."""
    assert best.runtime is not None
    if best.kind == "jit":
        return best.runtime, "jit"
    if jit is None or jit.runtime is None:
        return best.runtime, f"{best.kind} (jit {jit.failure if jit else 'not tried'})"
    lone = LoneRows(best.runtime, jit.runtime, signature.columns[0].name)
    gain = _gain_after_a_request(best.runtime, lone, reference, signature)
    if gain <= 0:
        return best.runtime, f"{best.kind} (jit {-gain * 1e6:.1f} µs slower a request)"
    return lone, f"jit ({gain * 1e6:.1f} µs faster a request than {best.kind})"


def _gain_after_a_request(
    runtime: Runtime, other: Runtime, reference: pd.DataFrame, signature: Signature
) -> float:
    """Median seconds ``other`` saves over ``runtime`` on one row, each call made right after
    decoding a one-row request, as the server makes it.

    Timed in a tight loop, a predictor runs with its code and trees in the caches; after
    a request's decoding they are partly evicted, and how much that costs differs between
    runtimes (LightGBM's own single-row predictor, a third faster alone than ONNX Runtime
    on a 537-tree model, was no faster there). A server calls one runtime request after request,
    so each is timed in runs of ``LONE_RUN`` calls (the first of a run, which follows the
    other runtime's, not counted), the runs alternating.
    """
    body, _ = encode_request(tensors_from_frame(reference.head(1), signature))

    def decode() -> Columns:
        return columns_from_tensors(parse_request(body).inputs, signature, "reject")

    seconds: dict[int, list[float]] = {0: [], 1: []}
    for turn in range(LONE_RUNS):
        for which in (turn % 2, 1 - turn % 2):
            candidate = (runtime, other)[which]
            for call in range(LONE_RUN):
                start = time.perf_counter()
                candidate.predict(decode())
                if call:
                    seconds[which].append(time.perf_counter() - start)
    return float(np.median(seconds[0]) - np.median(seconds[1]))


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


def _timings(runtime: Runtime, rows: Columns) -> tuple[float, ...]:
    """Median seconds per predict call at each of ``TIMING_BATCHES`` rows."""
    out = []
    for n in TIMING_BATCHES:
        batch = {name: values[:n] for name, values in rows.items()}
        runtime.predict(batch)  # warm-up
        samples = []
        for _ in range(TIMING_REPEATS):
            start = time.perf_counter()
            runtime.predict(batch)
            samples.append(time.perf_counter() - start)
        out.append(float(np.median(samples)))
    return tuple(out)
