"""What a shadow rollout shows: how often the challenger agrees, and by how much it differs.

A shadowed request is logged twice: the champion's answer under the request id, the
challenger's under ``<id>:shadow``. Pairing them row by row gives, on exactly the same
inputs:

* the agreement rate of the predicted labels (classifiers), with a Wilson 95% interval;
* the distribution of score differences, challenger minus champion: the positive class's
  probability for binary classifiers, the total-variation distance between the two class
  distributions for more classes, the predicted value for regression;
* once labels have arrived for the champion's ids, both variants' accuracy (or mean
  absolute error) on the same labelled rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX, TARGET_COLUMN
from mlcanary.store.database import Store

SHADOW_SUFFIX = ":shadow"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_Z = 1.959963984540054


def shadow_pairs(store: Store, model: str, since: float | None = None) -> pd.DataFrame:
    """One row per shadowed row: ``champion_*`` and ``challenger_*`` columns side by side."""
    frame = store.read_window(model, since=since)
    if frame.empty:
        return pd.DataFrame()
    ids = frame["__id__"].astype(str)
    shadow = ids.str.endswith(SHADOW_SUFFIX)
    if not shadow.any():
        return pd.DataFrame()
    keep = [c for c in frame.columns if c == PREDICTION_COLUMN or c.startswith(SCORE_PREFIX)]

    def side(rows: pd.DataFrame, request: pd.Series, prefix: str) -> pd.DataFrame:
        out = rows[keep].add_prefix(prefix)
        out["request"] = request.to_numpy()
        out["row"] = request.groupby(request).cumcount().to_numpy()
        return out

    champion = frame[~shadow]
    challenger = frame[shadow]
    left = side(champion, ids[~shadow], "champion")
    left["label"] = champion[TARGET_COLUMN].to_numpy()
    right = side(challenger, ids[shadow].str.removesuffix(SHADOW_SUFFIX), "challenger")
    return left.merge(right, on=["request", "row"], how="inner")


def shadow_summary(pairs: pd.DataFrame) -> dict[str, Any] | None:
    """Agreement, score differences and (with labels) paired quality; None without pairs."""
    if pairs.empty:
        return None
    n = len(pairs)
    out: dict[str, Any] = {"pairs": n}
    values, out["difference_of"] = differences(pairs)
    regression = not _classes(pairs)
    if not regression:
        ours, theirs = (pairs[f"{v}{PREDICTION_COLUMN}"] for v in ("champion", "challenger"))
        agree = int(same(ours, theirs).sum())
        low, high = wilson(agree, n)
        out["agreement"] = {"rate": agree / n, "ci_low": low, "ci_high": high, "agree": agree}
    out["difference"] = {
        "mean": float(values.mean()),
        "mean_abs": float(np.abs(values).mean()),
        **{f"p{int(q * 100)}": float(np.quantile(values, q)) for q in QUANTILES},
    }
    labelled = pairs["label"].notna().to_numpy()
    if labelled.any():
        out["labelled"] = _quality(pairs[labelled], regression)
    return out


def differences(pairs: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Challenger minus champion, row by row, and what the difference is of."""
    classes = _classes(pairs)
    if not classes:
        values = (pd.to_numeric(pairs[f"challenger{PREDICTION_COLUMN}"])
                  - pd.to_numeric(pairs[f"champion{PREDICTION_COLUMN}"]))
        return values.to_numpy(dtype=float), "predicted value"
    a, b = (pairs[[f"{v}{SCORE_PREFIX}{c}" for c in classes]].to_numpy(dtype=float)
            for v in ("champion", "challenger"))
    if len(classes) == 2:
        return b[:, 1] - a[:, 1], f"probability of class {classes[1]}"
    return 0.5 * np.abs(b - a).sum(axis=1), "total variation between class probabilities"


def _classes(pairs: pd.DataFrame) -> list[str]:
    prefix = f"champion{SCORE_PREFIX}"
    return sorted(c.removeprefix(prefix) for c in pairs.columns if c.startswith(prefix))


def _quality(pairs: pd.DataFrame, regression: bool) -> dict[str, Any]:
    label = pairs["label"]
    result: dict[str, Any] = {"rows": len(pairs)}
    for variant in ("champion", "challenger"):
        predicted = pairs[f"{variant}{PREDICTION_COLUMN}"]
        if regression:
            error = np.abs(pd.to_numeric(predicted) - pd.to_numeric(label))
            result[variant] = {"mae": float(error.mean())}
        else:
            result[variant] = {"accuracy": float(same(predicted, label).mean())}
    return result


def same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise equality of labels, by value when both are numbers (1 == 1.0)."""
    x = pd.to_numeric(a, errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(b, errors="coerce").to_numpy(dtype=float)
    numeric = ~np.isnan(x) & ~np.isnan(y)
    text = a.astype(str).to_numpy() == b.astype(str).to_numpy()
    return np.asarray(np.where(numeric, x == y, text), dtype=bool)


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score 95% interval of a proportion.

    >>> [round(x, 4) for x in wilson(45, 50)]
    [0.7864, 0.9565]
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + _Z**2 / (2 * n)) / (1 + _Z**2 / n)
    half = _Z * math.sqrt(p * (1 - p) / n + _Z**2 / (4 * n * n)) / (1 + _Z**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_figure(pairs: pd.DataFrame, summary: dict[str, Any]) -> Any:
    """A Plotly histogram of the score differences (challenger minus champion)."""
    import plotly.graph_objects as go

    values, _ = differences(pairs)
    figure = go.Figure(go.Histogram(x=values, nbinsx=50, name="challenger - champion"))
    agreement = summary.get("agreement")
    title = f"Shadow: {summary['difference_of']}, challenger minus champion ({len(values):,} rows)"
    if agreement:
        title += f"; labels agree on {agreement['rate']:.1%}"
    figure.update_layout(title=title, xaxis_title="difference", yaxis_title="rows",
                         bargap=0.05)
    return figure
