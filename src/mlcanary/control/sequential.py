"""The quality gate: is the challenger better or worse than the champion, judged as labels
arrive, with error rates that hold however often the gate looks.

A fixed-sample test checked after every window declares winners by chance far more often
than its alpha says (20 looks at a 5% test: about one A/A experiment in four, Armitage,
McPherson & Rowe 1969). The mixture sequential probability ratio test (mSPRT; Robbins
1970, Johari, Koomen, Pekelis & Walsh 2017, "Always valid inference") gives p-values and
confidence intervals valid at every look at once, so the gate may look after every window
and stop the moment the evidence is in.

Model. Each labelled row gives an outcome where higher is better (``Outcome``). Rows are
grouped into strata: periods in which the traffic split was fixed (a canary step; the
whole of an A/B test). Within stratum s the difference of the arms' means, d_s =
mean(challenger) - mean(champion), is about normal around the true difference theta with
variance V_s = s^2 (1/n_champion,s + 1/n_challenger,s), s^2 the pooled within-stratum,
within-arm variance. The strata combine with inverse-variance weights:

    d = sum(d_s / V_s) / sum(1 / V_s),   V = 1 / sum(1 / V_s).

Why strata. Assignment is by a hash of the request key, independent of time, so within
one stratum both arms sample the same moments of the stream: a trend in the outcome
(the data drifting, labels getting harder) moves both arms' means alike and cancels in
d_s. Pooled across a ramp it would not: at 5% the challenger's rows come from the early
intervals, at 50% from the late ones, and a shared trend reads as a difference between
the models (Simpson's paradox; on a real drifting stream an A/A ramp pooled this way was
rolled back in 59% of replays). A stratum in which one arm has no rows (the challenger at
100%) carries no comparison and adds nothing.

What is assumed: outcomes of different rows are independent given the time; theta is
the same in every stratum (otherwise the test is about the information-weighted average
of the per-stratum differences, which is still the right sign for "is the challenger
better on the traffic both saw"); the split is fixed within a stratum (the controller
drops the rows answered while servers were still picking up a new split).

S = d / V = sum(d_s / V_s) is then a Brownian motion with drift theta in the information
I = 1/V = sum(1 / V_s): within a stratum, for nested samples Cov(d_m, d_n) = V_n, so the
stratum's d_s / V_s has independent increments with variance 1 / V_s, and strata are
independent of each other. Labels arriving late for an old stratum only add information.

Test. For "challenger better" (H0: theta <= 0) the likelihood ratio exp(theta S -
theta^2 I / 2) is mixed over theta > 0 with a half-normal of scale tau:

    Lambda+ = 2 Phi(x) sqrt(V / (V + tau^2)) exp(x^2 / 2),   x = d tau / sqrt(V (V + tau^2)),

a non-negative supermartingale under every theta <= 0, so P(ever Lambda+ >= 1/alpha) <=
alpha (Ville). The always-valid p-value is p_n = min(1, min_k 1/Lambda+_k), carried in the
state from look to look; "challenger worse" is the mirror image (d -> -d).

Interval. Lambda+ grows with d - theta0, so inverting the one-sided test at every theta0
gives the lower bound d - h, h where Lambda+ = 1/alpha_better; the upper bound mirrors it
with alpha_worse. Intersected over looks, the interval holds theta at every look at once
with probability >= 1 - alpha_better - alpha_worse. By construction p_better < alpha_better
exactly when the lower bound is above 0, so the two halves of the verdict's rule agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from scipy.special import log_ndtr

from mlcanary.types import Task

Verdict = Literal["continue", "challenger_better", "challenger_worse"]
VERDICTS: tuple[Verdict, ...] = ("continue", "challenger_better", "challenger_worse")

Outcome = Literal["correct", "brier", "log_loss", "squared_error"]
"""Per-row quality, oriented so that higher is better (errors enter negated)."""

TAU2 = 0.01
"""Mixing variance of the standardised effect (difference / outcome sd): tau = 0.1 sd.

