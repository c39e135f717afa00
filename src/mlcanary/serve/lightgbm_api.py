"""LightGBM's C API, called straight through ``ctypes``, for the compiled runtime.

The Python package's ``Booster.predict`` checks and converts its input in Python, ~20 µs a
call, and runs on every core by default: on a small batch the OpenMP threads wait for each
other longer than the trees take (8 ms a call on one pinned core). ``MatrixPredictor``
binds ``LGBM_BoosterPredictForMat`` once, with the booster's handle, and calls it with the
arrays' addresses, on one thread up to ``ONE_THREAD`` rows (on every core beyond), the GIL
released while the trees run. It takes float64 features, as the native pipeline gives
LightGBM, so scores are the native ones. A LightGBM without this entry point raises
``Unsupported``.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from mlcanary.serve.runtime import Unsupported

_NORMAL, _FLOAT64, _ROW_MAJOR = 0, 1, 1
"""``C_API_PREDICT_NORMAL`` (probabilities or values), ``C_API_DTYPE_FLOAT64``, row-major."""

ONE_THREAD = 4096
"""Batches up to this many rows run on one thread; larger ones on every core."""


def _library(booster: Any) -> tuple[Any, int]:
    try:
        from lightgbm.basic import _LIB  # type: ignore[attr-defined]

        return _LIB, int(booster._handle.value)
    except (ImportError, AttributeError, TypeError) as exc:  # another LightGBM layout
        raise Unsupported(f"LightGBM's C API is not reachable ({exc})") from exc


class MatrixPredictor:
    """``LGBM_BoosterPredictForMat``: a float64 [n, features] matrix in, scores out
    ([n] for one score per row, [n, k] for k classes)."""

    def __init__(self, booster: Any, iterations: int) -> None:
        lib, self._handle = _library(booster)
        self.width = int(booster.num_feature())
        self.outputs = int(booster.num_model_per_iteration())
        self.iterations = iterations
        self._booster = booster  # the handle belongs to it
        self._last_error = lib.LGBM_GetLastError
        self._call = ctypes.CFUNCTYPE(  # releases the GIL while the trees run
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int32,
            ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
            ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
        )(("LGBM_BoosterPredictForMat", lib))
        self._one = b"num_threads=1"
        self._every = f"num_threads={_cores()}".encode()

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        n, width = X.shape
        if width != self.width:
            raise ValueError(f"LightGBM: {width} features, the model takes {self.width}")
        out = np.empty((n, self.outputs) if self.outputs > 1 else n)
        length = ctypes.c_int64()
        status = self._call(
            self._handle, X.ctypes.data, _FLOAT64, n, width, _ROW_MAJOR, _NORMAL, 0,
            self.iterations, self._one if n <= ONE_THREAD else self._every,
            ctypes.addressof(length), out.ctypes.data,
        )
        if status != 0:
            raise RuntimeError(f"LightGBM: {self._last_error().decode()}")
        return out


def _cores() -> int:
    """The cores this process may run on (``os.cpu_count`` counts the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1
