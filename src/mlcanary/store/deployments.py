"""Deployments and events, persisted in the store so every replica sees one state.

A deployment is one model name's rollout: which versions are champion and challenger,
the strategy, the traffic split now, and where the rollout stands (canary step,
failures so far, the sequential test's state). Every change goes through
``DeploymentLog.save`` with the revision it read: two controllers (or a controller and a
user) that act at once cannot both win, so a step is never taken twice.

Events are the audit trail: append-only rows with time, actor, cause (the signal and its
numbers) and the state before and after.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import orjson
from sqlalchemy import select, update

from mlcanary.errors import Conflict
from mlcanary.store.database import Store
from mlcanary.store.schema import deployments, events, policy_firings

Status = Literal["running", "paused", "promoted", "rolled_back"]
ACTIVE: tuple[Status, ...] = ("running", "paused")
DEFAULT_STEPS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0)


@dataclass(frozen=True)
class Deployment:
    """One model's rollout; ``weights`` is the traffic split in percent now."""

    model: str
    strategy: str
    """A name in ``control.strategies.STRATEGIES``."""
    champion: int
    challenger: int
    weights: dict[str, float]
    status: Status = "running"
    steps: tuple[float, ...] = DEFAULT_STEPS
    step: int = 0
    """Index into ``steps`` of the current challenger weight (canary)."""
    interval_seconds: float = 60.0
    max_failures: int = 2
    failures: int = 0
    mirror_percent: float = 100.0
    """Shadow: share of requests copied to the challenger."""
    key_column: str | None = None
    """Input column whose value keeps a caller on one variant (else the request header)."""
    started: float = field(default_factory=time.time)
    last_check: float = field(default_factory=time.time)
    checks: int = 0
    epoch: int = 1
    """Bumped whenever the split or the versions change; servers tag their traffic counts
    with the epoch they route by, so a check counts only traffic routed as intended."""
    sequential: dict[str, Any] | None = None
    split_changes: tuple[float, ...] = ()
    """When the traffic split changed after the start (each canary step): the quality
    test compares the arms within each period between two changes."""
    revision: int = 0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def salt(self) -> str:
        """Assignment salt: a new rollout reshuffles who sees the challenger."""
        return f"{self.model}:{self.champion}:{self.challenger}:{self.started}"

    def versions(self) -> dict[str, int]:
        return {"champion": self.champion, "challenger": self.challenger}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["steps"] = list(self.steps)
        out["split_changes"] = list(self.split_changes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["steps"] = tuple(values.get("steps", DEFAULT_STEPS))
        values["split_changes"] = tuple(values.get("split_changes", ()))
        return cls(**values)

    def evolve(self, **changes: Any) -> Deployment:
        return replace(self, **changes)


@dataclass(frozen=True)
class Event:
    """One action, as it went into the audit trail."""

    model: str
    kind: str
    actor: str
    cause: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ts: float = field(default_factory=time.time)
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeploymentLog:
    """Deployments (one row per model) and their events, in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, model: str) -> Deployment | None:
        query = select(deployments.c.state, deployments.c.revision).where(
            deployments.c.model == model
        )
        with self.store._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Deployment.from_dict({**orjson.loads(row[0]), "revision": int(row[1])})

    def latest(self) -> list[Deployment]:
        """Each model's last deployment, whether running or ended."""
        with self.store._read() as conn:
            rows = conn.execute(select(deployments.c.state, deployments.c.revision)).all()
        return [Deployment.from_dict({**orjson.loads(s), "revision": int(r)}) for s, r in rows]

    def active(self) -> list[Deployment]:
        return [d for d in self.latest() if d.active]

    def claim(self, model: str, policy: str, signal: int, now: float, cooldown: float) -> bool:
        """The right to act on ``policy`` for the signals up to id ``signal``: True for one
        caller only, and only when the policy last acted ``cooldown`` seconds ago or more,
        on older signals. Watchers sharing the store (and a restarted one) agree on it."""
        with self.store._write() as conn:
            conn.execute(
                self.store._insert(policy_firings)
                .values(model=model, policy=policy, fired=-1e18, signal=-1)
                .on_conflict_do_nothing()
            )
            taken = conn.execute(
                update(policy_firings)
                .where(
                    policy_firings.c.model == model,
                    policy_firings.c.policy == policy,
                    policy_firings.c.fired <= now - cooldown,
                    policy_firings.c.signal < signal,
                )
                .values(fired=now, signal=signal)
            )
            return bool(taken.rowcount == 1)

    def last_firing(self, model: str, policy: str) -> float | None:
        """When ``policy`` last acted on ``model`` (epoch seconds), or None."""
        query = select(policy_firings.c.fired).where(
            policy_firings.c.model == model, policy_firings.c.policy == policy,
            policy_firings.c.signal >= 0,
        )
        with self.store._read() as conn:
            fired = conn.execute(query).scalar()
        return None if fired is None else float(fired)

    def save(self, deployment: Deployment, event: Event) -> Deployment:
        """Write ``deployment`` if its row is still at ``deployment.revision``, with its event.

        Raises ``Conflict`` when another writer got there first (nothing is written).
        """
        saved = deployment.evolve(revision=deployment.revision + 1)
        state = orjson.dumps({k: v for k, v in saved.as_dict().items() if k != "revision"})
        now = time.time()
        with self.store._write() as conn:
            if deployment.revision == 0 and self._exists(conn, deployment.model):
                current = self.get_in(conn, deployment.model)
                if current is not None and current.active:
                    raise Conflict(
                        f"model '{deployment.model}': a {current.strategy} rollout of version "
                        f"{current.challenger} is {current.status}; promote or roll it back first"
                    )
                conn.execute(deployments.delete().where(deployments.c.model == deployment.model))
            if deployment.revision == 0:
                conn.execute(
                    deployments.insert().values(
                        model=deployment.model, revision=1, updated=now, state=state.decode()
                    )
                )
            else:
                changed = conn.execute(
                    update(deployments)
                    .where(deployments.c.model == deployment.model)
                    .where(deployments.c.revision == deployment.revision)
                    .values(revision=saved.revision, updated=now, state=state.decode())
                    .returning(deployments.c.revision)
                ).first()
                if changed is None:
                    raise Conflict(
                        f"model '{deployment.model}': the deployment changed meanwhile; "
                        "read it again and retry"
                    )
            conn.execute(events.insert().values(**_event_row(event)))
        return saved

    def record(self, event: Event) -> None:
        """An event without a state change (an alert, a failed retrain)."""
        with self.store._write() as conn:
            conn.execute(events.insert().values(**_event_row(event)))

    def events(self, model: str, *, last: int = 50) -> list[Event]:
        query = (
            select(events).where(events.c.model == model).order_by(events.c.id.desc()).limit(last)
        )
        with self.store._read() as conn:
            rows = list(conn.execute(query).mappings())
        return [_event(row) for row in reversed(rows)]

    def get_in(self, conn: Any, model: str) -> Deployment | None:
        row = conn.execute(
            select(deployments.c.state, deployments.c.revision).where(
                deployments.c.model == model
            )
        ).first()
        if row is None:
            return None
        return Deployment.from_dict({**orjson.loads(row[0]), "revision": int(row[1])})

    @staticmethod
    def _exists(conn: Any, model: str) -> bool:
        query = select(deployments.c.model).where(deployments.c.model == model)
        return conn.execute(query).first() is not None


def _event_row(event: Event) -> dict[str, Any]:
    dump = orjson.dumps
    return {
        "ts": event.ts,
        "model": event.model,
        "kind": event.kind,
        "actor": event.actor,
        "cause": dump(event.cause, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
        "before": dump(event.before).decode(),
        "after": dump(event.after).decode(),
    }


def _event(row: Any) -> Event:
    return Event(
        model=row["model"],
        kind=row["kind"],
        actor=row["actor"],
        cause=orjson.loads(row["cause"]),
        before=orjson.loads(row["before"]),
        after=orjson.loads(row["after"]),
        ts=float(row["ts"]),
        id=int(row["id"]),
    )
