"""A reference profile for a version mlcanary did not train (``mlcanary reference``).

A model logged with plain MLflow comes without what ``mlcanary train`` publishes beside its
pipelines: the reference sample drift is measured against, the columns' importance and
the baseline metrics quality is compared with. This builds them from a table the owner
gives (data like the model's training data, ideally held out): the same profile and
sample ``train`` writes (``registry.profile.build_profile``), scored by the model itself;
with the target column, permutation importances and the metrics on those rows with
bootstrap intervals. They are kept in the version's run, in ``REFERENCE_FOLDER``, where
``models/foreign.py`` reads them; the model directory itself is never changed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlcanary.errors import InvalidInput
from mlcanary.models.adapter import open_version
from mlcanary.models.foreign import REFERENCE_FOLDER, MlflowModel
from mlcanary.models.profiled import METRICS_FILE, PROFILE_FILE, REFERENCE_FILE
from mlcanary.models.runtime import Runtime
from mlcanary.registry.profile import build_profile
from mlcanary.registry.versions import ModelRegistry, VersionInfo
from mlcanary.signature import Signature
from mlcanary.train.metrics import classification_metrics, primary_metric, regression_metrics
from mlcanary.train.publish import json_text

BOOTSTRAPS = 100
"""Resamples behind each metric's interval."""
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 3


@dataclass
class Attached:
    """What ``attach_reference`` kept with a version."""

    info: VersionInfo
    rows: int
    sample_rows: int
    metrics: dict[str, tuple[float, float]]
    """Each metric on the rows, and its bootstrap standard deviation."""
    importance: dict[str, float]


def attach_reference(
    registry: ModelRegistry, name: str, version: int | str, data: pd.DataFrame, *,
    target: str | None = None, rows: int = 5000, seed: int = 0,
    advance: Callable[..., None] | None = None,
) -> Attached:
    """Profile ``data`` as the version's reference and keep it with the version."""
    info = registry.version(name, version)
    where = f"model '{name}' version {info.version}"
    model = open_version(registry, name, info.version)
    if not isinstance(model, MlflowModel):
        raise InvalidInput(f"{where}: trained by mlcanary, which kept its reference when it "
                           "was trained; expected a model logged with plain MLflow")
    signature = model.signature
    missing = [c.name for c in signature.columns if c.name not in data.columns]
    if missing:
        raise InvalidInput(f"data: missing columns {missing}; expected every column of the "
                           f"model's signature ({', '.join(signature.names(used_only=False))})")
    if target is not None and target not in data.columns:
        raise InvalidInput(f"--target: no column '{target}' in the data; expected one of "
                           f"{', '.join(map(str, data.columns))}")
    frame = data.reset_index(drop=True)
    features = frame[[c.name for c in signature.columns]]
    runtime = model.native()
    prediction = runtime.predict(features)
    scores = prediction.proba if prediction.proba is not None else prediction.predicted
    labels = _labels(frame[target], signature) if target is not None else None
    metrics: dict[str, tuple[float, float]] = {}
    importance: dict[str, float] = {}
    if labels is not None:
        metrics = _metrics(labels, scores, signature, seed)
        importance = _importance(runtime, features, labels, signature, seed)
    if advance is not None:
        advance()
    y = labels if labels is not None else np.full(len(frame), np.nan)
    profile, sample = build_profile(features, y, scores, prediction.predicted, signature,
                                    importance, max_rows=rows, seed=seed)
    with tempfile.TemporaryDirectory(prefix="mlcanary-reference-") as tmp:
        folder = Path(tmp)
        sample.to_parquet(folder / REFERENCE_FILE, index=False)
        (folder / PROFILE_FILE).write_text(json_text(profile))
        document = {"model": {k: {"mean": m, "std": s} for k, (m, s) in metrics.items()},
                    "rows": len(frame), "target": target}
        (folder / METRICS_FILE).write_text(json_text(document))
        registry.keep(info, REFERENCE_FOLDER, folder)
    return Attached(info, len(frame), len(sample), metrics, importance)


def _labels(values: pd.Series, signature: Signature) -> np.ndarray:
    """The target as the model's classes (or numbers for a regressor); unknown labels and
    missing values are refused, naming them."""
    if values.isna().any():
        raise InvalidInput(f"--target: {int(values.isna().sum())} missing value(s) in "
                           f"'{values.name}'; expected a label on every row")
    if signature.classes is None:
        try:
            return values.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"--target: '{values.name}' is not numeric; expected the "
                               "values a regressor predicts") from exc
    known = {str(c): c for c in signature.classes}
    unknown = sorted({str(v) for v in values} - set(known))
    if unknown:
        raise InvalidInput(f"--target: labels {unknown[:5]} are not among the model's "
                           f"classes; expected one of {sorted(known)}")
    return np.asarray([known[str(v)] for v in values])


def _score(labels: np.ndarray, scores: np.ndarray, signature: Signature) -> dict[str, float]:
    if signature.classes is None:
        return regression_metrics(labels, scores)
    classes = np.asarray(signature.classes)
    return classification_metrics(labels, scores, classes, None)


def _metrics(labels: np.ndarray, scores: np.ndarray, signature: Signature,
             seed: int) -> dict[str, tuple[float, float]]:
    whole = _score(labels, scores, signature)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in whole}
    for _ in range(BOOTSTRAPS):
        pick = rng.integers(0, len(labels), len(labels))
        if signature.classes is not None and len(np.unique(labels[pick])) < 2:
            continue
        for k, v in _score(labels[pick], scores[pick], signature).items():
            draws[k].append(v)
    return {k: (v, float(np.std(draws[k], ddof=1)) if len(draws[k]) > 1 else float("nan"))
            for k, v in whole.items()}


def _importance(runtime: Runtime, features: pd.DataFrame, labels: np.ndarray,
                signature: Signature, seed: int) -> dict[str, float]:
    """Each column's share of the primary metric lost when its values are shuffled."""
    metric = primary_metric(signature.task)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(features))[:IMPORTANCE_ROWS]
    rows, truth = features.iloc[pick].reset_index(drop=True), labels[pick]

    def score(frame: pd.DataFrame) -> float:
        prediction = runtime.predict(frame)
        scores = prediction.proba if prediction.proba is not None else prediction.predicted
        return _score(truth, scores, signature)[metric]

    base = score(rows)
    lost: dict[str, float] = {}
    for column in rows.columns:
        drops = []
        for _ in range(IMPORTANCE_REPEATS):
            shuffled = rows.copy()
            shuffled[column] = rows[column].to_numpy()[rng.permutation(len(rows))]
            drops.append(base - score(shuffled))
        lost[str(column)] = max(float(np.mean(drops)), 0.0)
    total = sum(lost.values())
    return {k: v / total for k, v in lost.items()} if total > 0 else {}

