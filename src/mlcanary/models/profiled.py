"""What describes a version's reference, as every adapter reads it: the sample drift is
measured against (``reference.parquet``), the profile with the columns' importance
(``profile.json``) and the metrics quality is compared with (``metrics.json``).

``mlcanary train`` writes these files into its bundle (``train/publish.py``), ``mlcanary
reference`` into a folder kept with a foreign version (``models/attach.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

REFERENCE_FILE = "reference.parquet"
PROFILE_FILE = "profile.json"
METRICS_FILE = "metrics.json"


@dataclass
class Profiled:
    """A version's reference sample, profile and metrics documents."""

    reference: pd.DataFrame
    profile: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> Profiled:
        """The files in ``folder`` (a missing JSON document reads as empty)."""
        return cls(pd.read_parquet(folder / REFERENCE_FILE), _json(folder / PROFILE_FILE),
                   _json(folder / METRICS_FILE))

    @classmethod
    def empty(cls, columns: list[str]) -> Profiled:
        """No reference: a sample without rows, no importance, no baseline."""
        return cls(pd.DataFrame(columns=columns))

    def importance(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.profile.get("importance", {}).items()}

    def baseline(self) -> dict[str, float]:
        return {k: float(v["mean"]) for k, v in self.metrics.get("model", {}).items()}


def _json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return document