The mixture is most sensitive to effects of about tau once the difference's standard
error is about tau, here near 200 labelled rows per arm. For 0/1 correctness at 80%
accuracy (sd 0.4) tau is 4 points of accuracy: the size of change worth a rollout, at
the label counts rollouts gather. The choice is not critical: at 2,000 rows per arm the
z-score needed to stop is 3.06, 3.04 and 3.08 for tau^2 = 0.005, 0.01 and 0.02. It is
kept in the state because changing it mid-rollout voids the guarantee."""

ALPHA = 0.025
"""Error rate of each side. Together: an A/A rollout ends in a verdict either way with
probability <= 5%, however often it looks, and the interval is a 95% sequence. Rollback
may reasonably be made more eager (``alpha_worse`` = 0.05): keeping a worse model costs
users, rolling back a good one only delays a gain."""

MIN_N = 100
"""Labelled rows per arm before the first look: below it the normal approximation of a
0/1 outcome at 80-95% accuracy (5-20 errors) and the variance estimate are too rough."""

LOG_LOSS_FLOOR = 1e-15
"""Probability floor of the log loss, so a confident miss costs 34.5, not infinity."""


@dataclass(frozen=True)
class Summary:
    """Count, mean and sample variance (ddof=1; 0 below two rows) of one arm's outcomes,
    cumulative since the rollout began."""

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer) or self.n < 0:
            raise ValueError(f"summary 'n': expected a whole number >= 0, got {self.n!r}")
        if not math.isfinite(self.mean):
            raise ValueError(f"summary 'mean': expected a finite number, got {self.mean!r}")
        if not (math.isfinite(self.variance) and self.variance >= 0):
            raise ValueError(
                f"summary 'variance': expected a finite number >= 0, got {self.variance!r}"
            )

    @classmethod
    def of(cls, values: ArrayLike) -> Summary:
        """The summary of a batch of outcomes."""
        array = np.asarray(values, dtype=float).ravel()
        if array.size == 0:
            return cls(0, 0.0, 0.0)
        variance = float(array.var(ddof=1)) if array.size > 1 else 0.0
        return cls(int(array.size), float(array.mean()), variance)

    def combine(self, other: Summary) -> Summary:
        """The summary of both batches together (Chan, Golub & LeVeque), so the monitor can
        keep a running total from per-window summaries without re-reading rows."""
        n = self.n + other.n
        if n == 0:
            return self
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        squares = (
            self.variance * max(self.n - 1, 0)
            + other.variance * max(other.n - 1, 0)
            + delta**2 * self.n * other.n / n
        )
        return Summary(n, mean, squares / (n - 1) if n > 1 else 0.0)


@dataclass(frozen=True)
class SequentialState:
    """The gate's settings and its running evidence: what the store keeps between looks.

    Settings (``tau2``, the alphas, ``min_n``) live here too, because the guarantee holds
    only if they stay fixed for the rollout's life. The p-values only fall and the
    interval only narrows; the first verdict stands.
    """

    tau2: float = TAU2
    alpha_better: float = ALPHA
    alpha_worse: float = ALPHA
    min_n: int = MIN_N
    looks: int = 0
    p_better: float = 1.0
    p_worse: float = 1.0
    ci_low: float = -math.inf
    ci_high: float = math.inf
    verdict: Verdict = "continue"

    def __post_init__(self) -> None:
        if not (isinstance(self.tau2, int | float) and 0 < self.tau2 < math.inf):
            raise ValueError(f"sequential 'tau2': expected a number > 0, got {self.tau2!r}")
        for name in ("alpha_better", "alpha_worse"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < 0.5):
                raise ValueError(
                    f"sequential {name!r}: expected a number in (0, 0.5), got {value!r}"
                )
        for name, low in (("min_n", 2), ("looks", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(
                    f"sequential {name!r}: expected a whole number >= {low}, got {value!r}"
                )
        for name in ("p_better", "p_worse"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 <= value <= 1):
                raise ValueError(f"sequential {name!r}: expected a number in [0, 1], got {value!r}")
        for name in ("ci_low", "ci_high"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or math.isnan(value):
                raise ValueError(f"sequential {name!r}: expected a number, got {value!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(
                f"sequential 'verdict': expected one of {VERDICTS}, got {self.verdict!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the open ends of the interval (+-inf before the first look) are None."""
        out = asdict(self)
        for name in ("ci_low", "ci_high"):
            out[name] = None if math.isinf(out[name]) else out[name]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SequentialState:
        """The state ``to_dict`` wrote; ValueError naming any field that is unknown or wrong."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"sequential state: unknown fields {unknown}, expected some of {sorted(known)}"
            )
        values = dict(data)
        for name, default in (("ci_low", -math.inf), ("ci_high", math.inf)):
            if values.get(name, default) is None:
                values[name] = default
        return cls(**values)


@dataclass(frozen=True)
class Decision:
    """One look's result. ``p_value`` is the smaller of the two one-sided p-values (compare
    it with that side's alpha); ``difference`` and the interval are challenger - champion
    in outcome units, higher meaning the challenger is better."""

    verdict: Verdict
    p_value: float
    p_better: float
    p_worse: float
    ci_low: float
    ci_high: float
    difference: float
    n_champion: int
    n_challenger: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: infinite or undefined numbers become None."""
        return {
            key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in asdict(self).items()
        }


Stratum = tuple[Summary, Summary]
"""(champion, challenger) summaries of one period with a fixed traffic split."""


