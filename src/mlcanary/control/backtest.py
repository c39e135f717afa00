"""Backtests: a labelled table replayed as traffic through the monitor and the controller.

What would the drift monitor and a rollout have done on this history? Each replay writes
the table's rows, in order, as answered requests with their labels into a store of its
own, on a simulated clock (one request a second), and runs the same ``Monitor.tick`` and
``Controller.tick`` the server runs, at each window and each rollout interval. Nothing
sleeps and nothing goes over HTTP; nothing in the registry moves (a promotion or
rollback is recorded in memory, ``DryRunRegistry``).

A replay starts at an offset into the table; ``repeats`` replays start at offsets spread
evenly over the rows a replay may skip, so each sees another stretch of history.
``shuffle`` replays the rows in a random order instead (an honest null: whatever drift
or trend the table holds is spread evenly over the replay).

The table is scored once per version before any replay (``Scored``), by the caller: the
same answers the server would give, since the controller judges the labels answered.
Backtests have no latency and no server errors: the fast gate sees 1 ms answers from both
arms, so what it shows is what the statistics decide.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mlcanary.config import Settings
from mlcanary.control.assignment import assign
from mlcanary.control.controller import Controller
from mlcanary.control.sequential import SequentialState
from mlcanary.control.strategies import strategy_named
from mlcanary.monitor.decision import DriftSettings
from mlcanary.monitor.watch import Monitor, VersionFacts, WindowPlan
from mlcanary.registry.versions import ModelRegistry
from mlcanary.store.database import Store
from mlcanary.store.deployments import Deployment, DeploymentLog, Event
from mlcanary.store.records import PredictionRecord
from mlcanary.store.traffic import Counts, TrafficLog

Rollout = Literal["canary", "ab"]
START = 1_700_000_000.0
"""The simulated clock's first second (any fixed time: results do not depend on it)."""


@dataclass(frozen=True)
class Scored:
    """One version's answers for every row of the table, in table order."""

    version: int
    predicted: np.ndarray
    proba: np.ndarray | None
    classes: Sequence[Any] | None
    """Column order of ``proba``: the version's classes; None for regression."""


@dataclass(frozen=True)
class BacktestPlan:
    """How to replay: windows, the rollout (if any), repeats."""

    window_rows: int = 1000
    rollout: Rollout | None = None
    steps: tuple[float, ...] = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0)
    weights: tuple[float, float] = (50.0, 50.0)
    interval_rows: int = 1000
    """Requests per rollout interval (the controller checks after each)."""
    max_failures: int = 2
    repeats: int = 10
    shuffle: bool = False
    stratify: bool = True
    """False: the quality test pools each arm since the start (the rule before strata)."""
    seed: int = 0

    def rows_needed(self) -> int:
        """Rows one replay needs at least: a window, and every check the rollout takes
        before it can be promoted (a canary's whole ramp)."""
        if self.rollout is None:
            return self.window_rows
        checks = strategy_named(self.rollout).checks_needed(self.steps)
        return max(self.window_rows, checks * self.interval_rows)


@dataclass
class DriftTally:
    windows: int = 0
    dataset_drift: int = 0
    prediction_drift: int = 0
    columns: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, "dataset_drift": self.dataset_drift,
                "prediction_drift": self.prediction_drift, "columns": dict(self.columns)}


@dataclass(frozen=True)
class RolloutOutcome:
    """How one replayed rollout ended."""

    offset: int
    outcome: Literal["promoted", "rolled_back", "paused", "undecided"]
    step: float
    """The challenger's share (percent) when it ended."""
    verdict: str
    checks: int
    rows: int
    """Requests replayed until it ended."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class BacktestResult:
    drift: DriftTally
    rollouts: list[RolloutOutcome]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"drift": self.drift.as_dict()}
        if self.rollouts:
            ended = [r.outcome for r in self.rollouts]
            out["rollout"] = {
                "repeats": len(self.rollouts),
                "rolled_back": ended.count("rolled_back"),
                "promoted": ended.count("promoted"),
                "paused": ended.count("paused"),
                "undecided": ended.count("undecided"),
                "challenger_better": sum(r.verdict == "challenger_better" for r in self.rollouts),
                "challenger_worse": sum(r.verdict == "challenger_worse" for r in self.rollouts),
                "steps": [r.as_dict() for r in self.rollouts],
            }
        return out


class DryRunRegistry(ModelRegistry):
    """The registry read as it is; alias moves recorded here, never written."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.moves: list[tuple[str, str, int | None]] = []

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self.moves.append((name, alias, version))

    def remove_alias(self, name: str, alias: str) -> None:
        self.moves.append((name, alias, None))


