"""The runtime chosen for a version, kept with it in the registry: later starts skip the choice.

The first server to load a version with ``runtime = auto`` converts and verifies it
(``serve/choice.py``) and keeps the outcome in the version's run, artifact folder
``SERVING_FOLDER``: ``choice.json`` (the runtime, its note, the decision threshold and the native
pipeline's scores on the reference rows it was verified on) and, when ONNX serves, its
plan (``onnx/graph.onnx``, ``onnx/plan.json``). The model directory the version points at
is never changed.

A later start reads them first. A kept ONNX plan is opened without the pickled pipeline,
so neither scikit-learn nor LightGBM nor a converter is imported, and verified again
against the kept native scores on the same rows; if it no longer matches (another ONNX
Runtime, another reference) the version is chosen afresh. A kept choice of another
runtime starts the order there (those before it failed already).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.models.runtime import Prediction, class_labels, decide
from mlcanary.registry.versions import SERVING_FOLDER, ModelRegistry, VersionInfo
from mlcanary.serve.choice import Choice, compare
from mlcanary.serve.onnx import TOLERANCE, OnnxPlan, OnnxRuntime
from mlcanary.serve.validation import columns_from_frame
from mlcanary.signature import Signature

log = logging.getLogger(__name__)

CHOICE = "choice.json"
ONNX = "onnx"


@dataclass(frozen=True)
class Kept:
    """A choice read back from the registry."""

    runtime: str
    note: str
    rows: int
    threshold: float | None
    scores: list[Any]
    """The native pipeline's probabilities (classifiers) or values on the first ``rows``."""
    plan: OnnxPlan | None

    def expected(self, signature: Signature) -> Prediction:
        classes = class_labels(signature)
        if classes is None:
            return Prediction(np.asarray(self.scores, dtype=np.float64), None)
        return decide(np.asarray(self.scores, dtype=np.float64), classes, self.threshold)

    def onnx(self, signature: Signature, reference: pd.DataFrame) -> tuple[OnnxRuntime, str] | None:
        """The kept plan as a runtime, if it still matches the kept native scores."""
        if self.plan is None or len(reference) != self.rows:
            return None
        runtime = OnnxRuntime(self.plan, signature)
        got = runtime.predict(columns_from_frame(reference, signature))
        same, found = compare(self.expected(signature), got, TOLERANCE, self.threshold)
        if not same:
            log.warning("the kept ONNX plan %s on the reference rows: choosing afresh", found)
            return None
        return runtime, f"{self.note}; kept with the version, verified again ({found})"


def read(registry: ModelRegistry, info: VersionInfo) -> Kept | None:
    """The kept choice of a version, or None (none kept, or unreadable: choose afresh)."""
    try:
        with tempfile.TemporaryDirectory(prefix="mlcanary-kept-") as tmp:
            folder = registry.kept(info, SERVING_FOLDER, Path(tmp))
            if folder is None or not (folder / CHOICE).is_file():
                return None
            data = json.loads((folder / CHOICE).read_text(encoding="utf-8"))
            plan = OnnxPlan.read(folder / ONNX) if data["runtime"] == "onnx" else None
            return Kept(data["runtime"], data["note"], int(data["rows"]), data["threshold"],
                        data["scores"], plan)
    except Exception:  # a cache: what cannot be read is chosen again
        log.warning("model '%s' version %s: its kept runtime choice is unreadable",
                    info.name, info.version, exc_info=True)
        return None


def write(registry: ModelRegistry, info: VersionInfo, choice: Choice, rows: int) -> None:
    """Keep ``choice`` with the version; a failure (a read-only registry) only logs."""
    expected = choice.expected
    scores = expected.proba if expected.proba is not None else expected.predicted
    document = {
        "runtime": choice.runtime.kind,
        "note": choice.note,
        "rows": rows,
        "threshold": choice.threshold,
        "scores": np.asarray(scores, dtype=np.float64).tolist(),
    }
    try:
        with tempfile.TemporaryDirectory(prefix="mlcanary-kept-") as tmp:
            folder = Path(tmp)
            (folder / CHOICE).write_text(json.dumps(document), encoding="utf-8")
            if isinstance(choice.runtime, OnnxRuntime):
                choice.runtime.plan.write(folder / ONNX)
            registry.keep(info, SERVING_FOLDER, folder)
    except Exception:
        log.warning("model '%s' version %s: could not keep its runtime choice",
                    info.name, info.version, exc_info=True)
