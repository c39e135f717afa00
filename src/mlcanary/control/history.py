"""Which version was serving at time T, read from the audit trail.

Every rollout action stores the deployment's state after it, so the last such event at
or before T says how traffic was split then: a running or paused rollout splits it by
its weights, a promoted one sends everything to the version it promoted, a rolled-back
one to the champion it kept. Before the first rollout on record the champion was the
one the first rollout started from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlcanary.control.strategies import strategy_named
from mlcanary.store.deployments import Event


@dataclass(frozen=True)
class Serving:
    """Versions and their share of traffic (percent) at ``ts``, and the event it rests on."""

    ts: float
    versions: dict[int, float]
    event: Event | None
    shadow: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "versions": {str(v): share for v, share in self.versions.items()},
            "shadow": self.shadow,
            "event": None if self.event is None else {
                "id": self.event.id, "kind": self.event.kind, "actor": self.event.actor,
                "ts": self.event.ts,
            },
        }


def serving_at(events: list[Event], ts: float, champion_now: int | None) -> Serving | None:
    """The split at ``ts`` (events oldest first); None when nothing says (no champion yet)."""
    states = [e for e in events if e.after is not None and "champion" in e.after]
    before = [e for e in states if e.ts <= ts]
    if not before:
        if states:  # the first rollout started from the champion of the time
            return Serving(ts, {int(states[0].after["champion"]): 100.0}, None)  # type: ignore[index]
        return None if champion_now is None else Serving(ts, {champion_now: 100.0}, None)
    event = before[-1]
    state = event.after or {}
    champion, challenger = int(state["champion"]), int(state["challenger"])
    if state.get("status") == "promoted":
        return Serving(ts, {challenger: 100.0}, event)
    if state.get("status") == "rolled_back":
        return Serving(ts, {champion: 100.0}, event)
    if not strategy_named(str(state.get("strategy", "canary"))).answers_clients:
        return Serving(ts, {champion: 100.0}, event, shadow=challenger)
    weights = state.get("weights", {})
    split = {champion: float(weights.get("champion", 100.0)),
             challenger: float(weights.get("challenger", 0.0))}
    return Serving(ts, {v: share for v, share in split.items() if share > 0}, event)
