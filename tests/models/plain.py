"""Models logged the way a team logs them without mlcanary: plain MLflow code."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tests.conftest import with_registry


def plain_table(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Numbers, counts, text and flags; the label depends on all four kinds."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "amount": rng.gamma(2.0, 50.0, rows),
        "visits": rng.integers(0, 20, rows),
        "plan": rng.choice(["basic", "plus", "pro"], rows),
        "mobile": rng.random(rows) < 0.4,
    })
    score = (frame.amount / 100 + frame.visits / 10 + (frame.plan == "pro") - frame.mobile
             + rng.normal(0, 0.5, rows))
    return frame, (score > score.median()).astype(np.int64).rename("churned")


def fitted_pipeline(frame: pd.DataFrame, target: pd.Series) -> Any:
    """One-hot ``plan``, scale the rest, then a logistic regression."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encode = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                                     remainder=StandardScaler())
    return make_pipeline(encode, LogisticRegression()).fit(frame, target)


@contextlib.contextmanager
def tracking(home: Path) -> Iterator[str]:
    """MLflow's fluent API pointed at ``home``'s registry for the block (then put back)."""
    import mlflow

    with_registry(home)
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    environment = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    uri = f"sqlite:///{(home / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield uri
    finally:  # MLflow also writes them to os.environ, where mlcanary's settings read them
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            del os.environ[key]
        os.environ.update(environment)


def log_plain(home: Path, name: str, model: Any, frame: pd.DataFrame, *,
              serialization: str | None = None, signed: bool = True,
              champion: bool = True, flavour: str = "sklearn") -> int:
    """Log and register ``model`` as plain MLflow code would (``mlflow.<flavour>``); return
    its version."""
    import importlib

    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    with tracking(home) as uri:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment is not None else \
            client.create_experiment(name, artifact_location=str(home / "plain-artifacts"))
        options: dict[str, Any] = {}
        if signed:  # MLflow infers a signature from an input example: none without one
            options["signature"] = infer_signature(frame, model.predict(frame))
            options["input_example"] = frame.head(5)
        if serialization is not None:
            options["serialization_format"] = serialization
        with mlflow.start_run(experiment_id=experiment_id) as run:
            flavoured = importlib.import_module(f"mlflow.{flavour}")
            info = flavoured.log_model(model, name="model", **options)
        # By the client, not log_model's registered_model_name: that registers in the
        # default registry (./mlflow.db), whatever set_registry_uri says.
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name)
        version = int(client.create_model_version(name, info.model_uri, run.info.run_id).version)
        if champion:
            client.set_registered_model_alias(name, "champion", str(version))
    return version
