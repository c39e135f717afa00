"""The numba-compiled loops of the ``jit`` runtime: features, trees and decision in one call.

Every loop the runtime runs per request is here, in one module, so that numba's on-disk
cache (keyed by this file) is never stale for one function while fresh for another. Each
function is compiled eagerly for exactly the array types ``jit`` passes (C-contiguous),
so an array of another layout is a ``TypeError``, never a compilation in the middle of a
request. The first import compiles (~2 s) and writes the cache; later imports load it.

The tree walk follows LightGBM's ``Tree::NumericalDecision`` exactly (a NaN is 0 unless
the split sends missing values one way; a value within ``ZERO`` of 0 is 0), and the
scores are summed in LightGBM's order, so the trees give LightGBM's raw scores to the bit.
"""

from __future__ import annotations

import numba
import numpy as np

from mlcanary.serve.forest import IDENTITY, SIGMOID

ZERO = float(np.float32(1e-35))
"""LightGBM's ``kZeroThreshold``: a value this close to 0 is 0 to its trees."""

# Feature operations, one per model feature (``ops[j] = (op, source, argument)``): a value
# (its fill if missing) or whether it is missing, from ``numbers`` (argument NUMBERS) or
# ``dates`` (DATES); a category's one-hot column, its encoding, or whether it is missing.
FILL, IS_GAP, ONE_HOT, TABLE, TEXT_GAP = range(5)
NUMBERS, DATES = 0, 1
GAP, UNSEEN = -2, -1
"""Codes of a missing text and of a category the encoder did not see in training."""
# LightGBM's missing-value types in a split's flags (bits 1-2; bit 0: missing goes left).
_NONE, _ZERO, _NAN = 0, 1, 2

_PREDICT = (
    "Tuple((f8[:, ::1], i8[::1]))("
    "f8[:, ::1], f8[:, ::1], i8[:, ::1], i8, "  # numbers [k, n], dates [n, 5d], codes [c, n], n
    "i8[:, ::1], f8[::1], i8[::1], f8[::1], "  # ops, their constants, fill codes, tables
    "f8[::1], i4[:, ::1], u1[::1], i4[::1], b1, i8, "  # values, links, flags, roots, plain, per
    "i8, f8, f8[::1], f8)"  # transform, sigmoid, prior, threshold
)


@numba.njit(cache=True, nogil=True)
def _features(numbers, dates, codes, n, ops, constants, fills, tables):  # type: ignore[no-untyped-def]
    X = np.empty((n, ops.shape[0]))
    for j in range(ops.shape[0]):
        op, source, argument, value = ops[j, 0], ops[j, 1], ops[j, 2], constants[j]
        for r in range(n):
            if op <= IS_GAP:  # FILL or IS_GAP
                x = numbers[source, r] if argument == NUMBERS else dates[r, source]
                if op == FILL:
                    X[r, j] = value if x != x else x
                else:
                    X[r, j] = 1.0 if x != x else 0.0
            elif op == TEXT_GAP:
                X[r, j] = 1.0 if codes[source, r] == GAP else 0.0
            else:
                code = codes[source, r]
                if code == GAP:
                    code = fills[source]
                if op == ONE_HOT:
                    X[r, j] = 1.0 if code == argument else 0.0
                else:  # TABLE: the category's encoding, the target's mean if unseen
                    X[r, j] = tables[argument + code] if code >= 0 else value
    return X


@numba.njit(cache=True, nogil=True)
def _walk(X, values, links, flags, roots, plain, raw):  # type: ignore[no-untyped-def]
    """Add each tree's leaf to its class's raw score, tree by tree (a tree's nodes stay in
    the caches for every row of a batch). A split's left child is the next node."""
    per = raw.shape[1]
    if plain:  # every split reads a missing value as 0: so can the features, once
        for r in range(X.shape[0]):
            for j in range(X.shape[1]):
                x = X[r, j]
                if x != x or -ZERO <= x <= ZERO:
                    X[r, j] = 0.0
    for t in range(roots.shape[0]):
        k = t % per
        for r in range(X.shape[0]):
            node = roots[t]
            feature = links[node, 0]
            while feature >= 0:
                x = X[r, feature]
                left = x <= values[node] if plain else _goes_left(x, values[node], flags[node])
                node = node + 1 if left else links[node, 1]
                feature = links[node, 0]
            raw[r, k] += values[node]


@numba.njit(cache=True, nogil=True, inline="always")
def _goes_left(x, threshold, flags):  # type: ignore[no-untyped-def]
    """LightGBM's ``Tree::NumericalDecision``."""
    missing = flags >> 1
    if x != x:
        if missing == _NAN:
            return flags & 1 == 1
        x = 0.0
    elif -ZERO <= x <= ZERO:
        x = 0.0
    if missing == _ZERO and x == 0.0:
        return flags & 1 == 1
    return x <= threshold


@numba.njit(cache=True, nogil=True)
def _decide(raw, transform, sigmoid, prior, threshold):  # type: ignore[no-untyped-def]
    n, per = raw.shape
    index = np.zeros(n, np.int64)
    if transform == IDENTITY:
        return raw, index
    k = 2 if per == 1 else per
    proba = np.empty((n, k))
    for r in range(n):
        if transform == SIGMOID:
            p = 1.0 / (1.0 + np.exp(-sigmoid * raw[r, 0]))
            proba[r, 0] = 1.0 - p
            proba[r, 1] = p
        else:  # SOFTMAX, as LightGBM's Common::Softmax
            top = raw[r, 0]
            for c in range(1, per):
                top = max(top, raw[r, c])
            total = 0.0
            for c in range(per):
                proba[r, c] = np.exp(raw[r, c] - top)
                total += proba[r, c]
            for c in range(per):
                proba[r, c] /= total
        if prior.shape[0]:
            total = 0.0
            for c in range(k):
                proba[r, c] *= prior[c]
                total += proba[r, c]
            for c in range(k):
                proba[r, c] /= total
        if threshold == threshold:  # a binary classifier's registered threshold
            index[r] = 1 if proba[r, 1] >= threshold else 0
        else:
            best = 0
            for c in range(1, k):
                if proba[r, c] > proba[r, best]:
                    best = c
            index[r] = best
    return proba, index


@numba.njit(_PREDICT, cache=True, nogil=True)
def predict(numbers, dates, codes, n, ops, constants, fills, tables,  # type: ignore[no-untyped-def]
            values, links, flags, roots, plain, per, transform, sigmoid, prior, threshold):
    """Scores ([n, classes] probabilities, or [n, 1] values) and each row's class index."""
    X = _features(numbers, dates, codes, n, ops, constants, fills, tables)
    raw = np.zeros((n, per))
    _walk(X, values, links, flags, roots, plain, raw)
    return _decide(raw, transform, sigmoid, prior, threshold)
