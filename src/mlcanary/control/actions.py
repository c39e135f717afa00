"""Actions on a rollout: deploy, step, promote, roll back, pause, resume.

Each checks its input before touching anything, moves the MLflow aliases and the
deployment's traffic together, and leaves an event with its actor, cause and the state
before and after. Servers follow through their alias watcher and deployment poll.
Order matters for "no request fails": a promotion points ``champion`` at the challenger
(already loaded and serving part of the traffic) before the challenger alias goes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mlcanary.control.strategies import strategy_named
from mlcanary.errors import Conflict, InvalidInput, NotFound
from mlcanary.registry.versions import ModelRegistry
from mlcanary.store.deployments import (
    Deployment,
    DeploymentLog,
    Event,
)


def deploy(
    registry: ModelRegistry,
    log: DeploymentLog,
    model: str,
    *,
    challenger: int,
    strategy: str = "canary",
    steps: Sequence[float] | None = None,
    interval_seconds: float = 60.0,
    max_failures: int = 2,
    weights: Sequence[float] | None = None,
    mirror_percent: float = 100.0,
    key_column: str | None = None,
    actor: str = "user",
) -> Deployment:
    """Start a rollout of version ``challenger`` against the current champion."""
    kind = strategy_named(strategy)
    _await_aliases(registry, log.get(model))
    champion = registry.alias_version(model, "champion")
    if champion is None:
        raise NotFound(f"model '{model}': no champion to compare a challenger with")
    known = [v.version for v in registry.versions(model)]
    if challenger not in known:
        raise InvalidInput(
            f"challenger: version {challenger} of '{model}' does not exist; "
            f"versions: {', '.join(map(str, known))}"
        )
    if challenger == champion:
        raise InvalidInput(f"challenger: version {challenger} is already the champion")
    if interval_seconds <= 0:
        raise InvalidInput(f"interval: expected a positive duration, got {interval_seconds}")
    if max_failures < 1:
        raise InvalidInput(f"max_failures: expected at least 1, got {max_failures}")
    if not 0 < mirror_percent <= 100:
        raise InvalidInput(f"mirror_percent: expected 0 < percent <= 100, got {mirror_percent}")
    ramp = validate_steps(steps)
    share = kind.first_share(ramp, weights)
    deployment = Deployment(
        model=model,
        strategy=strategy,
        champion=champion,
        challenger=challenger,
        weights={"champion": 100.0 - share, "challenger": share},
        steps=ramp,
        interval_seconds=interval_seconds,
        max_failures=max_failures,
        mirror_percent=mirror_percent,
        key_column=key_column,
    )
    saved = log.save(
        deployment,
        Event(model, "deploy", actor, {"reason": "requested"}, None, deployment.as_dict()),
    )
    registry.set_alias(model, "challenger", challenger)
    return saved


def step(
    log: DeploymentLog, deployment: Deployment, cause: dict[str, Any], now: float | None = None
) -> Deployment:
    """Canary: move the challenger to the next weight (the controller promotes after 100%).

    Failed checks are kept: ``max_failures`` counts over the whole rollout, so a challenger
    that is bad but sometimes passes (a noisy latency gate) cannot reset its count by it.
    """
    index = deployment.step + 1
    share = deployment.steps[index]
    now = time.time() if now is None else now
    after = deployment.evolve(
        step=index,
        weights={"champion": 100.0 - share, "challenger": share},
        last_check=now,
        checks=deployment.checks + 1,
        epoch=deployment.epoch + 1,
        split_changes=(*deployment.split_changes, now),
    )
    return log.save(after, _event(deployment, after, "step", "policy:canary", cause))


def promote(
    registry: ModelRegistry,
    log: DeploymentLog,
    model: str,
    *,
    actor: str = "user",
    cause: dict[str, Any] | None = None,
) -> Deployment:
    """The challenger becomes champion; all traffic goes to it."""
    return _finish(registry, log, model, "promote", actor, cause)


def rollback(
    registry: ModelRegistry,
    log: DeploymentLog,
    model: str,
    *,
    actor: str = "user",
    cause: dict[str, Any] | None = None,
) -> Deployment:
    """All traffic back to the champion; the challenger alias goes."""
    return _finish(registry, log, model, "rollback", actor, cause)


def _finish(
    registry: ModelRegistry,
    log: DeploymentLog,
    model: str,
    kind: str,
    actor: str,
    cause: dict[str, Any] | None,
) -> Deployment:
    """End the rollout: save the state and its event, then move the aliases.

    A promotion points ``champion`` at the challenger before the ``challenger`` alias
    goes, so servers reuse the challenger they already run.
    """
    deployment = _active(log, model)
    after = deployment.evolve(
        status="promoted" if kind == "promote" else "rolled_back",
        weights={"champion": 100.0, "challenger": 0.0},
        last_check=time.time(),
        epoch=deployment.epoch + 1,
    )
    saved = log.save(after, _event(deployment, after, kind, actor, cause))
    if kind == "promote":
        registry.set_alias(model, "champion", deployment.challenger)
    registry.remove_alias(model, "challenger")
    return saved


def pause(log: DeploymentLog, model: str, *, actor: str = "user") -> Deployment:
    """Hold the current split; no gate runs until resumed."""
    deployment = _active(log, model)
    if deployment.status == "paused":
        raise Conflict(f"model '{model}': the rollout is already paused")
    after = deployment.evolve(status="paused")
    return log.save(after, _event(deployment, after, "pause", actor, None))


def resume(log: DeploymentLog, model: str, *, actor: str = "user") -> Deployment:
    deployment = _active(log, model)
    if deployment.status != "paused":
        raise Conflict(f"model '{model}': the rollout is not paused")
    # A new epoch: the split's sample-ratio test starts again from the traffic after the
    # resume, not from the counts that paused it (the cause a person has looked into).
    after = deployment.evolve(status="running", last_check=time.time(),
                              epoch=deployment.epoch + 1)
    return log.save(after, _event(deployment, after, "resume", actor, None))


ALIAS_WAIT_SECONDS = 10.0
"""How long ``deploy`` waits for the aliases of a rollout that has just ended to move."""


def _await_aliases(registry: ModelRegistry, last: Deployment | None) -> None:
    """Wait until the aliases of a rollout that ended moments ago have moved.

    An ending is saved before its aliases move (``_finish``). A rollout started in between
    would read the old champion (and compare the challenger with a version no server
    serves any more), and its challenger alias would be removed by the ending that is
    still moving it. Only a recent ending is waited for: an alias a person moved long
    after a promotion is theirs to move.
    """
    if last is None or last.active or time.time() - last.last_check > 6 * ALIAS_WAIT_SECONDS:
        return
    deadline = time.monotonic() + ALIAS_WAIT_SECONDS
    while True:
        champion = registry.alias_version(last.model, "champion")
        challenger = registry.alias_version(last.model, "challenger")
        moved = last.status != "promoted" or champion == last.challenger
        if moved and challenger != last.challenger:
            return
        if time.monotonic() > deadline:
            raise Conflict(
                f"model '{last.model}': the {last.status.replace('_', ' ')} rollout of "
                f"version {last.challenger} has not finished moving its aliases; try again"
            )
        time.sleep(0.1)


def _active(log: DeploymentLog, model: str) -> Deployment:
    deployment = log.get(model)
    if deployment is None or not deployment.active:
        raise Conflict(f"model '{model}': no rollout in progress")
    return deployment


def _event(
    before: Deployment, after: Deployment, kind: str, actor: str, cause: dict[str, Any] | None
) -> Event:
    return Event(
        before.model, kind, actor, cause or {"reason": "requested"},
        _brief(before), _brief(after),
    )


def _brief(deployment: Deployment) -> dict[str, Any]:
    """The part of the state an event needs to say what changed."""
    return {
        "status": deployment.status,
        "strategy": deployment.strategy,
        "champion": deployment.champion,
        "challenger": deployment.challenger,
        "weights": deployment.weights,
        "step": deployment.step,
        "failures": deployment.failures,
        "max_failures": deployment.max_failures,
    }


def validate_steps(steps: Sequence[float] | None) -> tuple[float, ...]:
    """Canary weights: increasing percentages ending at 100 (the default ramp for None)."""
    from mlcanary.store.deployments import DEFAULT_STEPS

    ramp = tuple(float(s) for s in (steps if steps is not None else DEFAULT_STEPS))
    if not ramp or any(not 0 < s <= 100 for s in ramp) or list(ramp) != sorted(set(ramp)):
        raise InvalidInput(
            f"steps: expected increasing percentages in (0, 100], got {list(ramp)}"
        )
    if ramp[-1] != 100:
        raise InvalidInput(f"steps: expected the last step to be 100, got {ramp[-1]:g}")
    return ramp
