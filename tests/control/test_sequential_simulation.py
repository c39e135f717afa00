"""The quality gate's error rates, measured: A/A false winners, power, interval coverage.

Each experiment is analysed after every batch of labelled rows, as the control loop does.
Rows are simulated as cumulative sums per arm and look (for 0/1 outcomes a binomial draw
per batch is the batch's sum), so a thousand experiments of twenty looks take well under
a second; every look still goes through the public ``update``.

Tolerances are binomial: a rate claimed to be at most (or at least) r, measured over N
independent experiments, gives a count distributed Binomial(N, r) at worst; the tests
accept any count inside that distribution's one-sided 99% bound (``stats.binom.ppf``), so
a correct gate fails them with probability <= 1%, and with the fixed seeds never flakes.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from mlcanary.control.sequential import ALPHA, SequentialState, Summary, update

LOOKS = 20
BATCH = 100  # rows per arm per look: 2,000 per arm at the horizon


def cumulative_bernoulli(
    rng: np.random.Generator, p: float, batches: np.ndarray, runs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per run and look: rows, sum and sum of squares of 0/1 outcomes with mean ``p``."""
    successes = rng.binomial(batches, p, size=(runs, len(batches))).cumsum(axis=1)
    rows = np.broadcast_to(batches.cumsum(), successes.shape)
    return rows, successes, successes