def offsets(rows: int, plan: BacktestPlan) -> list[int]:
    """Start offsets of the replays, spread evenly over the rows a replay may skip."""
    room = max(rows - plan.rows_needed(), 0)
    return [int(x) for x in np.linspace(0, room, plan.repeats).round()]


def backtest(
    name: str,
    columns: Mapping[str, np.ndarray],
    labels: np.ndarray,
    champion: Scored,
    challenger: Scored | None,
    facts: Mapping[int, VersionFacts],
    registry: ModelRegistry,
    plan: BacktestPlan,
    on_replay: Callable[[], None] | None = None,
) -> BacktestResult:
    """Replay the table ``plan.repeats`` times through the monitor, and with a rollout
    also through the controller; ``challenger`` None with a rollout: the champion on
    both arms (an A/A test)."""
    n = len(labels)
    if n < plan.rows_needed():
        raise ValueError(f"table: {n} rows, fewer than one replay needs ({plan.rows_needed()})")
    tally = DriftTally()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="mlcanary-backtest-") as tmp:
        for k, offset in enumerate(offsets(n, plan)):
            order = _order(n, plan, k)[offset:]
            with Store(f"sqlite:///{Path(tmp) / f'drift-{k}.db'}") as store:
                _drift_replay(store, name, columns, labels, champion, facts, registry,
                              plan, order, k, tally)
            if plan.rollout is not None:
                with Store(f"sqlite:///{Path(tmp) / f'rollout-{k}.db'}") as store:
                    outcomes.append(_rollout_replay(
                        store, name, columns, labels, champion, challenger or champion,
                        facts, registry, plan, order, k, offset))
            if on_replay is not None:
                on_replay()
    return BacktestResult(tally, outcomes)


def _order(n: int, plan: BacktestPlan, k: int) -> np.ndarray:
    if plan.shuffle:
        return np.random.default_rng([plan.seed, k]).permutation(n)
    return np.arange(n)


def _monitor(store: Store, name: str, facts: Mapping[int, VersionFacts],
             registry: ModelRegistry, plan: BacktestPlan) -> Monitor:
    return Monitor(
        store, registry, [name],
        plan=WindowPlan(rows=plan.window_rows, seconds=None, settle_seconds=0.0,
                        max_windows=None),
        drift=DriftSettings(),
        seed=plan.seed,
        facts=lambda _, version: facts.get(version),
    )


def _records(
    name: str, columns: Mapping[str, np.ndarray], rows: np.ndarray, scored: list[Scored],
    variants: list[str], ts: np.ndarray, replay: int,
) -> list[PredictionRecord]:
    out = []
    for i, row in enumerate(rows):
        answer = scored[i]
        out.append(PredictionRecord(
            id=f"r{replay}-{row}",
            ts=float(ts[i]),
            model=name,
            version=answer.version,
            inputs={c: values[row:row + 1] for c, values in columns.items()},
            predicted=answer.predicted[row:row + 1],
            proba=None if answer.proba is None else answer.proba[row:row + 1],
            classes=answer.classes,
            latency_ms=1.0,
            variant=variants[i],
        ))
    return out


