"""A real table, a model, its reference and a pool of unseen rows, for drift tests.

Weather (``../shared/data/weather.csv``: 18,159 days, 8 numeric features) when it is
present, else scikit-learn's bundled breast-cancer table (569 rows, its 10 "mean"
features, resampled with a little jitter), so the statistical tests run everywhere.
Three columns are derived so that every kind of test runs on real values: ``sky``
(categorical: bands of one feature, plus a rare level), ``windy`` (boolean) and 3%
missing values in one feature, all drawn independently per row, so the reference and
the pool share them in distribution.

The rows are split at random, not in time order: weather's real seasonal and
decade-long drift would otherwise make the "null" windows drifted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlcanary.monitor.decision import Reference
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX
from mlcanary.signature import ColumnSpec, Signature

WEATHER = Path(__file__).parents[2].parent / "shared" / "data" / "weather.csv"
REFERENCE_ROWS = 10_000


@dataclass(frozen=True)
class DriftData:
    name: str
    signature: Signature
    model: Pipeline
    importance: dict[str, float]
    sample: pd.DataFrame
    """The reference sample: inputs and the model's predictions."""
    pool: pd.DataFrame
    """Rows the reference does not hold (weather) or another smoothed bootstrap draw."""
    reference: Reference

    @property
    def numeric(self) -> list[str]:
        return self.signature.names("numeric")

    @property
    def top_feature(self) -> str:
        return max(self.importance, key=lambda name: self.importance[name])

    def window(self, rng: np.random.Generator, rows: int = 1_000) -> pd.DataFrame:
        """Rows drawn with replacement from the pool, predictions included."""
        return self.pool.iloc[rng.integers(len(self.pool), size=rows)].reset_index(drop=True)

    def shift(
        self, window: pd.DataFrame, column: str, sds: float, rng: np.random.Generator
    ) -> pd.DataFrame:
        """Move ``column`` by ``sds`` reference standard deviations, predictions redone.

        Values stay on the column's observed support (each lands on one of the two
        observed values around x + delta, at random, so the mean moves by exactly delta):
        weather records some temperatures in whole degrees, and a plain +0.41 would put
        every window value between two grid points, a change the domain classifier
        rightly sees but that no real sensor drift looks like.
        """
        values = window[column].to_numpy(dtype=float)
        support = np.unique(self.sample[column].dropna().to_numpy(dtype=float))
        target = values + sds * self.sample[column].std()
        above = np.clip(np.searchsorted(support, target), 1, support.size - 1)
        low, high = support[above - 1], support[above]
        up = rng.random(values.size) < np.clip((target - low) / (high - low), 0, 1)
        out = window.copy()
        out[column] = np.where(np.isnan(values), np.nan, np.where(up, high, low))
        return self.predict(out)

    def most_correlated(self) -> tuple[str, str]:
        """The two numeric columns with the highest absolute correlation."""
        corr = np.array(self.sample[self.numeric].corr().abs())
        np.fill_diagonal(corr, 0)
        i, j = np.unravel_index(np.nanargmax(corr), corr.shape)
        return self.numeric[i], self.numeric[j]

    def predict(self, window: pd.DataFrame) -> pd.DataFrame:
        """Recompute the predictions after a test changed the inputs, as a server would."""
        return with_predictions(self.model, window, self.signature)


def most_allowed(trials: int, rate: float) -> int:
    """The most events a test may see when their true rate is at most ``rate``.

    Events (false alarms) in independent trials are Binomial(trials, rate). Its 99th
    percentile is exceeded with probability <= 1% when the true rate is ``rate`` (less
    when lower), so a test asserting count <= this fails by bad luck at most 1% of the
    time, and fails reliably when the rate is well above ``rate``. E.g. 500 windows at
    5%: mean 25, standard deviation 4.9, bound 37 (7.4%).
    """
    return int(stats.binom.ppf(0.99, trials, rate))


def fewest_allowed(trials: int, rate: float) -> int:
    """The fewest events a test may see when their true rate is at least ``rate``.

    The 1st percentile of Binomial(trials, rate): a power of ``rate`` or more gives
    fewer detections with probability <= 1%. E.g. 200 windows at 95%: mean 190,
    standard deviation 3.1, bound 182 (91%).
    """
    return int(stats.binom.ppf(0.01, trials, rate))


