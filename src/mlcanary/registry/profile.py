"""The reference profile: what held-out training data looked like, for later drift tests.

Statistics are computed on every held-out row (rows that cross-validation scored with a
model that did not see them), with the scores the served pipeline gives them
(``train.fit.served_scores``); the stored sample is capped at ``reference_rows``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlcanary.signature import ColumnSpec, Signature
from mlcanary.types import PREDICTION_COLUMN, SCORE_PREFIX, TARGET_COLUMN

__all__ = ["PREDICTION_COLUMN", "SCORE_PREFIX", "TARGET_COLUMN", "build_profile"]

QUANTILES = np.linspace(0.0, 1.0, 101)
TOP_CATEGORIES = 100


def build_profile(
    X: pd.DataFrame,
    y: np.ndarray,
    scores: np.ndarray,
    predicted: np.ndarray,
    signature: Signature,
    importance: dict[str, float],
    *,
    max_rows: int,
    seed: int,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Return the profile (JSON-ready) and the capped reference sample.

    ``scores`` are held-out probabilities [n, classes] or values [n]; ``predicted``
    the held-out labels or values.
    """
    profile: dict[str, Any] = {
        "rows": len(X),
        "columns": {c.name: column_profile(X[c.name], c) for c in signature.columns},
        "prediction": prediction_profile(scores, predicted, signature),
        "importance": importance,
    }
    sample = X.copy()
    sample[TARGET_COLUMN] = y
    sample[PREDICTION_COLUMN] = predicted
    if scores.ndim == 2:
        for k, label in enumerate(signature.classes or []):
            sample[f"{SCORE_PREFIX}{label}"] = scores[:, k]
    if len(sample) > max_rows:
        sample = sample.sample(n=max_rows, random_state=seed).sort_index()
    profile["sample_rows"] = len(sample)
    return profile, sample.reset_index(drop=True)


def column_profile(series: pd.Series, spec: ColumnSpec) -> dict[str, Any]:
    """Missing rate plus quantiles (numbers) or category frequencies (text)."""
    out: dict[str, Any] = {
        "kind": spec.kind,
        "missing_rate": float(series.isna().mean()),
        "used": spec.used,
    }
    values = series.dropna()
    if spec.kind in ("numeric", "integer", "boolean") and len(values):
        numbers = as_numbers(values)
        if numbers.size:
            out.update(
                mean=float(numbers.mean()),
                std=float(numbers.std()),
                quantiles=np.quantile(numbers, QUANTILES).tolist(),
            )
    elif spec.kind == "datetime" and len(values):
        stamps = pd.to_datetime(values, errors="coerce", format="mixed", utc=True).dropna()
        if len(stamps):
            out.update(min=stamps.min().isoformat(), max=stamps.max().isoformat())
    elif len(values):
        frequencies = values.astype(str).value_counts(normalize=True)
        out["n_categories"] = len(frequencies)
        top = frequencies.head(TOP_CATEGORIES)
        out["frequencies"] = {str(k): float(v) for k, v in top.items()}
        out["other_share"] = float(1.0 - top.sum())
    return out


def as_numbers(values: pd.Series) -> np.ndarray:
    """Numbers, booleans and their text forms ('true', 'no', ...) as floats, NaN dropped."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=float)
    else:
        text = values.astype(str).str.strip().str.lower()
        text = text.replace({"true": "1", "yes": "1", "false": "0", "no": "0"})
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    return np.asarray(numbers[~np.isnan(numbers)])


def prediction_profile(
    scores: np.ndarray, predicted: np.ndarray, signature: Signature
) -> dict[str, Any]:
    """Distribution of held-out scores (quantiles) and predicted labels (frequencies)."""
    if signature.task == "regression":
        return {"quantiles": np.quantile(scores, QUANTILES).tolist(), "mean": float(scores.mean())}
    classes = signature.classes or []
    labels, counts = np.unique(predicted.astype(str), return_counts=True)
    out: dict[str, Any] = {
        "label_frequencies": {
            str(k): float(c / counts.sum()) for k, c in zip(labels, counts, strict=True)
        },
        "mean_scores": {str(c): float(scores[:, k].mean()) for k, c in enumerate(classes)},
    }
    if len(classes) == 2:
        out["positive_class"] = classes[1]
        out["quantiles"] = np.quantile(scores[:, 1], QUANTILES).tolist()
    return out