def _drift_replay(
    store: Store, name: str, columns: Mapping[str, np.ndarray], labels: np.ndarray,
    champion: Scored, facts: Mapping[int, VersionFacts], registry: ModelRegistry,
    plan: BacktestPlan, order: np.ndarray, replay: int, tally: DriftTally,
) -> None:
    monitor = _monitor(store, name, facts, registry, plan)
    for start in range(0, len(order) - plan.window_rows + 1, plan.window_rows):
        rows = order[start:start + plan.window_rows]
        ts = START + start + np.arange(len(rows), dtype=float)
        store.write_predictions(_records(name, columns, rows, [champion] * len(rows),
                                         ["champion"] * len(rows), ts, replay))
        for signal in monitor.tick(now=START + start + len(rows)):
            if signal.kind != "drift":
                continue
            tally.windows += 1
            tally.dataset_drift += bool(signal.flagged)
            tally.prediction_drift += bool(signal.payload.get("prediction_drift"))
            for column in signal.payload.get("drifted_columns", []):
                tally.columns[column] = tally.columns.get(column, 0) + 1


def _rollout_replay(
    store: Store, name: str, columns: Mapping[str, np.ndarray], labels: np.ndarray,
    champion: Scored, challenger: Scored, facts: Mapping[int, VersionFacts],
    registry: ModelRegistry, plan: BacktestPlan, order: np.ndarray, replay: int, offset: int,
) -> RolloutOutcome:
    log = DeploymentLog(store)
    share = strategy_named(plan.rollout or "canary").first_share(plan.steps, plan.weights)
    deployment = Deployment(
        model=name, strategy=plan.rollout or "canary", champion=champion.version,
        challenger=challenger.version,
        weights={"champion": 100.0 - share, "challenger": share},
        steps=plan.steps, interval_seconds=float(plan.interval_rows),
        max_failures=plan.max_failures, started=START, last_check=START,
    )
    log.save(deployment, Event(name, "deploy", "backtest", {"reason": "backtest"}, None,
                               deployment.as_dict()))
    monitor = _monitor(store, name, facts, registry, plan)
    controller = Controller(store, DryRunRegistry(registry.settings), settle_seconds=0.0,
                            stratify=plan.stratify)
    arms = {"champion": champion, "challenger": challenger}
    replayed = 0
    current = deployment
    for start in range(0, len(order), plan.interval_rows):
        found = log.get(name)
        if found is None or found.status != "running":
            break
        current = found
        rows = order[start:start + plan.interval_rows]
        ts = START + start + np.arange(len(rows), dtype=float)
        ids = [f"r{replay}-{row}" for row in rows]
        variants = [assign(key, current.weights, current.salt) for key in ids]
        answers = [arms[v] for v in variants]
        store.write_predictions(_records(name, columns, rows, answers, variants, ts, replay))
        store.add_feedback(name, [(key, _plain(labels[row]))
                                  for key, row in zip(ids, rows, strict=True)])
        counts: dict[tuple[str, str, int, int], Counts] = {}
        for variant in variants:
            key = (name, variant, arms[variant].version, current.epoch)
            c = counts.setdefault(key, Counts())
            c.requests += 1
            c.latency[5] += 1  # ~0.2 ms: a backtest has no latency to compare
        TrafficLog(store).write(counts, ts=START + start + len(rows) / 2)
        replayed = start + len(rows)
        now = START + replayed
        monitor.tick(now=now)
        controller.tick(now=now)
    final = log.get(name) or current
    state = SequentialState.from_dict(final.sequential) if final.sequential else SequentialState()
    outcome: Literal["promoted", "rolled_back", "paused", "undecided"] = "undecided"
    if final.status == "promoted":
        outcome = "promoted"
    elif final.status == "rolled_back":
        outcome = "rolled_back"
    elif final.status == "paused":
        outcome = "paused"
    # An ended rollout's split is all champion: its share is the one it ended at.
    ended_at = current if final.status in ("promoted", "rolled_back") else final
    return RolloutOutcome(offset, outcome, float(ended_at.weights["challenger"]),
                          state.verdict, final.checks, replayed)


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value a JSON label would be."""
    return value.item() if isinstance(value, np.generic) else value
