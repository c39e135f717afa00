"""Turn a ``TrainResult`` into a registered model version (bundle files, metrics, tags)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mlcanary.config import Settings
from mlcanary.progress import Steps
from mlcanary.registry.versions import ModelRegistry, VersionInfo
from mlcanary.train.fit import TrainResult
from mlcanary.train.spec import TrainSpec


def publish(
    result: TrainResult,
    registry: ModelRegistry,
    report_html: str,
    tags: Mapping[str, str] | None = None,
) -> VersionInfo:
    """Register ``result`` under its spec's model name; alias per the spec's ``promote``.

    ``tags`` go on the version's run beside mlcanary's own (a retrain's lineage).
    """
    spec = result.spec
    reference = io.BytesIO()
    result.reference.to_parquet(reference, index=False)
    files: dict[str, bytes | str] = {
        "signature.json": json_text(result.signature.as_dict()),
        "profile.json": json_text(result.profile),
        "reference.parquet": reference.getvalue(),
        "metrics.json": json_text(metrics_document(result)),
        "report.html": report_html,
        "spec.json": spec.model_dump_json(indent=2),
    }
    flat: dict[str, float] = {}
    for prefix, summary in (
        ("", result.metrics),
        ("baseline_", result.baseline),
        ("linear_", result.linear),
    ):
        for name, (mean, std) in summary.items():
            flat[f"{prefix}{name}"] = mean
            if not prefix:
                flat[f"{name}_std"] = std
    if result.threshold is not None:
        flat["threshold"] = result.threshold.value
    params = {
        "model": spec.model,
        "task": result.signature.task,
        "folds": spec.folds,
        "trials": spec.trials,
        "cv_plan": result.plan,
        "target": spec.target,
        "data": str(spec.data),
        "data_sha256": result.fingerprint.sha256,
        "rows": result.fingerprint.rows,
        "columns": result.fingerprint.columns,
        **{f"tuned_{k}": v for k, v in result.params.items()},
    }
    tags = {
        "mlcanary.task": result.signature.task,
        "mlcanary.model": spec.model,
        "mlcanary.verdict": result.diagnosis.verdict,
        "mlcanary.data_sha256": result.fingerprint.sha256,
        **(tags or {}),
    }
    example = result.reference[[c.name for c in result.signature.columns]].head(5)
    return registry.register(
        spec.model_name,
        result.pipeline,
        files=files,
        metrics=flat,
        params=params,
        tags=tags,
        input_example=example,
        promote=spec.promote,
    )


def train_and_register(
    spec: TrainSpec, settings: Settings, steps: Steps, tags: Mapping[str, str] | None = None
) -> tuple[TrainResult, VersionInfo, Path]:
    """Train, render the report, register the version, and write the report under home."""
    from mlcanary.train.fit import train
    from mlcanary.train.report import render_report

    result = train(spec, settings, steps)
    html = render_report(result, title=spec.model_name)
    version = publish(result, ModelRegistry(settings), html, tags)
    report = settings.reports_dir / f"{spec.model_name}-v{version.version}.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(html, encoding="utf-8")
    return result, version, report


def metrics_document(result: TrainResult) -> dict[str, Any]:
    """Everything numeric about the evaluation, for people and later stages."""

    def table(summary: dict[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
        return {k: {"mean": m, "std": s} for k, (m, s) in summary.items()}

    return {
        "cv_plan": result.plan,
        "model": table(result.metrics),
        "baseline": table(result.baseline),
        "linear": table(result.linear),
        "per_fold": result.per_fold,
        "threshold": None if result.threshold is None else vars(result.threshold),
        "diagnosis": result.diagnosis.as_dict(),
        "importance": result.importance,
        "fingerprint": result.fingerprint.as_dict(),
        "class_weights": "balanced" if result.balanced else None,
        "params": result.params,
    }


def json_text(data: Any) -> str:
    """``data`` as the JSON files a version keeps (NumPy values as plain ones)."""
    return json.dumps(data, indent=2, default=_plain, allow_nan=True)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
