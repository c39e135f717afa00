"""The cross-validation plan: which rows train and which rows test, per fold."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    TimeSeriesSplit,
)

from mlcanary.errors import InvalidInput
from mlcanary.types import Task

Fold = tuple[np.ndarray, np.ndarray]


def make_folds(
    y: np.ndarray,
    task: Task,
    n_folds: int,
    *,
    ordered_by_time: bool = False,
    groups: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[list[Fold], str]:
    """Return the folds and a one-line description of the plan.

    Time order gives forward-chaining splits (train on the past, test on the next
    block); groups give group k-fold (a group never straddles train and test);
    otherwise stratified k-fold for classification and shuffled k-fold for regression.
    """
    positions = np.arange(len(y))
    if ordered_by_time:
        splitter = TimeSeriesSplit(n_splits=n_folds)
        plan = f"{n_folds} forward-chaining time splits"
        return list(splitter.split(positions)), plan
    if groups is not None:
        n_groups = np.unique(groups).size
        if n_groups < n_folds:
            raise InvalidInput(
                f"--group-column: has {n_groups} groups; expected at least {n_folds} "
                f"for {n_folds}-fold group cross-validation"
            )
        if task == "classification":
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            plan = f"stratified group {n_folds}-fold ({n_groups} groups)"
        else:
            splitter = GroupKFold(n_splits=n_folds)
            plan = f"group {n_folds}-fold ({n_groups} groups)"
        return list(splitter.split(positions, y, groups)), plan
    if task == "classification":
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        return list(splitter.split(positions, y)), f"stratified {n_folds}-fold"
    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(positions)), f"shuffled {n_folds}-fold"