def cumulative_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same from row values [runs, looks, rows per look]."""
    runs, looks, per_look = values.shape
    rows = np.broadcast_to(per_look * np.arange(1, looks + 1), (runs, looks))
    return rows, values.sum(axis=2).cumsum(axis=1), (values**2).sum(axis=2).cumsum(axis=1)


def summary(rows: int, total: float, squares: float) -> Summary:
    variance = max(squares - total * total / rows, 0.0) / (rows - 1)
    return Summary(int(rows), total / rows, variance)


def run_gate(
    champion: tuple[np.ndarray, ...], challenger: tuple[np.ndarray, ...], truth: float
) -> tuple[np.ndarray, np.ndarray]:
    """Final verdict of each run, and whether the interval held ``truth`` at every look."""
    runs, looks = champion[0].shape
    verdicts, covered = [], []
    for run in range(runs):
        state, always = SequentialState(), True
        for look in range(looks):
            a = summary(*(part[run, look] for part in champion))
            b = summary(*(part[run, look] for part in challenger))
            state, decision = update(state, a, b)
            always = always and decision.ci_low <= truth <= decision.ci_high
        verdicts.append(state.verdict)
        covered.append(always)
    return np.array(verdicts), np.array(covered)


def upper_99(runs: int, rate: float) -> int:
    return int(stats.binom.ppf(0.99, runs, rate))


def lower_99(runs: int, rate: float) -> int:
    return int(stats.binom.ppf(0.01, runs, rate))


def test_aa_declares_a_winner_in_at_most_5_percent_of_experiments() -> None:
    """Identical arms (80% correct), 1,000 experiments, 20 looks each. The guarantee is
    <= alpha_better + alpha_worse = 5% in all, <= 2.5% a side; the 99% binomial bounds
    on 1,000 runs are 67 and 37. The interval must hold 0 throughout in >= 95% of runs
    (933 of 1,000 at the lower 99% bound)."""
    rng = np.random.default_rng(11)
    runs, batches = 1000, np.full(LOOKS, BATCH)
    verdicts, covered = run_gate(
        cumulative_bernoulli(rng, 0.8, batches, runs),
        cumulative_bernoulli(rng, 0.8, batches, runs),
        truth=0.0,
    )
    better = int(np.sum(verdicts == "challenger_better"))
    worse = int(np.sum(verdicts == "challenger_worse"))
    message = f"A/A: {better} better + {worse} worse of {runs} ({(better + worse) / runs:.1%})"
    assert better + worse <= upper_99(runs, 2 * ALPHA), message
    assert better <= upper_99(runs, ALPHA) and worse <= upper_99(runs, ALPHA), message
    assert covered.sum() >= lower_99(runs, 0.95), f"coverage {covered.mean():.1%}"


def test_aa_stays_valid_through_a_traffic_ramp() -> None:
    """The challenger's share goes 5% -> 10% -> 25% -> 50% of 2,000 rows a look (five looks
    each): the information-time argument says the split's changes do not matter. Same
    bounds as the even split, on 500 runs (37 in all)."""
    rng = np.random.default_rng(12)
    runs = 500
    challenger_rows = np.repeat([100, 200, 500, 1000], 5)
    verdicts, covered = run_gate(
        cumulative_bernoulli(rng, 0.8, 2000 - challenger_rows, runs),
        cumulative_bernoulli(rng, 0.8, challenger_rows, runs),
        truth=0.0,
    )
    winners = int(np.sum(verdicts != "continue"))
    message = f"A/A through a ramp: {winners} of {runs} ({winners / runs:.1%})"
    assert winners <= upper_99(runs, 2 * ALPHA), message
    assert covered.sum() >= lower_99(runs, 0.95), f"coverage {covered.mean():.1%}"


def test_aa_on_a_skewed_regression_outcome() -> None:
    """Negative squared error of N(0, 1) residuals is -chi^2_1: skewed, the hard case for the
    normal approximation. 500 runs of 20 looks of 100 rows per arm; bound 37 of 500."""
    rng = np.random.default_rng(13)
    runs = 500
    champion = -(rng.standard_normal((runs, LOOKS, BATCH)) ** 2)
    challenger = -(rng.standard_normal((runs, LOOKS, BATCH)) ** 2)
    verdicts, covered = run_gate(cumulative_rows(champion), cumulative_rows(challenger), truth=0.0)
    winners = int(np.sum(verdicts != "continue"))
    message = f"A/A, squared error: {winners} of {runs} ({winners / runs:.1%})"
    assert winners <= upper_99(runs, 2 * ALPHA), message
    assert covered.sum() >= lower_99(runs, 0.95), f"coverage {covered.mean():.1%}"


def test_a_better_challenger_is_found_and_covered() -> None:
    """80% vs 85% correct (0.125 sd) within 2,000 rows per arm: power >= 80% (379 of 500 at
    the lower 99% bound), the interval holds +0.05 at every look in >= 95% of runs (463).
    A verdict the wrong way round would mean the sides are swapped: Ville bounds its
    chance by alpha_worse even at a zero difference, and here the drift is against it."""
    rng = np.random.default_rng(14)
    runs, batches = 500, np.full(LOOKS, BATCH)
    verdicts, covered = run_gate(
        cumulative_bernoulli(rng, 0.80, batches, runs),
        cumulative_bernoulli(rng, 0.85, batches, runs),
        truth=0.05,
    )
    found = int(np.sum(verdicts == "challenger_better"))
    assert found >= lower_99(runs, 0.80), f"power {found / runs:.1%}"
    assert not np.any(verdicts == "challenger_worse")
    assert covered.sum() >= lower_99(runs, 0.95), f"coverage {covered.mean():.1%}"


def test_a_much_worse_challenger_is_rolled_back() -> None:
    """80% vs 60% correct: the rollback signal in >= 99% of runs (194 of 200 at the lower
    99% bound), never the promotion one."""
    rng = np.random.default_rng(15)
    runs, batches = 200, np.full(LOOKS, BATCH)
    verdicts, covered = run_gate(
        cumulative_bernoulli(rng, 0.80, batches, runs),
        cumulative_bernoulli(rng, 0.60, batches, runs),
        truth=-0.20,
    )
    found = int(np.sum(verdicts == "challenger_worse"))
    assert found >= lower_99(runs, 0.99), f"power {found / runs:.1%}"
    assert not np.any(verdicts == "challenger_better")
    assert covered.sum() >= lower_99(runs, 0.95), f"coverage {covered.mean():.1%}"