def update(
    state: SequentialState, champion: Summary, challenger: Summary
) -> tuple[SequentialState, Decision]:
    """One look at the cumulative summaries of one stratum: the new state and the decision.

    Looks with fewer than ``min_n`` rows in an arm, or with no spread in the outcomes yet,
    leave the state as it was (they are not counted in ``looks``).

    >>> state = SequentialState()
    >>> state, decision = update(state, Summary(2000, 0.80, 0.16), Summary(2000, 0.85, 0.1275))
    >>> decision.verdict, round(decision.difference, 2), decision.ci_low > 0
    ('challenger_better', 0.05, True)
    """
    return update_strata(state, [(champion, challenger)])


def update_strata(
    state: SequentialState, strata: Sequence[Stratum]
) -> tuple[SequentialState, Decision]:
    """One look at the cumulative summaries of every stratum (see the module docstring).

    ``min_n`` applies to the rows of each arm in the strata that compare both arms.

    >>> ramp = [(Summary(950, 0.80, 0.16), Summary(50, 0.80, 0.16)),  # 5%: early, easy rows
    ...         (Summary(500, 0.70, 0.21), Summary(500, 0.70, 0.21))]  # 50%: later, harder
    >>> round(update_strata(SequentialState(), ramp)[1].difference, 6)  # pooled: -0.0475
    0.0
    """
    compared = [(a, b) for a, b in strata if a.n and b.n]
    n_a, n_b = sum(a.n for a, _ in compared), sum(b.n for _, b in compared)
    if min(n_a, n_b) < state.min_n:
        note = (
            f"waiting for {state.min_n} labelled rows per variant "
            f"(champion {n_a}, challenger {n_b}, counted in periods both served)"
        )
        difference = _difference(compared) if compared else math.nan
        return state, _decision(state, difference, n_a, n_b, note)
    freedom = sum(max(a.n - 1, 0) + max(b.n - 1, 0) for a, b in compared)
    squares = sum(
        max(a.n - 1, 0) * a.variance + max(b.n - 1, 0) * b.variance for a, b in compared
    )
    pooled = squares / freedom if freedom > 0 else 0.0
    if pooled <= 0:
        note = "every labelled row has the same outcome so far: no spread to test against"
        return state, _decision(state, _difference(compared), n_a, n_b, note)

    difference = _difference(compared)
    variance = 1 / sum(1 / (pooled * (1 / a.n + 1 / b.n)) for a, b in compared)
    mixing = state.tau2 * pooled
    p_better = min(state.p_better, _p_value(difference, variance, mixing))
    p_worse = min(state.p_worse, _p_value(-difference, variance, mixing))
    ci_low = max(state.ci_low, difference - _half_width(variance, mixing, state.alpha_better))
    ci_high = min(state.ci_high, difference + _half_width(variance, mixing, state.alpha_worse))
    verdict, note = state.verdict, ""
    if ci_low > ci_high:
        note = (
            "the running interval is empty: the arms' difference is not stable, "
            "or the normal approximation does not hold"
        )
    if verdict == "continue":
        if p_worse < state.alpha_worse and ci_high < 0:
            verdict = "challenger_worse"
        elif p_better < state.alpha_better and ci_low > 0:
            verdict = "challenger_better"
    new = replace(
        state,
        looks=state.looks + 1,
        p_better=p_better,
        p_worse=p_worse,
        ci_low=ci_low,
        ci_high=ci_high,
        verdict=verdict,
    )
    return new, _decision(new, difference, n_a, n_b, note)


def _difference(compared: Sequence[Stratum]) -> float:
    """The strata's differences weighted by inverse variance (the pooled variance is a
    common factor of every V_s, so it cancels out of the weights)."""
    weights = [1 / (1 / a.n + 1 / b.n) for a, b in compared]
    total = sum(weights)
    return sum(w * (b.mean - a.mean) for w, (a, b) in zip(weights, compared, strict=True)) / total


def _decision(state: SequentialState, difference: float, n_a: int, n_b: int, note: str) -> Decision:
    return Decision(
        verdict=state.verdict,
        p_value=min(state.p_better, state.p_worse),
        p_better=state.p_better,
        p_worse=state.p_worse,
        ci_low=state.ci_low,
        ci_high=state.ci_high,
        difference=difference,
        n_champion=n_a,
        n_challenger=n_b,
        note=note,
    )


def _log_mixture_ratio(difference: float, variance: float, mixing: float) -> float:
    """log Lambda+: the half-normal mixture of likelihood ratios for theta > 0 (see above)."""
    x = difference * math.sqrt(mixing / (variance * (variance + mixing)))
    shrink = 0.5 * math.log(variance / (variance + mixing))
    return math.log(2) + float(log_ndtr(x)) + shrink + x * x / 2


def _p_value(difference: float, variance: float, mixing: float) -> float:
    """This look's one-sided p-value, 1 / Lambda+ capped at 1."""
    return min(1.0, math.exp(-_log_mixture_ratio(difference, variance, mixing)))


