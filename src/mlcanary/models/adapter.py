"""What a served model is, whoever trained it: the interface every model adapter keeps.

An adapter opens one downloaded version (an MLflow model directory) and answers for it:
its ``signature`` (input columns, task and classes, hence its outputs), ``native()`` (a
runtime that predicts a batch the way the model itself does), ``reference()`` (the sample
drift is measured against), ``importance()`` and ``baseline()`` (the columns that matter and
the cross-validated metrics quality is compared with), and ``pipeline`` (a fitted
scikit-learn pipeline the fast runtimes may compile, or None to serve ``native()``).

``ADAPTERS`` is the registry, tried in order: the first that ``recognises`` a directory
opens it. mlcanary's own tabular bundle is the first adapter (``models/tabular.py``); a
scikit-learn model logged by plain MLflow the second (``models/foreign.py``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from mlcanary.errors import InvalidInput
from mlcanary.models.foreign import REFERENCE_FOLDER, MlflowModel
from mlcanary.models.runtime import Runtime
from mlcanary.models.tabular import TabularModel
from mlcanary.registry.versions import ModelRegistry
from mlcanary.signature import Signature


class ModelAdapter(Protocol):
    """One opened model version."""

    flavor: str
    """What kind of model this adapter opens (shown in metadata and errors)."""
    signature: Signature
    pipeline: Any | None

    def native(self) -> Runtime:
        """Predict a batch (a DataFrame or validated columns) as the model itself does."""
        ...

    def reference(self) -> pd.DataFrame:
        """The reference sample: the signature's columns and ``__score__<class>`` columns
        (no rows: the version has no reference, and its drift is not analysed)."""
        ...

    def sample(self) -> pd.DataFrame:
        """Rows in the signature's columns the model must answer when it is loaded (no
        rows: nothing to check it on)."""
        ...

    def importance(self) -> dict[str, float]:
        """Each input column's share of the model's importance (empty: all weigh the same)."""
        ...

    def baseline(self) -> dict[str, float]:
        """The cross-validated mean of each quality metric (empty: nothing to compare with)."""
        ...


class AdapterType(Protocol):
    flavor: str

    @staticmethod
    def recognises(root: Path) -> bool: ...

    @classmethod
    def open(cls, root: Path, predictor: bool = True,
             attached: Callable[[], Path | None] | None = None) -> ModelAdapter: ...


ADAPTERS: list[AdapterType] = [TabularModel, MlflowModel]
"""Every model adapter, in the order they are tried."""


def open_model(root: Path, where: str = "model", predictor: bool = True,
               attached: Callable[[], Path | None] | None = None) -> ModelAdapter:
    """The model in a downloaded MLflow model directory, by the first adapter that knows it.

    Everything an adapter needs is read here, so the directory may be deleted after.
    Without ``predictor`` only what the monitor reads is (signature, reference, importance,
    baseline): no model is loaded, ``pipeline`` is None and ``native()`` refuses.
    """
    for adapter in ADAPTERS:
        if adapter.recognises(root):
            try:
                return adapter.open(root, predictor, attached)
            except InvalidInput as exc:
                raise InvalidInput(f"{where}: {exc}") from exc
    flavors = ", ".join(a.flavor for a in ADAPTERS)
    raise InvalidInput(f"{where}: not a model any adapter opens; expected one of: {flavors}")


def open_version(
    registry: ModelRegistry, name: str, version: int | str, predictor: bool = True
) -> ModelAdapter:
    """Download one registered version, open it, delete the download."""
    with tempfile.TemporaryDirectory(prefix=f"mlcanary-{name}-v{version}-") as tmp:
        root = registry.download(name, version, Path(tmp))

        def attached() -> Path | None:  # asked only by an adapter that reads one
            (Path(tmp) / "attached").mkdir()
            return registry.kept(registry.version(name, version), REFERENCE_FOLDER,
                                 Path(tmp) / "attached")

        return open_model(root, f"model '{name}' version {version}", predictor, attached)
