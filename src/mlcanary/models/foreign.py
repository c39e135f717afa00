"""A model mlcanary did not train: a scikit-learn or LightGBM model logged with plain MLflow.

Any MLflow model directory (an ``MLmodel`` file) without mlcanary's ``mlcanary/`` bundle.
What it accepts comes from the signature MLflow logged with it (``signature=`` of
``log_model``, e.g. from ``mlflow.models.infer_signature``); whether it classifies, and
its classes, from the loaded model (``predict_proba`` and ``classes_``). It answers with
its own ``predict`` (and ``predict_proba``), so what it serves is what it was logged to
do. The rows it must answer at load are the input example MLflow saved with it, if any.

Its reference sample, importances and baseline metrics are what ``mlcanary reference``
attached (``models/attach.py``); until then the monitor does not analyse its drift.
Not yet: other flavours (XGBoost, ONNX, generic ``python_function``) and tensor signatures.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.errors import InvalidInput
from mlcanary.models.profiled import Profiled
from mlcanary.models.runtime import Prediction, Rows, Runtime, class_labels
from mlcanary.signature import ColumnSpec, Signature
from mlcanary.types import ColumnKind

KINDS: dict[str, ColumnKind] = {
    "double": "numeric", "float": "numeric", "long": "integer", "integer": "integer",
    "boolean": "boolean", "string": "categorical", "datetime": "datetime",
}
"""MLflow column types and how mlcanary reads them."""
LOADERS = {"sklearn": "mlflow.sklearn", "lightgbm": "mlflow.lightgbm"}
"""The flavours served, and the MLflow module that loads each (the first a model has)."""
REFERENCE_FOLDER = "mlcanary-reference"
"""Where ``mlcanary reference`` keeps a version's reference, in its run's artifacts."""
HOW_TO_SIGN = ("log it with one: mlflow.sklearn.log_model(model, name=..., "
               "signature=mlflow.models.infer_signature(X, model.predict(X)))")


class MlflowModel:
    """A scikit-learn model (pipelines included) or a LightGBM one with the scikit-learn
    API, logged by MLflow with a column signature."""

    flavor = "MLflow scikit-learn or LightGBM model with a signature (an MLmodel file)"

    def __init__(self, signature: Signature, model: Any, example: pd.DataFrame,
                 attached: Path | None = None) -> None:
        self.signature = signature
        self.pipeline = None  # its own predict serves: the fast runtimes read mlcanary's plans
        self._model = model
        self._example = example
        # what `mlcanary reference` kept (models/attach.py), if it did
        self._profiled = (Profiled.read(attached) if attached is not None
                          else Profiled.empty([c.name for c in signature.columns]))

    @staticmethod
    def recognises(root: Path) -> bool:
        return (root / "MLmodel").is_file()

    @classmethod
    def open(cls, root: Path, predictor: bool = True,
             attached: Callable[[], Path | None] | None = None) -> MlflowModel:
        """Read the signature and load the model (also without ``predictor``: its classes
        come from it), refusing what cannot be served, in words that say why; ``attached``
        fetches the reference ``mlcanary reference`` kept with the version, if any."""
        from mlflow.models import Model

        described = Model.load(str(root))
        flavour = next((f for f in LOADERS if f in described.flavors), None)
        if flavour is None:
            flavors = ", ".join(sorted(described.flavors)) or "none"
            raise InvalidInput(f"an MLflow model of flavour(s) {flavors}: not served yet; "
                               f"expected one of: {', '.join(LOADERS)}")
        schema = described.get_input_schema()  # type: ignore[no-untyped-call]
        if schema is None:
            raise InvalidInput(f"an MLflow model without a signature; {HOW_TO_SIGN}")
        if schema.is_tensor_spec():
            raise InvalidInput("an MLflow model with a tensor signature: not served yet; "
                               "expected a column signature (a DataFrame at log time)")
        columns = [_column(spec.to_dict()) for spec in schema.inputs]
        model = _load(root, flavour)
        if not hasattr(model, "get_params"):  # e.g. a LightGBM Booster, not its sklearn API
            raise InvalidInput(f"a {type(model).__name__} (flavour {flavour}): not served "
                               "yet; expected a model with the scikit-learn API (for "
                               "LightGBM: LGBMClassifier or LGBMRegressor)")
        classes = getattr(model, "classes_", None)
        classifies = hasattr(model, "predict_proba") and classes is not None
        signature = Signature(
            columns, target="target", task="classification" if classifies else "regression",
            classes=np.asarray(classes).tolist() if classifies else None)
        example = _example(described, root, signature)
        return cls(signature, model if predictor else None, example,
                   attached() if attached is not None else None)

    def native(self) -> Runtime:
        if self._model is None:
            raise ValueError("opened without its predictor (predictor=False)")
        return MlflowRuntime(self._model, self.signature)

    def sample(self) -> pd.DataFrame:
        return self._example

    def reference(self) -> pd.DataFrame:
        return self._profiled.reference

    def importance(self) -> dict[str, float]:
        return self._profiled.importance()

    def baseline(self) -> dict[str, float]:
        return self._profiled.baseline()


class MlflowRuntime:
    """The model's own ``predict`` (and ``predict_proba``) on the validated columns."""

    kind = "native"

    def __init__(self, model: Any, signature: Signature) -> None:
        self.model = model
        self.names = [c.name for c in signature.columns]
        self.classes = class_labels(signature)

    def predict(self, rows: Rows) -> Prediction:
        frame = _plain(pd.DataFrame(rows, copy=False)[self.names])
        predicted = np.asarray(self.model.predict(frame))
        if self.classes is None:
            return Prediction(predicted.astype(np.float64), None)
        proba = np.asarray(self.model.predict_proba(frame), dtype=np.float64)
        return Prediction(predicted, proba)


