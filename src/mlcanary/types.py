"""The shared vocabulary: names every layer agrees on."""

from typing import Literal

Task = Literal["classification", "regression"]
"""What the model predicts: a class or a number."""

ModelFamily = Literal["lightgbm", "logistic", "random-forest"]
"""The estimator at the end of the pipeline."""

ColumnKind = Literal["numeric", "integer", "boolean", "categorical", "datetime"]
"""How a raw input column is read and encoded."""

V2Datatype = Literal["FP64", "INT64", "BOOL", "BYTES"]
"""Open Inference Protocol tensor type a column travels as."""

Alias = Literal["champion", "challenger"]

CLASSIFICATION_METRICS = (
    "roc_auc",
    "average_precision",
    "log_loss",
    "accuracy",
    "precision",
    "recall",
    "f1",
)
REGRESSION_METRICS = ("rmse", "mae", "r2")
METRIC_NAMES = CLASSIFICATION_METRICS + REGRESSION_METRICS
"""Metric names, as scikit-learn's scorers call them, in the order tables show them."""
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
"""The metrics where a smaller value is a better model (errors and losses)."""

MODEL_FAMILIES: tuple[ModelFamily, ...] = ("lightgbm", "logistic", "random-forest")
TASKS: tuple[Task, ...] = ("classification", "regression")

PREDICTION_COLUMN = "__prediction__"
SCORE_PREFIX = "__score__"
TARGET_COLUMN = "__target__"
"""Columns a logged or profiled frame carries beside the inputs: the answer, each class's
score (``__score__<class>``) and the label."""

SHADOW_VARIANT = "shadow"
"""The variant a shadow challenger's mirrored answers are logged and counted under."""