def _half_width(variance: float, mixing: float, alpha: float) -> float:
    """h such that Lambda+ = 1/alpha at difference h: the interval's half on that side.

    In x (above) the equation is log Phi(x) + x^2/2 = c; since log Phi(x) lies in
    [-log 2, 0] for x >= 0 the root lies in [sqrt(2c), sqrt(2(c + log 2))], a bracket
    narrow enough for Brent's method to close in a few steps.
    """
    c = math.log(1 / alpha) - math.log(2) + 0.5 * math.log1p(mixing / variance)
    low, high = math.sqrt(2 * max(c, 0.0)), math.sqrt(2 * (c + math.log(2)))
    x = float(brentq(lambda x: float(log_ndtr(x)) + x * x / 2 - c, low, high, xtol=1e-12))
    return x * math.sqrt(variance * (variance + mixing) / mixing)


# Per-row outcomes --------------------------------------------------------------------


def default_outcome(task: Task) -> Outcome:
    """Correctness for classification, negative squared error for regression.

    Correctness reads as the metric people track (the difference is accuracy points),
    judges the labels the server answered (with the version's threshold), and is bounded,
    so the normal approximation holds at a few hundred rows. Brier uses the probabilities
    and also sees calibration drift; log loss does too but its tail (one confident miss
    costs as much as dozens of hits) makes the normal approximation slow to hold.
    Negative squared error matches RMSE, the regression default elsewhere in mlcanary.
    """
    return "squared_error" if task == "regression" else "correct"


def outcomes(
    outcome: Outcome,
    y_true: ArrayLike,
    *,
    predicted: ArrayLike | None = None,
    scores: ArrayLike | None = None,
    classes: Sequence[Any] | None = None,
) -> np.ndarray:
    """Per-row values of ``outcome`` (higher is better), ready for ``Summary.of``.

    ``predicted``: the labels (or values) the server answered, for ``correct`` and
    ``squared_error``. ``scores``: class probabilities [n, classes] in the order of
    ``classes`` (or the positive-class probability [n] for two classes), for ``brier``
    and ``log_loss``.

    >>> outcomes("correct", ["a", "b", "b"], predicted=["a", "a", "b"]).tolist()
    [1.0, 0.0, 1.0]
    """
    truth = np.asarray(y_true)
    if outcome in ("correct", "squared_error"):
        if predicted is None:
            raise ValueError(f"outcome {outcome!r}: expected the predicted values, got None")
        guess = np.asarray(predicted)
        _same_length(outcome, truth, guess)
        if outcome == "squared_error":
            return np.asarray(-((guess.astype(float) - truth.astype(float)) ** 2))
        same = (guess == truth) | (guess.astype(str) == truth.astype(str))
        return np.asarray(same, dtype=float)
    if outcome not in ("brier", "log_loss"):
        allowed = ("correct", "brier", "log_loss", "squared_error")
        raise ValueError(f"sequential 'outcome': expected one of {allowed}, got {outcome!r}")
    if scores is None or classes is None:
        raise ValueError(f"outcome {outcome!r}: expected scores and classes, got None")
    proba = np.asarray(scores, dtype=float)
    if proba.ndim == 1:
        proba = np.c_[1 - proba, proba]
    _same_length(outcome, truth, proba)
    if proba.shape[1] != len(classes):
        raise ValueError(
            f"outcome {outcome!r}: expected one score column per class ({len(classes)}), "
            f"got {proba.shape[1]}"
        )
    # A label the version never had matches no column: it scores as a confident miss.
    index = _class_index(truth, np.asarray(classes))
    known = index >= 0
    hit = np.zeros_like(proba)
    hit[np.flatnonzero(known), index[known]] = 1.0
    if outcome == "brier":
        # Brier's own definition, summed over classes (0 to 2): twice scikit-learn's binary
        # brier_score_loss, the same ordering of models.
        return np.asarray(-((proba - hit) ** 2).sum(axis=1) - (~known))
    p_true = np.where(known, (proba * hit).sum(axis=1), 0.0)
    return np.asarray(np.log(np.maximum(p_true, LOG_LOSS_FLOOR)))


def _same_length(outcome: Outcome, truth: np.ndarray, other: np.ndarray) -> None:
    if len(other) != len(truth):
        raise ValueError(
            f"outcome {outcome!r}: expected as many predictions as labels ({len(truth)}), "
            f"got {len(other)}"
        )


def _class_index(values: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Column of each label among ``classes``, by value then by text (a label logged as
    "1" is class 1); -1 for a label the version never had."""
    found = pd.Index(classes).get_indexer(pd.Index(values))
    as_text = pd.Index(classes.astype(str)).get_indexer(pd.Index(values.astype(str)))
    return np.asarray(np.where(found >= 0, found, as_text))
