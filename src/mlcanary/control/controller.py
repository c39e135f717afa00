"""The control loop: each running rollout's interval, its gates, and the action they call for.

Every tick, each running deployment whose interval has passed is checked on the
traffic of that interval (minus a settle time at both ends: servers pick up a new split
within one poll, and write their counts within one flush). Then:

* sample-ratio mismatch, tested on all the traffic of the current split -> the rollout is
  paused (assignment is broken; a person looks);
* the quality test says the challenger is worse -> rollback at once;
* a fast, divergence or drift gate fails (drift: more often on the challenger's traffic
  than on the champion's) -> one failure; ``max_failures`` of them in the rollout (a
  passed check does not wipe one out) -> rollback;
* every gate with data passes (the fast gate must have data, and the prediction log
  must hold the requests counted) -> canary: next step, or promotion after the last;
  A/B: promotion when the quality test says better;
* otherwise (not enough traffic yet, its predictions not yet written, or drift on the
  challenger's traffic before the champion has a window to compare it with) nothing
  happens and the interval grows.

The quality test reads every labelled row since the start (labels arrive late), grouped
into the periods between split changes, so that both arms are compared on the same
moments of the stream (``sequential.update_strata``).

Each decision is saved with the revision it read, so a restarted or second controller
never takes a step twice, and each leaves an event with the gates' numbers.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.control import actions
from mlcanary.control.gates import (
    MIN_REQUESTS,
    GateResult,
    divergence_gate,
    divergence_judged,
    drift_gate,
    fast_gate,
    srm_gate,
)
from mlcanary.control.sequential import (
    SequentialState,
    Stratum,
    Summary,
    default_outcome,
    outcomes,
    update_strata,
)
from mlcanary.control.strategies import strategy_named
from mlcanary.errors import Conflict
from mlcanary.monitor.watch import load_facts
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX, TARGET_COLUMN
from mlcanary.registry.versions import ModelRegistry
from mlcanary.signature import Signature
from mlcanary.store.database import Store
from mlcanary.store.deployments import Deployment, DeploymentLog, Event
from mlcanary.store.records import TS_COLUMN
from mlcanary.store.signals import SignalLog
from mlcanary.store.traffic import Counts, TrafficLog

log = logging.getLogger(__name__)

ACTOR = "policy:rollout"


@dataclass(frozen=True)
class Check:
    """One interval's gates and what was done about them."""

    model: str
    action: str
    gates: list[GateResult]

    def cause(self) -> dict[str, Any]:
        return {"gates": [g.as_dict() for g in self.gates]}


