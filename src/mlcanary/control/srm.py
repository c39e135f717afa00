"""Sample-ratio mismatch: does the traffic each variant received match the intended split?

When a 50/50 split delivers 5,000 requests to one arm and 5,400 to the other, something
between the client and the model is broken: a router bug, a variant that crashes on some
inputs (its failures never reach the log), bots hitting one arm, a cache in front of one.
Every comparison between the arms is then suspect, because the rows each arm saw are no
longer a random half of the same population. The check is a chi-squared goodness of fit
of the observed counts against ``total x weight``.

The default threshold is p < 0.001 rather than 0.05 because the check runs on every
window of every rollout and a false alarm pauses a healthy rollout; a real mismatch
grows with traffic (its statistic grows linearly in the total), so it clears a strict
threshold soon enough. Traffic to a variant with weight 0 is a mismatch at once: no
sampling noise explains it.

Pass the counts of split traffic only: shadow copies are mirrored, not assigned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scipy import stats

from mlcanary.control.assignment import validate_weights

SRM_THRESHOLD = 0.001
"""p-value below which the split is declared broken (see the module docstring)."""

MIN_TOTAL = 100
"""Below this many requests no test is run: a few requests tell nothing about a split."""

MIN_EXPECTED = 5.0
"""Smallest expected count in a variant with traffic for the chi-squared approximation
(the textbook rule); a 1% canary therefore waits for 500 requests."""


@dataclass(frozen=True)
class SrmResult:
    """Chi-squared statistic and p-value (None when no test was run), the verdict, the
    expected counts per variant, and a note saying why when the verdict is not a test's."""

    statistic: float | None
    p_value: float | None
    mismatch: bool
    expected: dict[str, float]
    note: str = ""


def srm_test(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = SRM_THRESHOLD,
    min_total: int = MIN_TOTAL,
) -> SrmResult:
    """Test observed request counts per variant against the intended percentages.

    A variant in ``observed`` but not in ``weights`` counts as a variant with weight 0:
    it received traffic nobody meant to send it.

    >>> srm_test({"champion": 5000, "challenger": 5400}, {"champion": 50, "challenger": 50})
    ... # doctest: +ELLIPSIS
    SrmResult(statistic=15.38..., p_value=8.7...e-05, mismatch=True, ...)
    """
    if not 0 < threshold < 1:
        raise ValueError(f"srm 'threshold': expected a p-value in (0, 1), got {threshold!r}")
    for name, count in observed.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(
                f"srm observed count {name!r}: expected a whole number >= 0, got {count!r}"
            )
    split = validate_weights(weights)
    split.update({name: 0.0 for name in observed if name not in split})
    total = sum(observed.values())
    expected = {name: total * weight / 100 for name, weight in split.items()}

    stray = {name: observed[name] for name in observed if split[name] == 0 and observed[name]}
    if stray:
        listing = ", ".join(f"{name!r} ({count})" for name, count in stray.items())
        return SrmResult(
            math.inf, 0.0, True, expected, f"traffic to variants with weight 0: {listing}"
        )
    if total < min_total:
        note = f"{total} requests, fewer than the {min_total} needed to test the split"
        return SrmResult(None, None, False, expected, note)
    live = [name for name in split if split[name] > 0]
    if len(live) == 1:
        return SrmResult(0.0, 1.0, False, expected, f"all traffic goes to {live[0]!r}")
    smallest = min(expected[name] for name in live)
    if smallest < MIN_EXPECTED:
        note = (
            f"smallest expected count {smallest:.1f} is under {MIN_EXPECTED:g}: "
            "too few requests for the chi-squared approximation"
        )
        return SrmResult(None, None, False, expected, note)
    statistic = math.fsum(
        (observed.get(name, 0) - expected[name]) ** 2 / expected[name] for name in live
    )
    p_value = float(stats.chi2.sf(statistic, df=len(live) - 1))
    return SrmResult(statistic, p_value, p_value < threshold, expected)


SEQUENTIAL_ALPHA = 0.001
"""False-alarm bound of ``sequential_srm_test`` over every look at one split's counts."""

CONCENTRATION = 1000.0
"""Total weight of the Dirichlet prior of the sequential test, centred on the intended
split: the alternatives it expects are shares off by about ``1 / sqrt(1000)``, a few
percentage points at 50/50, the size of a real sample-ratio mismatch (a router bug,
a variant that crashes on some inputs)."""


def sequential_srm_test(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    alpha: float = SEQUENTIAL_ALPHA,
    min_total: int = MIN_TOTAL,
) -> SrmResult:
    """The sample-ratio test a rollout may repeat after every interval on growing counts.

    ``srm_test`` holds its false-alarm rate for one look. A rollout looks at every
    interval, and at 0.001 per look a long rollout pauses at random. Here ``observed`` holds
    the counts since the split took effect (cumulative, not one interval's). The statistic is
    the Bayes factor of a Dirichlet-multinomial mixture against the intended split
    (Lindon & Malek, 2020, "Anytime-valid inference for multinomial count data"), a
    nonnegative martingale under the intended split. By Ville's inequality, the chance that
    it *ever* reaches ``1 / alpha`` is at most ``alpha``, however often it is computed. The
    p-value reported is the anytime-valid one, ``min(1, 1 / factor)``; ``statistic`` is
    the log of the factor.

    >>> sequential_srm_test({"champion": 5000, "challenger": 5600}, {"champion": 50,
    ...                     "challenger": 50}).mismatch
    True
    >>> sequential_srm_test({"champion": 41, "challenger": 80}, {"champion": 50,
    ...                     "challenger": 50}).mismatch  # chi-squared: p = 0.0004
    False
    """
    from scipy.special import gammaln

    if not 0 < alpha < 1:
        raise ValueError(f"srm 'alpha': expected a probability in (0, 1), got {alpha!r}")
    fixed = srm_test(observed, weights, min_total=min_total)
    if fixed.note:  # stray traffic, too few requests, one live variant: its rules hold
        return fixed
    shares = {name: w / 100 for name, w in validate_weights(weights).items() if w > 0}
    live = list(shares)
    counts = {name: observed.get(name, 0) for name in live}
    n = sum(counts.values())
    log_factor = float(
        gammaln(CONCENTRATION) - gammaln(CONCENTRATION + n)
        + math.fsum(gammaln(CONCENTRATION * shares[k] + counts[k])
                    - gammaln(CONCENTRATION * shares[k]) - counts[k] * math.log(shares[k])
                    for k in live)
    )
    p_value = min(1.0, math.exp(-log_factor)) if log_factor > -700 else 1.0
    return SrmResult(log_factor, p_value, log_factor >= math.log(1 / alpha), fixed.expected)
