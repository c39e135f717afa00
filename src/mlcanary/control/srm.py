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
