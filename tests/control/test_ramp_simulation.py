"""The quality gate on a canary ramp whose outcome rate drifts while it runs.

During a ramp the challenger's share grows, so its rows come from later in the stream
than the champion's. When accuracy falls as the data drifts (here by 10 points, 0.85 to
0.75, over the ramp), pooling each arm since the start reads the shared decline as the
challenger being worse; comparing the arms within each step (``update_strata``) does not.

Each run simulates a ramp 1, 5, 10, 25, 50, 100% with one look per interval of
``INTERVAL`` labelled rows; a row's correctness is Bernoulli(accuracy at its time), and
it goes to the challenger with the step's share. Per interval and arm only counts and
sums are drawn (binomial), in sub-periods so that the trend is followed within a step.
Tolerances are binomial bounds at 99% (``most_allowed`` / ``fewest_allowed``): a gate
with the claimed rate fails them with probability <= 1%; fixed seeds, no flakes.
"""

from __future__ import annotations

import numpy as np

from mlcanary.control.sequential import SequentialState, Summary, update_strata
from tests.monitor.drift_data import fewest_allowed, most_allowed

STEPS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0)
INTERVAL = 3000
PARTS = 10  # sub-periods per interval: the accuracy declines within a step too
RUNS = 400


def ramp(rng: np.random.Generator, start: float, end: float, worse: float,
         stratify: bool) -> str:
    """One ramp's verdict: accuracy drifts linearly from ``start`` to ``end``; the
    challenger is ``worse`` points below the champion throughout."""
    total_parts = len(STEPS) * PARTS
    accuracy = np.linspace(start, end, total_parts)
    state = SequentialState()
    strata: list[list[float]] = []  # per step: [n_a, sum_a, n_b, sum_b]
    for k, share in enumerate(STEPS):
        strata.append([0.0, 0.0, 0.0, 0.0])
        for part in range(PARTS):
            p = accuracy[k * PARTS + part]
            rows = INTERVAL // PARTS
            to_challenger = rng.binomial(rows, share / 100)
            to_champion = rows - to_challenger
            cell = strata[-1]
            cell[0] += to_champion
            cell[1] += rng.binomial(to_champion, p)
            cell[2] += to_challenger
            cell[3] += rng.binomial(to_challenger, p - worse)
        cells = strata if stratify else [list(np.sum(strata, axis=0))]
        state, _ = update_strata(state, [(_summary(a, s), _summary(b, t))
                                         for a, s, b, t in cells])
        if state.verdict != "continue":
            return state.verdict
    return state.verdict


def _summary(n: float, successes: float) -> Summary:
    """Count, mean and sample variance of ``n`` 0/1 outcomes with ``successes`` ones."""
    n_rows = int(n)
    if n_rows == 0:
        return Summary(0, 0.0, 0.0)
    mean = successes / n_rows
    variance = mean * (1 - mean) * n_rows / (n_rows - 1) if n_rows > 1 else 0.0
    return Summary(n_rows, mean, variance)


def verdicts(seed: int, **kwargs: object) -> list[str]:
    rng = np.random.default_rng(seed)
    return [ramp(rng, **kwargs) for _ in range(RUNS)]  # type: ignore[arg-type]


def test_an_aa_ramp_on_a_drifting_stream_is_rarely_rolled_back() -> None:
    """Same model on both arms, accuracy 0.85 -> 0.75 during the ramp: false rollbacks
    and false "better" each at most 2.5% (the gate's alpha per side), within 5% together."""
    found = verdicts(1, start=0.85, end=0.75, worse=0.0, stratify=True)
    assert found.count("challenger_worse") <= most_allowed(RUNS, 0.05)
    assert found.count("challenger_better") <= most_allowed(RUNS, 0.05)


def test_pooling_the_same_ramp_rolls_most_back() -> None:
    """The rule before strata, on the same stream: the shared decline reads as a worse
    challenger in most ramps (the failure the strata fix)."""
    found = verdicts(1, start=0.85, end=0.75, worse=0.0, stratify=False)
    assert found.count("challenger_worse") >= fewest_allowed(RUNS, 0.5)


def test_a_challenger_five_points_worse_is_still_rolled_back() -> None:
    """Power under the same drift: a challenger 5 points worse is rolled back in >= 95%."""
    found = verdicts(2, start=0.85, end=0.75, worse=0.05, stratify=True)
    assert found.count("challenger_worse") >= fewest_allowed(RUNS, 0.95)
