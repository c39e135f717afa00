"""One scikit-learn ColumnTransformer holds all preprocessing, so serving runs the same.

| column kind | steps |
|---|---|
| numeric, integer, boolean | to float -> median imputation + missing indicators -> scaling* |
| datetime | calendar parts -> median imputation + missing indicators -> scaling* |
| categorical, <= max_onehot values | text -> most frequent -> one-hot (unseen: all zeros) |
| categorical, more values | text -> most frequent -> target encoding (unseen: prior) |
| categorical with missing values | also a missing-indicator column |

\\* scaling only for models that need it (logistic / linear).
"""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from mlcanary.signature import Signature
from mlcanary.train.transformers import AsText, DatetimeParts, ToFloat


def build_preprocessor(
    signature: Signature, *, scale: bool, max_onehot: int, seed: int = 0
) -> ColumnTransformer:
    """Build the (unfitted) transformer from raw rows to model features."""
    branches: list[tuple[str, Pipeline, list[str]]] = []
    numbers = [c.name for c in signature.used if c.kind in ("numeric", "integer", "boolean")]
    if numbers:
        steps = [ToFloat(), SimpleImputer(strategy="median", add_indicator=True)]
        branches.append(
            ("num", make_pipeline(*steps, *([StandardScaler()] if scale else [])), numbers)
        )
    for col in signature.used:
        if col.kind == "datetime":
            steps = [
                DatetimeParts(tuple(col.datetime_parts)),
                SimpleImputer(strategy="median", add_indicator=True),
            ]
            branches.append(
                (
                    f"dt:{col.name}",
                    make_pipeline(*steps, *([StandardScaler()] if scale else [])),
                    [col.name],
                )
            )
    categorical = [c for c in signature.used if c.kind == "categorical"]
    low = [c.name for c in categorical if len(c.categories or []) <= max_onehot]
    high = [c.name for c in categorical if len(c.categories or []) > max_onehot]
    if low:
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        branches.append(
            (
                "onehot",
                make_pipeline(AsText(), SimpleImputer(strategy="most_frequent"), onehot),
                low,
            )
        )
    if high:
        if signature.task == "regression":
            encoder = TargetEncoder(
                target_type="continuous", cv=KFold(5, shuffle=True, random_state=seed)
            )
        else:
            encoder = TargetEncoder(cv=StratifiedKFold(5, shuffle=True, random_state=seed))
        steps = [AsText(), SimpleImputer(strategy="most_frequent"), encoder]
        branches.append(
            ("target", make_pipeline(*steps, *([StandardScaler()] if scale else [])), high)
        )
    with_missing = [c.name for c in categorical if c.nullable]
    if with_missing:
        indicator = MissingIndicator(features="missing-only", error_on_new=False)
        branches.append(("cat_missing", make_pipeline(AsText(), indicator), with_missing))
    return ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0)
