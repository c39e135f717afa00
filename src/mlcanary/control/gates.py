"""The gates a rollout passes each interval, in order; each returns its numbers.

1. Sample-ratio mismatch: requests per variant routed by the current split so far against
   the intended split, by a sequential test whose false-alarm rate holds over every look
   (``srm.sequential_srm_test``). A mismatch stops the analysis (broken assignment says
   nothing about the model).
2. Fast gate: the challenger's server-error rate and latency (the median and the tail:
   p99 from 1,000 requests, a lower quantile from fewer, interpolated within fine
   buckets) against the champion's on the same interval's traffic, routed by the same
   split, and against absolute limits. Latency fails only when the challenger's
   quantile is beyond ``LATENCY_RATIO`` times the champion's plus ``LATENCY_SLACK_MS``
   with significance (``latency_test``): a tail is made of a few rare, clustered events
   (a pause of the machine slows every request in flight), and the point estimates of
   two twins' p99 differ by more than the margin in several percent of a busy machine's
   intervals. When the interval gave the champion too little traffic (at 100%),
   nothing concurrent is there to compare with: the absolute error limit alone judges,
   never the champion's traffic of other periods (a trend in load or a server's restart
   would read as the challenger's fault). Latencies of a server's first seconds after a
   start are not counted (``traffic.WARMUP_SECONDS``).
   Divergence: the challenger's score distribution against the champion's on the same
   interval's traffic (an inverted or broken model shows here long before labels arrive).
3. Drift: the monitor's dataset-drift signals on the challenger's traffic, held against
   it when they come significantly more often than on the champion's in the periods both
   served (Fisher's exact test on windows, at ``DRIFT_ALPHA``).
4. Quality, once labels exist: the sequential test (``sequential.update_strata``), valid
   however often it looks, comparing the arms within each period of one traffic split.

A gate passes (True), fails (False) or lacks data (None): a rollout only advances when
every gate with data passes and the fast gate has data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mlcanary.control.srm import sequential_srm_test
from mlcanary.monitor.detectors import NumericReference, numeric_tests
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX
from mlcanary.signature import Signature
from mlcanary.store.signals import Signal
from mlcanary.store.traffic import Counts

MIN_REQUESTS = 20
"""Requests per variant an interval needs before the fast gate judges it."""
MAX_ERROR_RATE = 0.05
"""Absolute limit on the challenger's server-error rate."""
ERROR_MARGIN = 0.01
"""The challenger may exceed the champion's error rate by this much (then it fails)."""
LATENCY_RATIO = 2.0
"""The challenger's p99 may be at most this multiple of the champion's ..."""
LATENCY_SLACK_MS = 5.0
"""... plus this much (so 1 ms vs 5 ms, one latency bucket apart, is not a failure)."""
LATENCY_ALPHA = 0.001
"""Level of the latency test in one check, shared by its two quantiles (Bonferroni). The
test takes requests as independent; pauses that slow several requests at once make the
counts overdispersed, and the low level keeps the false-failure rate of twins under
clustered pauses near zero (measured in ``tests/control/test_latency_gate.py``)."""
DIVERGENCE_PSI = 0.5
"""PSI between champion and challenger scores on the same traffic. Twice the usual 'major
shift' band (0.25): models that differ only in training noise stay far below it, one with
inverted labels reads 1.1-2.5. A challenger retrained after drift is meant to score the
new traffic differently from a champion that no longer fits it (0.26-0.67 in the demo's
runs), so where labels come they judge a divergence (``divergence_judged``)."""
DIVERGENCE_ALPHA = 0.001
"""...and the KS test must reject equal distributions at this level."""
DRIFT_ALPHA = 0.01
"""One-sided level at which the challenger's traffic drifts more often than the champion's:
a challenger flagged in every window, the champion in none, fails after five windows each
at 50/50, after two against twenty at 10/90."""


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool | None
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "reason": self.reason,
                **self.numbers}


def srm_gate(counts: dict[str, Counts], weights: dict[str, float]) -> GateResult:
    """``counts``: every request routed by the current split so far (its epoch), not one
    interval's: the sequential test holds its false-alarm rate over all the looks."""
    observed = {variant: c.requests for variant, c in counts.items()}
    result = sequential_srm_test(observed, weights)
    numbers = {"observed": observed, "expected": result.expected, "p_value": result.p_value}
    if result.p_value is None and not result.mismatch:
        return GateResult("srm", None, result.note or "too little traffic to test", numbers)
    if result.mismatch:
        return GateResult("srm", False, "traffic split differs from the intended one", numbers)
    return GateResult("srm", True, "split as intended", numbers)