def with_predictions(model: Pipeline, frame: pd.DataFrame, signature: Signature) -> pd.DataFrame:
    inputs = frame[[c.name for c in signature.columns]]
    scores = model.predict_proba(inputs)
    out = inputs.copy()
    out[PREDICTION_COLUMN] = (scores[:, 1] >= 0.5).astype(int)
    for k, label in enumerate(signature.classes or []):
        out[f"{SCORE_PREFIX}{label}"] = scores[:, k]
    return out


def _table() -> tuple[str, pd.DataFrame, np.ndarray]:
    if WEATHER.exists():
        frame = pd.read_csv(WEATHER)
        return "weather", frame.drop(columns="target"), frame["target"].to_numpy()
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, :10]  # the ten "mean" measurements: a weather-sized table
    frame.columns = [f"feat_{k + 1}" for k in range(frame.shape[1])]
    return "breast-cancer", frame, data.frame["target"].to_numpy()


def smoothed_bootstrap(
    frame: pd.DataFrame, numeric: list[str], rows: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Rows drawn with replacement, numbers jittered by 0.1 standard deviation.

    A draw from a kernel density estimate of the table, rather than its 569 points
    repeated 17 times each: with so few distinct rows, a window and the reference hold
    copies of the same rows, and a small shift turns each copy into a near twin of one
    on the other side, which no real data looks like.
    """
    out = frame.iloc[rng.integers(len(frame), size=rows)].reset_index(drop=True)
    for column in numeric:
        out[column] = out[column] + rng.normal(0, 0.1 * frame[column].std(), rows)
    return out


@cache
def drift_data() -> DriftData:
    """Built once per test session (about a second)."""
    rng = np.random.default_rng(0)
    name, frame, y = _table()
    numeric = list(frame.columns)
    bands = frame[numeric[3]].quantile([0.1, 0.4, 0.8]).to_numpy()
    sky = np.array(["fog", "haze", "clear", "bright"])[np.searchsorted(bands, frame[numeric[3]])]
    frame["sky"] = np.where(rng.random(len(frame)) < 0.005, "smoke", sky)
    frame["windy"] = frame[numeric[5]] > frame[numeric[5]].median()
    frame.loc[rng.random(len(frame)) < 0.03, numeric[2]] = np.nan
    signature = Signature(
        [ColumnSpec(c, "numeric", nullable=c == numeric[2]) for c in numeric]
        + [ColumnSpec("sky", "categorical", False), ColumnSpec("windy", "boolean", False)],
        target="target",
        task="classification",
        classes=[0, 1],
    )
    model = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
                        ("sky", OneHotEncoder(handle_unknown="ignore"), ["sky"]),
                        ("windy", "passthrough", ["windy"]),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=1_000)),
        ]
    ).fit(frame, y)
    some = rng.choice(len(frame), 3_000, replace=False) if len(frame) > 3_000 else slice(None)
    measured = permutation_importance(
        model, frame.iloc[some], y[some], scoring="roc_auc", n_repeats=3, random_state=0
    )
    importance = dict(zip(frame.columns, measured.importances_mean.tolist(), strict=True))
    if len(frame) > REFERENCE_ROWS:
        order = rng.permutation(len(frame))
        sample, pool = frame.iloc[order[:REFERENCE_ROWS]], frame.iloc[order[REFERENCE_ROWS:]]
    else:
        sample = smoothed_bootstrap(frame, numeric, REFERENCE_ROWS, rng)
        pool = smoothed_bootstrap(frame, numeric, 2 * REFERENCE_ROWS, rng)
    # The model was fitted on every row, so reference and pool rows are scored alike.
    sample = with_predictions(model, sample, signature).reset_index(drop=True)
    pool = with_predictions(model, pool, signature).reset_index(drop=True)
    reference = Reference.from_sample(sample, signature, importance)
    return DriftData(name, signature, model, importance, sample, pool, reference)