def _column(spec: dict[str, Any]) -> ColumnSpec:
    name, kind = spec.get("name"), KINDS.get(str(spec.get("type")))
    if not name:
        raise InvalidInput("an MLflow signature with an unnamed column; expected named "
                           "columns (log it with a DataFrame)")
    if kind is None:
        raise InvalidInput(f"signature column '{name}': type {spec.get('type')!r} is not "
                           f"served yet; expected one of {', '.join(KINDS)}")
    return ColumnSpec(name=str(name), kind=kind, nullable=not spec.get("required", True))


def _load(root: Path, flavour: str) -> Any:
    """The model by its flavour's loader (scikit-learn: skops or pickle, as MLflow wrote)."""
    loader = importlib.import_module(LOADERS[flavour])
    try:
        return loader.load_model(str(root))
    except ModuleNotFoundError as exc:
        raise InvalidInput(f"loading the model needs the package '{exc.name}', which is not "
                           f"installed; expected it installed (pip install {exc.name})") from exc


def _example(described: Any, root: Path, signature: Signature) -> pd.DataFrame:
    """The input example saved with the model, in the signature's columns (empty if none)."""
    names = [c.name for c in signature.columns]
    if described.saved_input_example_info is None:
        return pd.DataFrame(columns=names)
    example = described.load_input_example(str(root))
    if not isinstance(example, pd.DataFrame) or not set(names) <= set(example.columns):
        return pd.DataFrame(columns=names)
    return example[names]


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Validation's nullable columns as the NumPy dtypes a model was fitted on, where no
    value is missing (``Int64`` -> ``int64``, ``boolean`` -> ``bool``)."""
    changed: dict[str, Any] = {}
    for name, column in frame.items():
        dtype = column.dtype
        if isinstance(dtype, pd.Int64Dtype) and not column.isna().any():
            changed[str(name)] = column.to_numpy(dtype=np.int64)
        elif isinstance(dtype, pd.BooleanDtype) and not column.isna().any():
            changed[str(name)] = column.to_numpy(dtype=bool)
        elif isinstance(dtype, pd.StringDtype):
            changed[str(name)] = column.to_numpy(dtype=object, na_value=np.nan)
    return frame.assign(**changed) if changed else frame
