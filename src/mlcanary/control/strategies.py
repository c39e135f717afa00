"""Rollout strategies: what a canary, an A/B test and a shadow do differently.

Every place that used to branch on a strategy's name asks its ``RolloutStrategy``
instead: the split it starts with, whether clients are answered by the challenger,
whether the controller checks it, what a passed check leads to and what ``status`` shows.
A new strategy is one class here and one entry in ``STRATEGIES``; the contract tests
(``tests/control/test_strategies.py``) run over every entry.

    canary  the challenger takes the ramp's steps (1% ... 100%), promoted after the last
    ab      a fixed split, promoted when the sequential test finds the challenger better
    shadow  the champion answers everyone; the challenger scores mirrored copies
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Protocol

from mlcanary.control.assignment import validate_weights
from mlcanary.errors import InvalidInput
from mlcanary.store.deployments import Deployment

Next = Literal["promote", "step", "stay"]
"""After a check every gate passed: promote, take the next step, or keep the split."""


class RolloutStrategy(Protocol):
    name: ClassVar[str]
    answers_clients: ClassVar[bool]
    """Whether the challenger answers clients (a shadow's only scores copies)."""
    checked: ClassVar[bool]
    """Whether the rollout controller runs the gates on it and moves it."""

    def first_share(self, ramp: Sequence[float], weights: Sequence[float] | None) -> float:
        """The challenger's percent of traffic when the rollout starts."""
        ...

    def checks_needed(self, ramp: Sequence[float]) -> int:
        """Checks a rollout takes at the least before it can be promoted (0: never by
        the controller)."""
        ...

    def after_pass(self, deployment: Deployment, verdict: str | None) -> Next:
        """What a check with every gate passed leads to (``verdict``: the quality test's)."""
        ...

    def status(self, deployment: Deployment) -> dict[str, Any]:
        """The strategy's own fields of ``mlcanary status``: ``step`` and ``steps``."""
        ...


class Canary:
    name: ClassVar[str] = "canary"
    answers_clients: ClassVar[bool] = True
    checked: ClassVar[bool] = True

    def first_share(self, ramp: Sequence[float], weights: Sequence[float] | None) -> float:
        return float(ramp[0])

    def checks_needed(self, ramp: Sequence[float]) -> int:
        return len(ramp)

    def after_pass(self, deployment: Deployment, verdict: str | None) -> Next:
        return "promote" if deployment.step + 1 >= len(deployment.steps) else "step"

    def status(self, deployment: Deployment) -> dict[str, Any]:
        return {"step": deployment.step, "steps": list(deployment.steps)}


class ABTest:
    name: ClassVar[str] = "ab"
    answers_clients: ClassVar[bool] = True
    checked: ClassVar[bool] = True

    def first_share(self, ramp: Sequence[float], weights: Sequence[float] | None) -> float:
        split = list(weights) if weights is not None else [50.0, 50.0]
        if len(split) != 2:
            raise InvalidInput(
                f"weights: expected two percentages (champion, challenger), got {len(split)}"
            )
        try:
            validate_weights({"champion": split[0], "challenger": split[1]})
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        return float(split[1])

    def checks_needed(self, ramp: Sequence[float]) -> int:
        return 1

    def after_pass(self, deployment: Deployment, verdict: str | None) -> Next:
        return "promote" if verdict == "challenger_better" else "stay"

    def status(self, deployment: Deployment) -> dict[str, Any]:
        return {"step": None, "steps": None}


class Shadow:
    name: ClassVar[str] = "shadow"
    answers_clients: ClassVar[bool] = False
    checked: ClassVar[bool] = False

    def first_share(self, ramp: Sequence[float], weights: Sequence[float] | None) -> float:
        return 0.0  # the challenger answers copies, never a client

    def checks_needed(self, ramp: Sequence[float]) -> int:
        return 0

    def after_pass(self, deployment: Deployment, verdict: str | None) -> Next:
        return "stay"  # promoted or rolled back by a person, on the shadow report

    def status(self, deployment: Deployment) -> dict[str, Any]:
        return {"step": None, "steps": None}


STRATEGIES: dict[str, RolloutStrategy] = {s.name: s for s in (Canary(), ABTest(), Shadow())}
"""Every strategy by name, in the order help texts list them."""


def strategy_named(name: str) -> RolloutStrategy:
    """The strategy called ``name``, or ``InvalidInput`` listing those there are."""
    found = STRATEGIES.get(name)
    if found is None:
        raise InvalidInput(f"strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}")
    return found
