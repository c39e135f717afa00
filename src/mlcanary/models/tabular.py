"""The first model adapter: a tabular pipeline ``mlcanary train`` registered.

Its MLflow model directory holds the fitted scikit-learn pipeline and an ``mlcanary/``
bundle beside it: ``signature.json``, ``reference.parquet``, ``profile.json`` (column
importance) and ``metrics.json`` (cross-validated metrics), all read when it is opened.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mlcanary.models.profiled import Profiled
from mlcanary.models.runtime import NativeRuntime, Runtime
from mlcanary.registry.versions import BUNDLE_DIR
from mlcanary.signature import Signature

SAMPLE_ROWS = 1000
"""Reference rows a loaded version must answer (and a faster runtime match)."""


class TabularModel:
    """A pipeline mlcanary trained, with the bundle it published beside it."""

    flavor = "mlcanary tabular pipeline (a model directory with an mlcanary/ bundle)"

    def __init__(self, signature: Signature, pipeline: Any, profiled: Profiled) -> None:
        self.signature = signature
        self.pipeline = pipeline
        self._profiled = profiled

    @staticmethod
    def recognises(root: Path) -> bool:
        return (root / BUNDLE_DIR / "signature.json").is_file()

    @classmethod
    def open(cls, root: Path, predictor: bool = True,
             attached: Callable[[], Path | None] | None = None) -> TabularModel:
        """``attached`` is not asked: the bundle holds the reference training made."""
        bundle = root / BUNDLE_DIR
        signature = Signature.from_dict(json.loads((bundle / "signature.json").read_text()))
        pipeline = None
        if predictor:
            import mlflow.sklearn

            pipeline = mlflow.sklearn.load_model(str(root))
        return cls(signature, pipeline, Profiled.read(bundle))

    def native(self) -> Runtime:
        if self.pipeline is None:
            raise ValueError("opened without its predictor (predictor=False)")
        return NativeRuntime(self.pipeline, self.signature)

    def reference(self) -> pd.DataFrame:
        return self._profiled.reference

    def sample(self) -> pd.DataFrame:
        return self.reference().head(SAMPLE_ROWS)[[c.name for c in self.signature.columns]]

    def importance(self) -> dict[str, float]:
        return self._profiled.importance()

    def baseline(self) -> dict[str, float]:
        return self._profiled.baseline()