class Controller:
    """Runs the gates of every running rollout in a store and acts on them."""

    def __init__(
        self, store: Store, registry: ModelRegistry, *, settle_seconds: float,
        stratify: bool = True,
    ) -> None:
        """``stratify=False`` pools each arm's outcomes over the whole rollout, the rule
        before strata: biased by any trend during a ramp, kept so that ``mlcanary
        backtest`` can show the difference on a user's own data."""
        self.store = store
        self.stratify = stratify
        self.registry = registry
        self.deployments = DeploymentLog(store)
        self.traffic = TrafficLog(store)
        self.signals = SignalLog(store)
        self.settle = settle_seconds
        self._signatures: dict[tuple[str, int], Signature] = {}

    def tick(self, now: float | None = None) -> list[Check]:
        now = time.time() if now is None else now
        done = []
        for deployment in self.deployments.active():
            if deployment.status != "running" or not strategy_named(deployment.strategy).checked:
                continue
            if now - deployment.last_check < deployment.interval_seconds:
                continue
            try:
                check = self.check(deployment, now)
            except Conflict:
                continue  # another controller acted on it first
            except Exception:
                log.exception("rollout of %s: check failed", deployment.model)
                continue
            if check is not None:
                done.append(check)
        return done

    def check(self, d: Deployment, now: float) -> Check | None:
        since, until = d.last_check + self.settle, now - self.settle
        totals = self.traffic.totals(d.model, since, until, epoch=d.epoch)
        counts = {
            variant: totals.get((variant, version), Counts())
            for variant, version in d.versions().items()
        }
        # The split's test reads every request routed by it (its epoch) since the rollout
        # began: one interval's ~100 requests, tested anew each time, paused at random.
        routed = self.traffic.totals(d.model, d.started, until, epoch=d.epoch)
        gates = [srm_gate({variant: routed.get((variant, version), Counts())
                           for variant, version in d.versions().items()}, d.weights)]
        if gates[0].passed is False:
            after = d.evolve(status="paused", last_check=now, checks=d.checks + 1)
            self.deployments.save(after, self._event(d, after, "pause", gates))
            return Check(d.model, "pause", gates)
        signature = self._signature(d.model, d.champion)
        frames = {
            variant: self.store.read_window(
                d.model, variant=variant, version=version, since=since, until=until,
                inputs=False,
            )
            for variant, version in d.versions().items()
        }
        champion_share = d.weights.get("champion", 0.0)
        # Concurrent traffic only: at 100% the champion has none, and the challenger's
        # errors meet the absolute limit alone (its latency was compared at earlier steps).
        gates.append(fast_gate(counts["champion"], counts["challenger"],
                               champion_share=champion_share))
        # The rollout's windows from periods both versions served: at 100% the champion
        # has none to show whether the world moved, so the challenger's count stops there.
        both_until = (d.split_changes[-1] if champion_share == 0 and d.split_changes
                      else math.inf)
        rollout = [s for s in self.signals.latest(d.model, kind="drift", last=200)
                   if d.started <= s.end_ts <= both_until]
        drift = drift_gate(
            [s for s in rollout if s.variant == "challenger" and s.version == d.challenger],
            [s for s in rollout if s.variant == "champion" and s.version == d.champion],
        )
        quality, state, labelled = self._quality(d, signature)
        divergence = divergence_judged(
            divergence_gate(frames["champion"], frames["challenger"], signature),
            quality, labelled)
        gates.extend([divergence, drift, quality])
        d = d.evolve(sequential=state.to_dict())
        verdict = state.verdict
        failed = [g for g in gates if g.passed is False]

        if verdict == "challenger_worse":
            return self._rollback(d, gates, now)
        if failed:
            failures = d.failures + 1
            if failures >= d.max_failures:
                return self._rollback(d.evolve(failures=failures), gates, now)
            after = d.evolve(failures=failures, last_check=now, checks=d.checks + 1)
            self.deployments.save(after, self._event(d, after, "check_failed", gates))
            return Check(d.model, "check_failed", gates)
        fast = next(g for g in gates if g.gate == "fast")
        # A flagged window the gate cannot judge yet waits for more windows, while they can
        # still come: at 100% the periods both served are over, and nothing more will.
        unanswered = (drift.passed is None and drift.numbers.get("flagged", 0) > 0
                      and champion_share > 0)
        # A divergence waits for the labels that will judge it (divergence_judged).
        judging = divergence.numbers.get("awaiting_labels", False)
        if fast.passed is None or unanswered or judging or _log_behind(counts, frames):
            return None  # not enough evidence yet: wait, the interval grows
        next_move = strategy_named(d.strategy).after_pass(d, verdict)
        if next_move == "promote":
            return self._promote(d, gates)
        if next_move == "stay":
            after = d.evolve(last_check=now, checks=d.checks + 1)
            self.deployments.save(after, self._event(d, after, "check_passed", gates))
            return Check(d.model, "check_passed", gates)
        actions.step(self.deployments, d, Check(d.model, "step", gates).cause(), now=now)
        return Check(d.model, "step", gates)

    # -- actions -------------------------------------------------------------------------------

    def _rollback(self, d: Deployment, gates: list[GateResult], now: float) -> Check:
        cause = Check(d.model, "rollback", gates).cause()
        # The state with this check's numbers is what the rollback starts from.
        actions.rollback(self.registry, _Pinned(self.deployments, d), d.model, actor=ACTOR,
                         cause=cause)
        log.warning("rollout of %s rolled back: %s", d.model,
                    "; ".join(g.reason for g in gates if g.passed is False))
        return Check(d.model, "rollback", gates)

    def _promote(self, d: Deployment, gates: list[GateResult]) -> Check:
        cause = Check(d.model, "promote", gates).cause()
        actions.promote(self.registry, _Pinned(self.deployments, d), d.model, actor=ACTOR,
                        cause=cause)
        log.info("rollout of %s promoted version %s", d.model, d.challenger)
        return Check(d.model, "promote", gates)

    def _event(self, before: Deployment, after: Deployment, kind: str,
               gates: list[GateResult]) -> Event:
        return actions._event(before, after, kind, ACTOR, Check(before.model, kind, gates).cause())

    # -- quality ---------------------------------------------------------------------------------

    def _quality(
        self, d: Deployment, signature: Signature
    ) -> tuple[GateResult, SequentialState, dict[str, int]]:
        """The quality gate, the test's new state, and each variant's labelled rows since
        the rollout began."""
        state = SequentialState.from_dict(d.sequential) if d.sequential else SequentialState()
        labelled = {}
        for variant, version in d.versions().items():
            frame = self.store.read_window(d.model, variant=variant, version=version,
                                           since=d.started, inputs=False, labelled=True)
            labelled[variant] = frame[frame[TARGET_COLUMN].notna()] if not frame.empty else frame
        state, decision = update_strata(state, self._strata(d, labelled, signature))
        numbers = decision.as_dict()
        rows = {variant: len(frame) for variant, frame in labelled.items()}
        if decision.verdict == "challenger_worse":
            gate = GateResult("quality", False, "challenger worse than champion", numbers)
        elif state.looks == 0:
            gate = GateResult("quality", None, decision.note or "no labels yet", numbers)
        else:
            gate = GateResult("quality", True, decision.verdict, numbers)
        return gate, state, rows

    def _strata(
        self, d: Deployment, labelled: dict[str, pd.DataFrame], signature: Signature
    ) -> list[Stratum]:
        """Per period of one traffic split, each arm's outcome summary.

        A row answered within the settle time after a change may have been routed by the
        split before it (servers follow within a poll): it is left out.
        """
        changes = np.asarray(d.split_changes if self.stratify else (), dtype=float)
        arms = {}
        for variant, frame in labelled.items():
            values = np.asarray(self._outcomes(frame, signature), dtype=float)
            ts = frame[TS_COLUMN].to_numpy(dtype=float) if len(frame) else np.empty(0)
            period = np.searchsorted(changes, ts, side="right")
            keep = np.ones(len(ts), dtype=bool)
            if changes.size:
                began = changes[np.maximum(period - 1, 0)]
                keep = (period == 0) | (ts >= began + self.settle)
            arms[variant] = (values[keep], period[keep])
        (a, a_period), (b, b_period) = arms["champion"], arms["challenger"]
        return [
            (Summary.of(a[a_period == k]), Summary.of(b[b_period == k]))
            for k in range(changes.size + 1)
        ]

    def _outcomes(self, frame: pd.DataFrame, signature: Signature) -> Any:
        if frame.empty:
            return []
        kind = default_outcome(signature.task)
        classes = signature.classes
        y_true = frame[TARGET_COLUMN].to_numpy()
        predicted = frame[PREDICTION_COLUMN].to_numpy()
        if classes is not None:
            lookup = {str(c): c for c in classes}
            truth = [lookup.get(str(v), v) for v in y_true]
            answered = [lookup.get(str(v), v) for v in predicted]
            scores = frame[[f"{SCORE_PREFIX}{c}" for c in classes]].to_numpy(dtype=float)
            return outcomes(kind, truth, predicted=answered, scores=scores, classes=classes)
        return outcomes(kind, y_true.astype(float), predicted=predicted.astype(float))

    def _signature(self, model: str, version: int) -> Signature:
        key = (model, version)
        if key not in self._signatures:
            self._signatures[key] = load_facts(self.registry, model, version).signature
        return self._signatures[key]


def _log_behind(counts: dict[str, Counts], frames: dict[str, pd.DataFrame]) -> bool:
    """Whether a variant counted enough requests but the prediction log holds too few rows.

    Requests are counted on the request path and their predictions written off it, so
    under load the log trails the counts. Stepping then would promote on the fast gate
    alone, with nothing to say whether the challenger's scores agree with the champion's.
    """
    return any(
        counts[variant].requests - counts[variant].errors >= MIN_REQUESTS
        and len(frames[variant]) < MIN_REQUESTS
        for variant in frames
    )


class _Pinned(DeploymentLog):
    """A DeploymentLog whose ``get`` returns a given (already updated) deployment."""

    def __init__(self, log: DeploymentLog, deployment: Deployment) -> None:
        super().__init__(log.store)
        self._deployment = deployment

    def get(self, model: str) -> Deployment | None:
        return self._deployment


