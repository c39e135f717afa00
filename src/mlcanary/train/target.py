"""The target column: task inference, missing labels and per-class checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlcanary.errors import InvalidInput
from mlcanary.train.schema import require_column
from mlcanary.types import Task

MAX_CLASSES_FOR_NUMBERS = 10
"""An integer target with at most this many values is read as classes."""


@dataclass
class Target:
    """The rows to learn from and what to learn."""

    X: pd.DataFrame
    y: np.ndarray
    task: Task


def prepare_target(
    frame: pd.DataFrame,
    column: str,
    task: Task | None,
    folds: int,
    warn: Callable[[str], None],
) -> Target:
    """Split off the target, infer the task, and check the data can be cross-validated."""
    require_column(frame, column, "--target")
    y_raw = frame[column]
    missing = y_raw.isna()
    if missing.all():
        raise InvalidInput(f"--target '{column}': all {len(frame)} values are missing")
    if missing.any():
        warn(f"target '{column}': {int(missing.sum())} rows without a value were left out")
        frame, y_raw = frame.loc[~missing], y_raw[~missing]
    min_rows = max(2 * folds, 10)
    if len(frame) < min_rows:
        raise InvalidInput(
            f"data has {len(frame)} labelled row{'s' if len(frame) != 1 else ''}; "
            f"expected at least {min_rows} to cross-validate with {folds} folds"
        )
    task = task or _infer_task(y_raw)
    X = frame.drop(columns=[column]).reset_index(drop=True)
    if task == "regression":
        y = pd.to_numeric(y_raw, errors="coerce")
        if y.isna().any() or pd.api.types.is_bool_dtype(y_raw):
            bad = y_raw[y.isna()].astype(str).unique()[:3].tolist()
            raise InvalidInput(
                f"--target '{column}': regression needs numbers, got values like {bad}; "
                "use --task classification for labels"
            )
        return Target(X, y.to_numpy(dtype=float), task)
    counts = y_raw.value_counts()
    if len(counts) < 2:
        raise InvalidInput(
            f"--target '{column}': has one class "
            f"({_plain(counts.index[0])!r} in all {len(y_raw)} rows); "
            "expected at least 2 classes for classification"
        )
    rare = counts[counts < folds]
    if not rare.empty:
        raise InvalidInput(
            f"--target '{column}': class {_plain(rare.index[0])!r} has {int(rare.iloc[0])} rows; "
            f"expected at least {folds} per class for {folds}-fold cross-validation "
            "(use fewer --folds or merge rare classes)"
        )
    if y_raw.dtype == object and y_raw.map(type).nunique() > 1:
        y_raw = y_raw.astype(str)  # labels of mixed types ("1" and 1) compare as text
    return Target(X, y_raw.to_numpy(), task)


def _infer_task(y: pd.Series) -> Task:
    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return "classification"
    values = y.to_numpy(dtype=float)
    if np.all(np.mod(values, 1) == 0) and len(np.unique(values)) <= MAX_CLASSES_FOR_NUMBERS:
        return "classification"
    return "regression"


def _plain(value: object) -> object:
    """NumPy scalars become Python scalars so labels serialise to JSON."""
    return value.item() if isinstance(value, np.generic) else value
