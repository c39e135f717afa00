"""Optuna search, run inside each training fold so reported scores stay honest.

Each study scores candidates on an inner hold-out split (20%) of the rows it is given,
never on the outer fold's test rows. The final model gets its own study on all rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import train_test_split

from mlcanary.train.evaluate import predict_scores, score
from mlcanary.types import Task

INNER_HOLDOUT = 0.2

Builder = Callable[[dict[str, Any]], Any]
"""params -> unfitted pipeline."""


def suggest(trial: optuna.Trial, family: str, task: Task) -> dict[str, Any]:
    """The search space of each model family."""
    if family == "lightgbm":
        return {
            "num_leaves": trial.suggest_int("num_leaves", 7, 255, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
    if family == "random-forest":
        return {
            "max_features": trial.suggest_float("max_features", 0.1, 1.0),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 30, log=True),
        }
    if task == "regression":
        return {"alpha": trial.suggest_float("alpha", 1e-4, 1e3, log=True)}
    return {"C": trial.suggest_float("C", 1e-4, 1e3, log=True)}


def tune(
    build: Builder,
    family: str,
    X: pd.DataFrame,
    y: np.ndarray,
    task: Task,
    classes: np.ndarray | None,
    *,
    trials: int,
    seed: int,
    on_trial: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Return the best parameters found in ``trials`` candidates on an inner split."""
    stratify = y if task == "classification" else None
    X_fit, X_val, y_fit, y_val = train_test_split(
        X, y, test_size=INNER_HOLDOUT, stratify=stratify, random_state=seed
    )

    def objective(trial: optuna.Trial) -> float:
        model = build(suggest(trial, family, task))
        model.fit(X_fit, y_fit)
        value = score(task, y_val, predict_scores(model, X_val, task), classes)
        if on_trial is not None:
            on_trial()
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return dict(study.best_params)
