"""From test results to decisions: which columns drifted, and did the dataset drift?

A column drifts when two things hold at once:

* its test is significant after correcting for the number of tests run on the window
  (Benjamini-Hochberg by default): the difference is real, not the luck of one window
  among many columns;
* its effect size passes a practical threshold: the difference is large enough to
  matter. This is what keeps a 100,000-row window from flagging a 0.02-standard-
  deviation wobble that any test at that size calls significant.

The dataset drifts when any of three pieces of evidence holds:

* the columns that drifted carry at least ``share_threshold`` (10%) of the model's
  importance: one column the model leans on, or several minor ones together;
* the prediction distribution drifted (same tests, same correction, same materiality):
  whatever moved, the model now answers differently than on its reference;
* the domain classifier separates window rows from reference rows (significant, and
  AUC - 0.5 above its threshold with confidence), on a sample that grows with the window.

Importance matters because a model indifferent to a column is indifferent to its
drift; the classifier matters because it sees joint shifts no column test can. The
rule and its thresholds were chosen by the power table in docs/statistics.md
(``benchmarks/statistics.py``): false alarms and power by shift size, shifted columns,
their importance and window size.

``Reference.from_sample`` does the per-version work once (sorted values, bins,
category counts, the encoded sample for the classifier); ``analyse`` is the per-window
function the monitor calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from mlcanary.monitor.detectors import (
    DETECTORS,
    OWNER,
    CategoricalReference,
    ColumnReference,
    NumericReference,
    Role,
    TestResult,
    to_numbers,
)
from mlcanary.monitor.multivariate import domain_classifier_test
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX
from mlcanary.signature import Signature

Correction = Literal["bh", "bonferroni"]


@dataclass(frozen=True)
class DriftSettings:
    """Thresholds of the decision rule; the defaults and the reasons for them.

    Every threshold sits well above what sampling noise alone produces on a
    1,000-row window against a 10,000-row reference (the noise is given for each), so a
    column is flagged for a difference both real and material.
    """

    alpha: float = 0.05
    """Significance level, after correction, for column tests and for the classifier."""
    correction: Correction = "bh"
    """'bh' (Benjamini-Hochberg, false discovery rate) keeps power when several columns
    move together, which is how drift usually looks; 'bonferroni' (family-wise error)
    is stricter with many columns."""
    wasserstein_threshold: float = 0.1
    """Wasserstein-1 / reference standard deviation: 0.1 is a mean shift of a tenth of a
    standard deviation. Noise at 1,000 rows: 0.02-0.06."""
    psi_threshold: float = 0.1
    """Population stability index on reference deciles; below 0.1 is the usual 'no
    significant change' band. Noise at 1,000 rows: about 0.01 (9 / n). A numeric column
    drifts when either its Wasserstein distance or its PSI passes its threshold."""
    categorical_threshold: float = 0.1
    """Jensen-Shannon distance (base 2) on the pooled category cells: 0.1 is about a
    12-point move of a two-level column split 50/50, or PSI 0.055; Evidently's default
    too. Noise at 1,000 rows: 0.02-0.05 for up to ten cells."""
    missing_threshold: float = 0.2
    """Cohen's h of the missing rates: 0.2 is Cohen's 'small' effect, e.g. 0% -> 1%,
    10% -> 17%, 50% -> 60%. Noise at 1,000 rows: about 0.03."""
    share_threshold: float = 0.10
    """Share of the model's (positive) importance carried by drifted columns that makes
    the dataset drift. A tenth: a column the model leans on that moved materially is
    already enough to take predictions out of the range the validation figures describe,
    while one minor column (a few percent of importance) is not. A quarter (the rule
    before) missed three shifted columns of 30 carrying 10% between them even when the
    column tests found all three; 0.5 (Evidently's default, on column counts) misses
    shifts in the few columns a model leans on."""
    multivariate: bool = True
    """Run the domain classifier (about 40 ms per 1,000-row window on one core for 30
    columns, about 100 ms on 10,000 rows per side; docs/statistics.md)."""
    multivariate_threshold: float = 0.05
    """AUC - 0.5 of the domain classifier: at 0.05 a held-out window row outscores a
    held-out reference row 55% of the time, what an ideal classifier gets from a mean
    shift of 0.18 standard deviations (Mahalanobis). Unlike the column effect sizes,
    this one is noisy (standard deviation 0.018 with 1,000 held-out rows, 0.013 with
    2,000: a quarter to a third of the threshold), so its one-sided (1 - alpha) lower
    confidence bound must pass the threshold, not the estimate: else a true AUC of 0.53
    would cross 0.55 in about one large window out of sixteen."""

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"drift settings 'alpha': expected 0 < alpha < 1, got {self.alpha}")
        if self.correction not in ("bh", "bonferroni"):
            raise ValueError(
                f"drift settings 'correction': expected 'bh' or 'bonferroni', "
                f"got {self.correction!r}"
            )
        for name in (
            "wasserstein_threshold",
            "psi_threshold",
            "categorical_threshold",
            "missing_threshold",
            "share_threshold",
            "multivariate_threshold",
        ):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"drift settings {name!r}: expected >= 0, got {getattr(self, name)}"
                )


@dataclass(frozen=True)
class Reference:
    """Everything ``analyse`` needs from a model version, computed once per version.

    Datetime columns get only the missing-rate test: their raw values move forward by
    construction (every live window is later than the training data), so a
    distribution test on them would always fire and say nothing. For the same reason
    they, and unused columns (ID-like ones would be separated trivially), are left out
    of the domain classifier.
    """

    columns: tuple[ColumnReference, ...]
    weights: Mapping[str, float]
    joint_columns: tuple[str, ...]
    joint_codes: Mapping[str, Mapping[str, int]]
    joint: np.ndarray = field(repr=False)
    n_rows: int = 0

    @classmethod
    def from_sample(
        cls,
        sample: pd.DataFrame,
        signature: Signature,
        importance: Mapping[str, float],
        *,
        bins: int = 10,
    ) -> Reference:
        """Build from the version's reference sample (``registry.profile.build_profile``).

        ``importance`` maps columns to importance (``profile["importance"]``).
        """
        missing = [c.name for c in signature.columns if c.name not in sample.columns]
        if missing:
            raise ValueError(
                f"reference sample: expected the signature's columns, missing {missing}"
            )
        if sample.empty:
            raise ValueError("reference sample: expected at least one row, got 0")
        columns = [
            _column_reference(sample[c.name], c.name, "feature", c.kind, bins)
            for c in signature.columns
        ]
        for name, kind in _prediction_columns(signature):
            if name in sample.columns:
                columns.append(_column_reference(sample[name], name, "prediction", kind, bins))
        joint_columns = tuple(c.name for c in signature.used if c.kind != "datetime")
        codes = {
            c.name: {category: k for k, category in enumerate(c.categorical.categories)}
            for c in columns
            if c.name in joint_columns and c.categorical is not None
        }
        joint = encode(sample, joint_columns, codes)
        weights = importance_weights(signature, importance)
        return cls(tuple(columns), weights, joint_columns, codes, joint, len(sample))


def _prediction_columns(
    signature: Signature,
) -> list[tuple[str, Literal["numeric", "categorical"]]]:
    """Predicted value (regression) or label, and the positive-class score (binary)."""
    if signature.task == "regression":
        return [(PREDICTION_COLUMN, "numeric")]
    out: list[tuple[str, Literal["numeric", "categorical"]]] = [(PREDICTION_COLUMN, "categorical")]
    if signature.classes is not None and len(signature.classes) == 2:
        out.append((f"{SCORE_PREFIX}{signature.classes[1]}", "numeric"))
    return out


def _column_reference(
    values: pd.Series, name: str, role: Role, kind: str, bins: int
) -> ColumnReference:
    n_missing = int(values.isna().sum())
    out = ColumnReference(name, role, len(values), n_missing)
    if kind in ("numeric", "integer", "boolean"):
        numbers = to_numbers(values)
        if np.isfinite(numbers).any():
            out = ColumnReference(
                name,
                role,
                len(values),
                n_missing,
                numeric=NumericReference.from_values(numbers, bins),
            )
    elif kind == "categorical" and n_missing < len(values):
        out = ColumnReference(
            name, role, len(values), n_missing, categorical=CategoricalReference.from_values(values)
        )
    return out


def encode(
    frame: pd.DataFrame, columns: tuple[str, ...], codes: Mapping[str, Mapping[str, int]]
) -> np.ndarray:
    """Rows as a float matrix for the domain classifier.

    Numbers (booleans as 0/1) stay numbers with NaN for missing; a category becomes its
    reference code, an unseen category one code past the last, missing stays NaN.
    Trees split integer codes into any subset of categories in a few splits, so nothing
    is gained by one-hot columns here.
    """
    out = np.empty((len(frame), len(columns)))
    for j, name in enumerate(columns):
        values = frame[name]
        if name in codes:
            mapping = codes[name]
            column = np.array(values.astype(str).map(mapping), dtype=float)
            column[np.isnan(column)] = len(mapping)
            column[values.isna().to_numpy()] = np.nan
            out[:, j] = column
        else:
            out[:, j] = to_numbers(values)
    return out


def importance_weights(signature: Signature, importance: Mapping[str, float]) -> dict[str, float]:
    """Importance per signature column, positive part, summing to one.

    Permutation importance can be negative (the column's noise helped by luck); that is
    no importance, so it counts as 0. Unused columns weigh 0. When nothing is positive
    (no importance was measured) every used column weighs the same: no information is
    not the same as no importance.
    """
    raw = {
        c.name: max(float(importance.get(c.name, 0.0)), 0.0) if c.used else 0.0
        for c in signature.columns
    }
    total = sum(raw.values())
    if total > 0:
        return {name: value / total for name, value in raw.items()}
    used = [c.name for c in signature.used]
    return {c.name: (1 / len(used) if c.name in used else 0.0) for c in signature.columns}


@dataclass(frozen=True)
class DriftReport:
    """The result of one window: every test, the decisions and what they rest on."""

    tests: tuple[TestResult, ...]
    dataset_drift: bool
    drift_share: float
    """Share of the model's importance carried by drifted input columns."""
    drifted_columns: tuple[str, ...]
    n_columns: int
    prediction_drift: bool
    multivariate: TestResult | None
    n_reference: int
    n_window: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (no NaN, no NumPy types)."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "n_drifted": len(self.drifted_columns),
            "n_columns": self.n_columns,
            "drifted_columns": list(self.drifted_columns),
            "prediction_drift": self.prediction_drift,
            "multivariate": self.multivariate.as_dict() if self.multivariate else None,
            "n_reference": self.n_reference,
            "n_window": self.n_window,
            "tests": [t.as_dict() for t in self.tests],
        }


def analyse(
    reference: Reference,
    window: pd.DataFrame,
    settings: DriftSettings | None = None,
    *,
    seed: int = 0,
) -> DriftReport:
    """Test one window against the reference and decide.

    ``window`` holds the signature's columns, and ``__prediction__`` / ``__score__<class>``
    when predictions are available (prediction tests are skipped otherwise). Pure:
    no I/O, no clock, randomness (the classifier's subsample) only through ``seed``.
    Example::

        reference = Reference.from_sample(sample, signature, profile["importance"])
        report = analyse(reference, window)  # then once per window
        report.dataset_drift, report.drifted_columns, report.as_dict()
    """
    settings = settings or DriftSettings()
    if len(window) == 0:
        raise ValueError("drift window: expected at least one row, got 0 rows")
    features = [c.name for c in reference.columns if c.role == "feature"]
    absent = [name for name in features if name not in window.columns]
    if absent:
        raise ValueError(f"drift window: expected the signature's columns, missing {absent}")

    tests: list[TestResult] = []
    for column in reference.columns:
        if column.name not in window.columns:
            continue  # a prediction column of a window logged without predictions
        tests.extend(_column_tests(column, window[column.name]))
    tests = decide(tests, settings)

    roles = {c.name: c.role for c in reference.columns}
    drifted = tuple(
        dict.fromkeys(t.feature for t in tests if t.drift and roles[t.feature] == "feature")
    )
    share = float(sum(reference.weights.get(name, 0.0) for name in drifted))
    multivariate = None
    if settings.multivariate and reference.joint_columns:
        joint = encode(window, reference.joint_columns, reference.joint_codes)
        result = domain_classifier_test(reference.joint, joint, seed=seed)
        if result is not None:
            flagged = (
                result.p_value < settings.alpha
                and result.lower_bound(settings.alpha) >= settings.multivariate_threshold
            )
            multivariate = result.as_test(drift=flagged)
    prediction_drift = any(t.drift and roles[t.feature] == "prediction" for t in tests)
    return DriftReport(
        tests=tuple(tests),
        dataset_drift=share >= settings.share_threshold
        or prediction_drift
        or (multivariate is not None and multivariate.drift),
        drift_share=share,
        drifted_columns=drifted,
        n_columns=len(features),
        prediction_drift=prediction_drift,
        multivariate=multivariate,
        n_reference=reference.n_rows,
        n_window=len(window),
    )


def _column_tests(column: ColumnReference, values: pd.Series) -> list[TestResult]:
    return [t for d in DETECTORS.values() if d.applies(column) for t in d.run(column, values)]


def significant(p_values: np.ndarray, alpha: float, correction: Correction) -> np.ndarray:
    """Which p-values stay below ``alpha`` after correcting for how many were tested."""
    if p_values.size == 0:
        return np.zeros(0, dtype=bool)
    if correction == "bonferroni":
        return np.asarray(p_values * p_values.size <= alpha)
    return np.asarray(stats.false_discovery_control(p_values, method="bh") <= alpha)


def decide(tests: list[TestResult], settings: DriftSettings) -> list[TestResult]:
    """Set ``drift`` on every result: significant after correction and material.

    The correction runs over every p-value of the window (all columns, all tests); the
    detector that owns a result (``detectors.OWNER``) says whether it is material. A
    numeric column's KS and PSI rows share one decision: KS says whether the
    difference is real, Wasserstein or PSI whether it is large enough.
    """
    with_p = [t for t in tests if t.p_value is not None]
    p_values = np.array([t.p_value for t in with_p], dtype=float)
    passed = significant(p_values, settings.alpha, settings.correction)
    columns: dict[str, dict[str, TestResult]] = {}
    for t in tests:
        columns.setdefault(t.feature, {})[t.test] = t
    flagged = {
        (t.feature, t.test) for t, ok in zip(with_p, passed, strict=True)
        if ok and OWNER[t.test].material(t, columns[t.feature], settings)
    }
    return [replace(t, drift=(t.feature, OWNER[t.test].name) in flagged) for t in tests]
