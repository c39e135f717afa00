"""The contract every rollout strategy keeps, run over every entry of the registry; and no
module outside the registry branches on a strategy's name."""

from __future__ import annotations

import pytest

from mlcanary.control.strategies import STRATEGIES, RolloutStrategy, strategy_named
from mlcanary.errors import InvalidInput
from mlcanary.store.deployments import DEFAULT_STEPS, Deployment
from tests.names import branches_on_names, breaches

EVERY = pytest.mark.parametrize("strategy", list(STRATEGIES.values()), ids=list(STRATEGIES))
RAMPS = [DEFAULT_STEPS, (50.0, 100.0), (100.0,)]


def started(strategy: RolloutStrategy, ramp: tuple[float, ...]) -> Deployment:
    share = strategy.first_share(ramp, None)
    return Deployment(model="m", strategy=strategy.name, champion=1, challenger=2,
                      weights={"champion": 100.0 - share, "challenger": share}, steps=ramp)


def test_the_registry_names_each_strategy_by_its_own_name() -> None:
    assert list(STRATEGIES) == ["canary", "ab", "shadow"]
    for name, strategy in STRATEGIES.items():
        assert strategy.name == name and strategy_named(name) is strategy
    with pytest.raises(InvalidInput, match="strategy: expected one of canary, ab, shadow, "
                                           "got 'blue-green'"):
        strategy_named("blue-green")


@EVERY
@pytest.mark.parametrize("ramp", RAMPS)
def test_a_rollout_starts_with_a_split_of_100_percent(
    strategy: RolloutStrategy, ramp: tuple[float, ...]
) -> None:
    share = strategy.first_share(ramp, None)
    assert 0.0 <= share <= 100.0
    # A challenger that answers clients gets some of them; one that does not gets none.
    assert (share > 0) == strategy.answers_clients


@EVERY
def test_a_challenger_that_answers_clients_is_judged(strategy: RolloutStrategy) -> None:
    """Whoever answers clients is checked by the controller (else nothing would ever roll
    a bad one back); a strategy the controller never checks is never promoted by it."""
    assert strategy.checked or not strategy.answers_clients
    assert (strategy.checks_needed(DEFAULT_STEPS) > 0) == strategy.checked


@EVERY
@pytest.mark.parametrize("ramp", RAMPS)
def test_passed_checks_promote_after_exactly_the_checks_needed(
    strategy: RolloutStrategy, ramp: tuple[float, ...]
) -> None:
    """With every gate passing and the quality test finding the challenger better, the
    strategy promotes after ``checks_needed`` checks, stepping through the ramp first."""
    deployment, checks = started(strategy, ramp), 0
    for _ in range(len(ramp) + 2):
        move = strategy.after_pass(deployment, "challenger_better")
        assert move in ("promote", "step", "stay")
        if move == "stay":
            break
        checks += 1
        if move == "promote":
            break
        deployment = deployment.evolve(step=deployment.step + 1)
        assert deployment.step < len(ramp)
    assert checks == strategy.checks_needed(ramp)


@EVERY
def test_without_a_better_verdict_no_strategy_but_the_canary_ramp_moves(
    strategy: RolloutStrategy,
) -> None:
    """An A/B test promotes on evidence alone; a shadow never moves by itself."""
    move = strategy.after_pass(started(strategy, DEFAULT_STEPS), "continue")
    assert move == ("step" if strategy.checks_needed(DEFAULT_STEPS) > 1 else "stay")


@EVERY
def test_status_shows_the_same_fields_for_every_strategy(strategy: RolloutStrategy) -> None:
    fields = strategy.status(started(strategy, DEFAULT_STEPS))
    assert set(fields) == {"step", "steps"}


def test_no_module_outside_the_registry_branches_on_a_strategy_name() -> None:
    assert branches_on_names('if d.strategy == "shadow":\n    pass\n', STRATEGIES) == [1]
    assert branches_on_names('x = "canary"\n', STRATEGIES) == []
    assert breaches(STRATEGIES, "control/strategies.py") == []