def tail_quantile(n: int) -> float:
    """The latency quantile a check of ``n`` requests can estimate: p99 from 1,000
    requests, lower below that, so that at least 10 requests lie above it (the p99 of 50
    requests would be their single slowest one, i.e. noise).

    >>> tail_quantile(50), tail_quantile(200), tail_quantile(5000)
    (0.8, 0.95, 0.99)
    """
    return round(min(0.99, max(0.5, 1 - 10 / max(n, 1))), 4)


@dataclass(frozen=True)
class LatencyTest:
    """One quantile's comparison: the challenger's requests above the champion's quantile
    stretched by the allowed margin, against the champion's above its own quantile."""

    quantile: float
    champion_ms: float
    challenger_ms: float
    limit_ms: float
    above: tuple[int, int]
    """(champion above its quantile, challenger above ``limit_ms``)."""
    timed: tuple[int, int]
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        return {"quantile": self.quantile, "champion_ms": self.champion_ms,
                "challenger_ms": self.challenger_ms, "limit_ms": self.limit_ms,
                "above": {"champion": self.above[0], "challenger": self.above[1]},
                "p_value": self.p_value}


def latency_test(champion: Counts, challenger: Counts, quantile: float) -> LatencyTest:
    """Whether the challenger's ``quantile`` of latency exceeds ``LATENCY_RATIO`` times
    the champion's plus ``LATENCY_SLACK_MS``.

    If it does not, a challenger request is at most as likely to be slower than that
    limit as a champion request is to be slower than the champion's quantile (1 - q):
    Fisher's exact test (one-sided) on the two counts tests just that. Requests are taken
    as independent draws of each variant's latency; both quantiles are estimated from
    the same interval's traffic.
    """
    a = champion.quantile_ms(quantile)
    b = challenger.quantile_ms(quantile)
    assert a is not None and b is not None
    limit = LATENCY_RATIO * a + LATENCY_SLACK_MS
    n0, n1 = sum(champion.latency), sum(challenger.latency)
    k0 = min(n0, round(champion.count_above(a)))
    k1 = min(n1, round(challenger.count_above(limit)))
    p_value = float(stats.fisher_exact([[k1, n1 - k1], [k0, n0 - k0]],
                                       alternative="greater").pvalue)
    return LatencyTest(quantile, a, b, limit, (k0, k1), (n0, n1), p_value)


