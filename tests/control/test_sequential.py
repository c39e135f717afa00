"""The quality gate's mechanics: the closed form, the interval as the test's inversion, state
that survives a restart, outcomes that match scikit-learn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats
from sklearn import metrics as skm

from mlcanary.control import sequential
from mlcanary.control.sequential import (
    SequentialState,
    Summary,
    default_outcome,
    outcomes,
    update,
)

CHAMPION = Summary(400, 0.80, 0.80 * 0.20)


def bernoulli(n: int, mean: float) -> Summary:
    return Summary(n, mean, n / (n - 1) * mean * (1 - mean))


@pytest.mark.parametrize("difference", [-0.08, -0.01, 0.0, 0.02, 0.1])
def test_mixture_ratio_equals_the_integral_it_stands_for(difference: float) -> None:
    """Lambda+ = integral over theta > 0 of the normal likelihood ratio, half-normal prior."""
    variance, mixing = 4e-4, 1.6e-3

    def integrand(theta: float) -> float:
        prior = 2 * stats.norm.pdf(theta, 0, math.sqrt(mixing))
        return float(prior * math.exp((theta * difference - theta**2 / 2) / variance))

    numeric, _ = integrate.quad(integrand, 0, np.inf)
    closed = sequential._log_mixture_ratio(difference, variance, mixing)
    assert closed == pytest.approx(math.log(numeric), abs=1e-7)


def test_interval_edge_is_where_the_p_value_crosses_alpha() -> None:
    """The lower bound is the test inverted: a challenger ahead by exactly the half-width
    has p = alpha_better, so "p < alpha" and "lower bound > 0" are one condition."""
    _, decision = update(SequentialState(), CHAMPION, CHAMPION)
    half = decision.difference - decision.ci_low
    _, at_edge = update(SequentialState(), CHAMPION, Summary(400, 0.80 + half, 0.16))
    assert at_edge.p_better == pytest.approx(SequentialState().alpha_better, rel=1e-6)
    assert at_edge.ci_low == pytest.approx(0.0, abs=1e-9)


def test_p_values_only_fall_and_the_interval_only_narrows() -> None:
    rng = np.random.default_rng(0)
    state, previous = SequentialState(), None
    a, b = Summary(0, 0.0, 0.0), Summary(0, 0.0, 0.0)
    for _ in range(15):
        a = a.combine(Summary.of(rng.random(100) < 0.8))
        b = b.combine(Summary.of(rng.random(100) < 0.8))
        state, decision = update(state, a, b)
        if previous is not None:
            assert decision.p_better <= previous.p_better
            assert decision.p_worse <= previous.p_worse
            assert previous.ci_low <= decision.ci_low <= decision.ci_high <= previous.ci_high
        previous = decision
    assert state.looks == 15


def test_state_resumed_from_json_gives_the_same_decisions() -> None:
    """The store keeps ``to_dict`` as JSON; a restart in the middle must change nothing."""
    rng = np.random.default_rng(1)
    kept, resumed = SequentialState(), SequentialState()
    a, b = Summary(0, 0.0, 0.0), Summary(0, 0.0, 0.0)
    for _ in range(10):
        a = a.combine(Summary.of(rng.random(150) < 0.80))
        b = b.combine(Summary.of(rng.random(150) < 0.86))
        kept, expected = update(kept, a, b)
        stored = json.loads(json.dumps(resumed.to_dict(), allow_nan=False))
        resumed, decision = update(SequentialState.from_dict(stored), a, b)
        assert decision == expected
    assert resumed == kept


def test_fresh_state_serialises_its_open_interval_as_null() -> None:
    data = SequentialState().to_dict()
    assert data["ci_low"] is None and data["ci_high"] is None
    assert SequentialState.from_dict(json.loads(json.dumps(data))) == SequentialState()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tau": 0.01}, r"unknown fields \['tau'\]"),
        ({"alpha_better": 0.7}, r"'alpha_better': expected a number in \(0, 0.5\), got 0.7"),
        ({"min_n": 1}, r"'min_n': expected a whole number >= 2, got 1"),
        ({"p_worse": 1.5}, r"'p_worse': expected a number in \[0, 1\], got 1.5"),
        ({"verdict": "promote"}, r"'verdict': expected one of .*, got 'promote'"),
    ],
)
def test_bad_stored_state_is_refused_with_the_field_named(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SequentialState.from_dict(data)


def test_too_few_rows_leave_the_state_untouched() -> None:
    state = SequentialState()
    new, decision = update(state, CHAMPION, bernoulli(40, 0.5))
    assert new == state and decision.verdict == "continue" and decision.p_value == 1.0
    assert "waiting for 100 labelled rows per variant (champion 400, challenger 40" in (
        decision.note
    )
    assert decision.as_dict()["ci_low"] is None


def test_no_spread_yet_is_not_a_look() -> None:
    state = SequentialState()
    new, decision = update(state, Summary(200, 1.0, 0.0), Summary(200, 1.0, 0.0))
    assert new == state and "same outcome" in decision.note


def test_the_first_verdict_stands() -> None:
    state, decision = update(SequentialState(), CHAMPION, bernoulli(400, 0.55))
    assert decision.verdict == "challenger_worse" and decision.ci_high < 0
    state, decision = update(state, CHAMPION, bernoulli(4000, 0.80))
    assert decision.verdict == "challenger_worse"


def test_summaries_combine_like_the_rows_they_summarise() -> None:
    rng = np.random.default_rng(2)
    first, second = rng.normal(1, 2, 37), rng.normal(3, 1, 81)
    combined = Summary.of(first).combine(Summary.of(second))
    whole = Summary.of(np.r_[first, second])
    assert combined.n == whole.n
    assert combined.mean == pytest.approx(whole.mean)
    assert combined.variance == pytest.approx(whole.variance)
    assert Summary.of([]).combine(Summary.of([2.0])) == Summary(1, 2.0, 0.0)


def test_bad_summaries_are_refused() -> None:
    with pytest.raises(ValueError, match=r"summary 'variance': expected a finite number >= 0"):
        Summary(10, 0.5, -1.0)
    with pytest.raises(ValueError, match=r"summary 'n': expected a whole number >= 0"):
        Summary(-1, 0.5, 0.1)


# Outcomes ------------------------------------------------------------------------------


def test_default_outcomes() -> None:
    assert default_outcome("classification") == "correct"
    assert default_outcome("regression") == "squared_error"


def test_correctness_matches_labels_by_value_or_text() -> None:
    values = outcomes("correct", np.array([1, 0, 1, 1]), predicted=np.array(["1", "0", "0", 1]))
    assert values.tolist() == [1.0, 1.0, 0.0, 1.0]


def test_probability_outcomes_equal_sklearn_scores() -> None:
    rng = np.random.default_rng(3)
    y = rng.choice(["no", "yes"], 300)
    positive = np.clip(rng.beta(2, 2, 300), 0.01, 0.99)
    log_loss = outcomes("log_loss", y, scores=positive, classes=["no", "yes"])
    brier = outcomes("brier", y, scores=np.c_[1 - positive, positive], classes=["no", "yes"])
    assert -log_loss.mean() == pytest.approx(skm.log_loss(y, positive, labels=["no", "yes"]))
    # Brier summed over both classes: twice scikit-learn's binary score.
    assert -brier.mean() == pytest.approx(2 * skm.brier_score_loss(y == "yes", positive))


def test_an_unknown_label_scores_as_a_confident_miss() -> None:
    scores = np.array([[0.7, 0.3], [0.7, 0.3]])
    brier = outcomes("brier", np.array(["a", "z"]), scores=scores, classes=["a", "b"])
    log_loss = outcomes("log_loss", np.array(["a", "z"]), scores=scores, classes=["a", "b"])
    assert brier[1] == pytest.approx(-(0.49 + 0.09 + 1))
    assert log_loss[1] == pytest.approx(math.log(sequential.LOG_LOSS_FLOOR))


def test_squared_error_is_negated() -> None:
    values = outcomes("squared_error", [1.0, 2.0], predicted=[1.5, 0.0])
    assert values.tolist() == [-0.25, -4.0]


def test_outcome_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match=r"expected as many predictions as labels \(2\), got 3"):
        outcomes("correct", [1, 0], predicted=[1, 0, 1])
    with pytest.raises(ValueError, match=r"expected one score column per class \(3\), got 2"):
        outcomes("brier", [1, 0], scores=[[0.5, 0.5]] * 2, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"'outcome': expected one of"):
        outcomes("auc", [1], predicted=[1])  # type: ignore[arg-type]