def fast_gate(champion: Counts, challenger: Counts, champion_share: float = 0.0) -> GateResult:
    """Errors and latency of the challenger against the champion's.

    Both are counts of the same interval under the same split. When the split sends the
    champion nothing (``champion_share`` 0: the last canary step) the absolute error limit
    alone judges. When it does send the champion traffic but too little came for a
    comparison (fewer than ``MIN_REQUESTS``: a quiet interval), the gate lacks data: a
    challenger is never waved through on the interval that could not compare it.
    Latency is compared at the median and at the tail quantile the traffic supports
    (``tail_quantile``), each by ``latency_test`` at half of ``LATENCY_ALPHA``. A
    challenger whose estimated quantile is beyond the limit without significance is not
    passed: the gate lacks data, and the next check reads the longer interval.
    """
    compared = champion.requests >= MIN_REQUESTS
    timed = min(sum(champion.latency), sum(challenger.latency)) if compared else sum(
        challenger.latency)
    q = tail_quantile(timed)
    numbers: dict[str, Any] = {
        "requests": {"champion": champion.requests, "challenger": challenger.requests},
        "error_rate": {"champion": champion.error_rate, "challenger": challenger.error_rate},
        "latency_quantile": q,
        "latency_ms": {"champion": champion.quantile_ms(q),
                       "challenger": challenger.quantile_ms(q)},
    }
    if challenger.requests < MIN_REQUESTS:
        return GateResult("fast", None, f"fewer than {MIN_REQUESTS} challenger requests",
                          numbers)
    if champion_share > 0 and not compared:
        return GateResult(
            "fast", None, f"fewer than {MIN_REQUESTS} champion requests to compare with "
            f"({champion.requests}; the split sends it {champion_share:g}%)", numbers)
    if compared and timed < MIN_REQUESTS:
        # Counted, but answered in a server's warm-up: no latency to compare yet.
        return GateResult("fast", None, "too few latencies measured (server warm-up)",
                          numbers)
    reasons = []
    if challenger.error_rate > MAX_ERROR_RATE or (
        compared and challenger.error_rate > champion.error_rate + ERROR_MARGIN
    ):
        reasons.append(
            f"error rate {challenger.error_rate:.1%} vs champion {champion.error_rate:.1%}"
        )
    beyond: list[LatencyTest] = []
    if compared:
        tests = [latency_test(champion, challenger, u) for u in sorted({0.5, q})]
        numbers["latency_tests"] = [t.as_dict() for t in tests]
        level = LATENCY_ALPHA / len(tests)
        for t in tests:
            if t.p_value < level:
                reasons.append(
                    f"p{t.quantile * 100:g} latency {t.challenger_ms:.3g} ms vs champion "
                    f"{t.champion_ms:.3g} ms: {t.above[1] / t.timed[1]:.1%} of its requests "
                    f"above {t.limit_ms:.3g} ms ({LATENCY_RATIO:g}x + {LATENCY_SLACK_MS:g} "
                    f"ms), the champion's {t.above[0] / t.timed[0]:.1%} above its own "
                    f"(p = {t.p_value:.1e})")
                break
        beyond = [t for t in tests if t.challenger_ms > t.limit_ms]
    if reasons:
        return GateResult("fast", False, "; ".join(reasons), numbers)
    if beyond:
        # Slower than allowed by the estimate, not yet by the evidence: neither a pass nor
        # a failure; the interval grows until the test decides or the estimate comes back.
        t = beyond[0]
        return GateResult(
            "fast", None,
            f"p{t.quantile * 100:g} latency {t.challenger_ms:.3g} ms beyond "
            f"{t.limit_ms:.3g} ms ({LATENCY_RATIO:g}x the champion's + "
            f"{LATENCY_SLACK_MS:g} ms), not yet significant (p = {t.p_value:.1e}): waiting "
            "for more traffic", numbers)
    return GateResult("fast", True, "errors and latency within limits", numbers)


def divergence_gate(
    champion: pd.DataFrame, challenger: pd.DataFrame, signature: Signature
) -> GateResult:
    """Challenger scores vs champion scores on the same interval's traffic."""
    a, b = _scores(champion, signature), _scores(challenger, signature)
    if min(len(a), len(b)) < MIN_REQUESTS:
        return GateResult("divergence", None, "too few logged predictions", {})
    tests = {t.test: t for t in numeric_tests("score", NumericReference.from_values(a), b)}
    psi, ks = tests["psi"].statistic, tests["ks"]
    numbers = {"psi": psi, "ks": ks.statistic, "ks_p_value": ks.p_value,
               "mean_score": {"champion": float(np.mean(a)), "challenger": float(np.mean(b))}}
    # Both: a difference too large for chance (KS) and large enough to matter (PSI), since
    # PSI alone is noisy on the few rows an early canary step sees (~9 / n per window).
    if psi >= DIVERGENCE_PSI and ks.p_value is not None and ks.p_value < DIVERGENCE_ALPHA:
        return GateResult("divergence", False,
                          f"challenger scores diverge from the champion's (PSI {psi:.2f})",
                          numbers)
    return GateResult("divergence", True, "scores agree with the champion's", numbers)


def divergence_judged(
    divergence: GateResult, quality: GateResult, labelled: dict[str, int]
) -> GateResult:
    """A divergence the labels can judge, judged by them.

    Diverging scores say that the two models disagree, not which one is right. A challenger
    retrained after drift is meant to disagree with a champion that no longer fits the
    traffic, by a PSI anywhere from 0.26 to 0.67 in the demo's runs. So once the quality
    test has looked (``MIN_N`` labelled rows an arm), the labels decide: the divergence
    passes while the challenger's labelled outcome is at least the champion's, and fails
    when it is lower. While the champion's traffic gets labels (``labelled``: rows since
    the rollout began, per variant) but the challenger has too few, the gate waits for
    them. A model whose traffic gets no labels has nothing else to judge a divergence by,
    and it fails, as a broken challenger should.
    """
    if divergence.passed is not False:
        return divergence
    psi = divergence.numbers["psi"]
    numbers = {**divergence.numbers, "labelled": dict(labelled)}
    difference = quality.numbers.get("difference")
    if quality.passed is not None and difference is not None:
        if difference >= 0:
            return GateResult(
                "divergence", True,
                f"scores diverge from the champion's (PSI {psi:.2f}); its labelled rows "
                f"score {difference:+.3g} against the champion's: quality judges", numbers)
        return GateResult(
            "divergence", False,
            f"challenger scores diverge from the champion's (PSI {psi:.2f}) and its "
            f"labelled rows score {difference:+.3g} against the champion's", numbers)
    if labelled.get("champion", 0) > 0:
        return GateResult(
            "divergence", None,
            f"scores diverge from the champion's (PSI {psi:.2f}): waiting for labels to "
            f"judge (champion {labelled.get('champion', 0)}, challenger "
            f"{labelled.get('challenger', 0)} labelled rows)",
            {**numbers, "awaiting_labels": True})
    return divergence


def drift_gate(signals: list[Signal], champion: list[Signal] | None = None) -> GateResult:
    """Drift on the challenger's traffic (against its own reference) significantly more
    often than on the champion's traffic of the same periods.

    Each version is compared with the data it was trained on. When the world moves, both
    drift, and a challenger retrained on the new data drifts less: that is no reason to
    stop it (quality decides). A challenger whose traffic drifts more often than the
    champion's was trained on data unlike production, and fails, once Fisher's exact test
    (one-sided, on flagged and quiet windows) says so at ``DRIFT_ALPHA``. A window's false
    alarm is no verdict: while even the most lopsided outcome these windows allow would not
    be significant, the gate lacks data (the controller waits for more windows).
    """
    flagged = [s for s in signals if s.flagged]
    ours = [s for s in champion or [] if s.flagged]
    numbers: dict[str, Any] = {
        "windows": len(signals), "flagged": len(flagged),
        "champion_windows": len(champion or []), "champion_flagged": len(ours)}
    if not signals:
        return GateResult("drift", None, "no window of challenger traffic yet", numbers)
    if not flagged:
        return GateResult("drift", True, "no drift on challenger traffic", numbers)
    columns = sorted({c for s in flagged for c in s.payload["drifted_columns"]})
    if not champion:  # nothing to hold it against: one window's false alarm is no verdict
        return GateResult(
            "drift", None,
            f"drift on challenger traffic ({columns}); no window of the champion's yet to "
            "compare with", numbers,
        )
    n1, f1, n0, f0 = len(signals), len(flagged), len(champion), len(ours)
    p_value = float(stats.fisher_exact([[f1, n1 - f1], [f0, n0 - f0]],
                                       alternative="greater").pvalue)
    numbers["p_value"] = p_value
    counts = f"{f1} of {n1} windows, the champion's {f0} of {n0}"
    if p_value < DRIFT_ALPHA:
        return GateResult("drift", False, f"dataset drift on challenger traffic ({columns}): "
                          f"{counts} (p = {p_value:.2g})", numbers)
    if f1 / n1 <= f0 / n0:
        return GateResult(
            "drift", True,
            f"drift on challenger traffic ({columns}) but no more often than on the "
            f"champion's ({counts}): the data moved, not the model", numbers,
        )
    if 1 / math.comb(n0 + n1, n1) >= DRIFT_ALPHA:  # all flagged on one side: still not
        return GateResult("drift", None, f"drift on challenger traffic ({columns}): {counts}; "
                          "too few windows to tell a false alarm from a difference", numbers)
    return GateResult("drift", True, f"drift on challenger traffic ({columns}) not "
                      f"significantly more often than on the champion's ({counts}, "
                      f"p = {p_value:.2g})", numbers)


def _scores(frame: pd.DataFrame, signature: Signature) -> np.ndarray:
    if frame.empty:
        return np.empty(0)
    if signature.task == "regression":
        return np.asarray(frame[PREDICTION_COLUMN], dtype=float)
    classes = signature.classes or []
    column = f"{SCORE_PREFIX}{classes[-1]}"  # the positive class (the last one otherwise)
    if column not in frame:
        return np.empty(0)
    return np.asarray(frame[column].dropna(), dtype=float)
