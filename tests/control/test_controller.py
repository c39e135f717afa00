"""The controller's decisions from real traffic records in a real store and registry."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mlcanary.config import Settings
from mlcanary.control import actions
from mlcanary.control.controller import Check, Controller
from mlcanary.demo import make_churn
from mlcanary.errors import Conflict
from mlcanary.models.runtime import NativeRuntime
from mlcanary.monitor.traffic import TrafficCounter
from mlcanary.registry.versions import ModelRegistry
from mlcanary.serve.validation import columns_from_frame
from mlcanary.store.database import Store
from mlcanary.store.deployments import Deployment, DeploymentLog, Event
from mlcanary.store.records import PredictionRecord
from mlcanary.store.signals import Signal, SignalLog
from mlcanary.store.traffic import Counts, TrafficLog
from tests.serve.conftest import registered_churn

SETTLE = 1.0


@dataclass
class Rig:
    registry: ModelRegistry
    store: Store
    log: DeploymentLog
    controller: Controller
    runtime: NativeRuntime

    def deploy(self, **kwargs: object) -> Deployment:
        options = {"challenger": 2, "strategy": "canary", "interval_seconds": 10.0}
        return actions.deploy(self.registry, self.log, "churn", **{**options, **kwargs})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_churn(tmp_path_factory.mktemp("control"), 1500, seed=7, versions=2)


@pytest.fixture
def rig(template: Path, tmp_path: Path) -> Iterator[Rig]:
    home = tmp_path / "home"
    shutil.copytree(template, home)
    registry = ModelRegistry(Settings(home=home))
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        signature = Controller(store, registry, settle_seconds=SETTLE)._signature("churn", 1)
        runtime = NativeRuntime(registry.load("churn", 1), signature)
        yield Rig(registry, store, DeploymentLog(store), Controller(store, registry,
                  settle_seconds=SETTLE), runtime)


def traffic(rig: Rig, d: Deployment, start: float, seconds: float, *, rows: int = 400,
            errors: float = 0.0, slow: float = 1.0, invert: bool = False,
            split: dict[str, float] | None = None, seed: int = 0,
            logged: bool = True) -> list[tuple[str, str, int]]:
    """Requests over ``[start, start + seconds)`` split as ``split`` (default: the weights);
    ``logged=False`` counts them but leaves their predictions unwritten (a lagging log)."""
    rng = np.random.default_rng([seed, 99])  # not make_churn's stream: no correlation
    weights = split or d.weights
    frame = make_churn(rows, seed=seed)
    counter, records, served = TrafficCounter(), [], []
    names = list(weights)
    chosen = rng.choice(names, size=rows, p=[weights[n] / 100 for n in names])
    signature = rig.runtime.signature
    table = columns_from_frame(frame.drop(columns="churned"), signature)
    every = rig.runtime.predict(table)  # one batch: equal to row by row (the runtime contract)
    assert every.proba is not None
    for i, variant in enumerate(chosen):
        version = d.versions()[variant]
        ts = start + seconds * i / rows
        failed = variant == "challenger" and rng.random() < errors
        latency = 0.004 * (slow if variant == "challenger" else 1.0)
        counter.record("churn", variant, version, latency, failed, d.epoch)
        if failed:
            continue
        columns = {name: values[i:i + 1] for name, values in table.items()}
        proba = every.proba[i:i + 1]
        if invert and variant == "challenger":
            proba = proba[:, ::-1]
        predicted = np.asarray(signature.classes)[proba.argmax(axis=1)]
        request_id = uuid.uuid4().hex
        records.append(PredictionRecord(request_id, ts, "churn", version, columns, predicted,
                                        proba, signature.classes, latency * 1000, variant))
        served.append((request_id, variant, int(frame["churned"].iloc[i])))
    if logged:
        rig.store.write_predictions(records)
    TrafficLog(rig.store).write(counter.drain(), ts=start + seconds / 2)
    return served


def intervals(rig: Rig, d: Deployment, faults: list[dict[str, object]], seed: int
              ) -> list[Check]:
    """One interval of traffic per entry of ``faults`` (the challenger's, as ``traffic``
    takes them), each followed by the controller's check."""
    now, checks = d.last_check, []
    for k, fault in enumerate(faults):
        current = rig.log.get("churn")
        assert current is not None
        traffic(rig, current, now + 2, 6, seed=seed + k, **fault)  # type: ignore[arg-type]
        now += 10
        (check,) = rig.controller.tick(now=now)
        checks.append(check)
    return checks


def test_a_good_canary_steps_through_every_weight_and_is_promoted(rig: Rig) -> None:
    d = rig.deploy(steps=[10, 50, 100])
    checks = intervals(rig, d, [{}, {}, {}], seed=0)
    assert [check.action for check in checks] == ["step", "step", "promote"]
    assert rig.registry.alias_version("churn", "champion") == 2
    assert rig.registry.alias_version("churn", "challenger") is None
    kinds = [e.kind for e in rig.log.events("churn")]
    assert kinds == ["deploy", "step", "step", "promote"]


@pytest.mark.parametrize(
    ("broken", "gate", "reason"),
    [
        ({"errors": 0.2}, "fast", "error rate"),
        ({"slow": 5.0}, "fast", "latency"),
        ({"invert": True}, "divergence", "diverge"),
    ],
)
def test_a_broken_challenger_is_rolled_back_within_max_failures(
    rig: Rig, broken: dict[str, object], gate: str, reason: str
) -> None:
    d = rig.deploy(steps=[50, 100], max_failures=2)
    checks = intervals(rig, d, [broken, broken], seed=10)
    assert [check.action for check in checks] == ["check_failed", "rollback"]
    for check in checks:
        failed = {g.gate: g for g in check.gates if g.passed is False}
        assert gate in failed and reason in failed[gate].reason
    assert rig.registry.alias_version("churn", "champion") == 1
    assert rig.registry.alias_version("churn", "challenger") is None
    last = rig.log.events("churn")[-1]
    assert last.kind == "rollback" and last.actor == "policy:rollout"
    numbers = next(g for g in last.cause["gates"] if g["gate"] == gate)
    assert numbers["passed"] is False and reason in numbers["reason"]


def test_failed_checks_count_over_the_whole_rollout_not_since_the_last_pass(rig: Rig) -> None:
    """A slow challenger whose latency passes once by chance: the pass takes a step but
    keeps its failed check, so its next failure is the second and rolls it back."""
    d = rig.deploy(steps=[20, 50, 100], max_failures=2)
    checks = intervals(rig, d, [{"slow": 5.0}, {}, {"slow": 5.0}], seed=20)
    assert [check.action for check in checks] == ["check_failed", "step", "rollback"]
    (stepped,) = [e for e in rig.log.events("churn") if e.kind == "step"]
    assert stepped.after is not None and stepped.after["failures"] == 1
    assert rig.registry.alias_version("churn", "champion") == 1


def test_a_skewed_split_pauses_the_rollout_and_never_promotes(rig: Rig) -> None:
    d = rig.deploy(steps=[50, 100])
    traffic(rig, d, d.last_check + 2, 6, rows=600, split={"champion": 80, "challenger": 20})
    (check,) = rig.controller.tick(now=d.last_check + 10)
    assert check.action == "pause" and check.gates[0].gate == "srm"
    assert check.gates[0].numbers["p_value"] < 0.001
    current = rig.log.get("churn")
    assert current is not None and current.status == "paused" and current.step == 0
    assert rig.controller.tick(now=d.last_check + 100) == []  # paused: no gate runs
    assert rig.registry.alias_version("churn", "champion") == 1


def test_too_little_traffic_waits_and_a_second_controller_does_not_double_step(rig: Rig) -> None:
    d = rig.deploy(steps=[50, 100])
    traffic(rig, d, d.last_check + 2, 6, rows=10)
    assert rig.controller.tick(now=d.last_check + 10) == []  # 10 requests: no decision
    traffic(rig, d, d.last_check + 10, 6, rows=400, seed=3)
    other = Controller(rig.store, rig.registry, settle_seconds=SETTLE)
    first = rig.controller.tick(now=d.last_check + 20)
    second = other.tick(now=d.last_check + 20)
    assert [c.action for c in first] == ["step"] and second == []
    assert [e.kind for e in rig.log.events("churn")] == ["deploy", "step"]


def test_counted_requests_whose_predictions_are_not_logged_yet_hold_the_step(rig: Rig) -> None:
    d = rig.deploy(steps=[50, 100])
    traffic(rig, d, d.last_check + 2, 6, invert=True, logged=False)
    assert rig.controller.tick(now=d.last_check + 10) == []  # counts alone: no step
    assert [e.kind for e in rig.log.events("churn")] == ["deploy"]
    traffic(rig, d, d.last_check + 10, 6, invert=True, seed=4)
    (check,) = rig.controller.tick(now=d.last_check + 20)
    failed = {g.gate for g in check.gates if g.passed is False}
    assert check.action == "check_failed" and "divergence" in failed


def test_labels_that_show_a_worse_challenger_roll_it_back(rig: Rig) -> None:
    d = rig.deploy(strategy="ab", weights=[50, 50], interval_seconds=10.0)
    served = traffic(rig, d, d.last_check + 2, 6, rows=1200, invert=True, seed=5)
    ids = [(i, label) for i, _, label in served]
    rig.store.add_feedback("churn", ids)
    (check,) = rig.controller.tick(now=d.last_check + 10)
    assert check.action == "rollback"
    quality = next(g for g in check.gates if g.gate == "quality")
    assert quality.passed is False and quality.numbers["difference"] < 0




def test_diverging_scores_wait_for_the_labels_and_the_labels_judge_them(rig: Rig) -> None:
    """A challenger that scores traffic unlike the champion (here: its classes swapped)
    is not failed for that while labels come: the rollout waits for the challenger's, then
    they decide. Labels that favour it pass the divergence; labels against it fail it."""
    d = rig.deploy(steps=[50, 100], max_failures=2)
    served = traffic(rig, d, d.last_check + 2, 6, invert=True, seed=40)
    flipped = [(i, 1 - label, variant) for i, variant, label in served]  # the world moved
    rig.store.add_feedback("churn", [(i, y) for i, y, v in flipped if v == "champion"])
    assert rig.controller.tick(now=d.last_check + 10) == []  # champion labelled only: wait
    rig.store.add_feedback("churn", [(i, y) for i, y, v in flipped if v == "challenger"])
    (check,) = rig.controller.tick(now=d.last_check + 11)
    gates = {g.gate: g for g in check.gates}
    assert check.action == "step", check.gates
    assert gates["divergence"].passed is True and "quality judges" in gates["divergence"].reason
    assert gates["divergence"].numbers["psi"] >= 0.5
    assert gates["quality"].numbers["difference"] > 0


def test_diverging_scores_that_the_labels_score_worse_fail(rig: Rig) -> None:
    d = rig.deploy(steps=[50, 100], max_failures=3)
    served = traffic(rig, d, d.last_check + 2, 6, invert=True, seed=41)
    rig.store.add_feedback("churn", [(i, label) for i, _, label in served])
    (check,) = rig.controller.tick(now=d.last_check + 10)
    divergence = next(g for g in check.gates if g.gate == "divergence")
    assert check.action in {"check_failed", "rollback"}, check.gates
    assert divergence.passed is False and "score -" in divergence.reason


def test_latencies_in_a_servers_warm_up_are_counted_but_not_timed() -> None:
    """A restarted server's first burst is answered cold: its requests count, their
    latencies do not; later requests are timed; the gate waits until it has latencies."""
    from mlcanary.control.gates import fast_gate

    counter = TrafficCounter(warmup_seconds=3600.0)
    counter.record("churn", "champion", 1, 0.5, False)  # before begin: timed
    counter.begin()
    for _ in range(50):
        counter.record("churn", "champion", 1, 0.5, False)
        counter.record("churn", "challenger", 2, 0.5, False)
    counts = counter.drain()
    champion = counts[("churn", "champion", 1, 0)]
    challenger = counts[("churn", "challenger", 2, 0)]
    assert (champion.requests, sum(champion.latency)) == (51, 1)
    assert (challenger.requests, sum(challenger.latency)) == (50, 0)
    result = fast_gate(champion, challenger)
    assert result.passed is None and "warm-up" in result.reason


def test_a_quiet_interval_at_a_shared_step_waits_instead_of_passing_a_slow_challenger() -> None:
    """At a step that sends the champion traffic, an interval with too few champion
    requests to compare cannot judge latency: the gate lacks data (the rollout waits),
    where it used to pass on the absolute error limit alone and wave a 10x slower
    challenger through. At 100% (champion share 0) the absolute limit alone judges."""
    from mlcanary.control.gates import MIN_REQUESTS, fast_gate

    counter = TrafficCounter()  # never begun: every latency is timed
    for _ in range(MIN_REQUESTS // 2):
        counter.record("churn", "champion", 1, 0.020, False)
    for _ in range(MIN_REQUESTS + 3):
        counter.record("churn", "challenger", 2, 0.200, False)
    counts = counter.drain()
    champion = counts[("churn", "champion", 1, 0)]
    challenger = counts[("churn", "challenger", 2, 0)]
    quiet = fast_gate(champion, challenger, champion_share=50.0)
    assert quiet.passed is None and "champion requests to compare with" in quiet.reason
    assert fast_gate(Counts(), challenger, champion_share=0.0).passed is True
    for _ in range(MIN_REQUESTS):
        counter.record("churn", "champion", 1, 0.020, False)
        counter.record("churn", "challenger", 2, 0.200, False)
    busy = counter.drain()
    slow = fast_gate(busy[("churn", "champion", 1, 0)], busy[("churn", "challenger", 2, 0)],
                     champion_share=50.0)
    assert slow.passed is False and "latency" in slow.reason


def ended(rig: Rig, d: Deployment, status: str) -> Deployment:
    """``d`` saved as ended, its aliases not moved yet: the state between ``_finish``'s
    save and its alias moves."""
    after = d.evolve(status=status, weights={"champion": 100.0, "challenger": 0.0},
                     epoch=d.epoch + 1)
    return rig.log.save(after, Event("churn", status, "test", {}, d.as_dict(), after.as_dict()))


def test_a_rollout_started_while_a_promotion_moves_its_aliases_waits_for_them(rig: Rig) -> None:
    ended(rig, rig.deploy(steps=[50, 100]), "promoted")

    def finish_promotion() -> None:  # as actions._finish does, after its save
        rig.registry.set_alias("churn", "champion", 2)
        rig.registry.remove_alias("churn", "challenger")

    mover = threading.Timer(0.5, finish_promotion)
    mover.start()
    nxt = rig.deploy(challenger=1, steps=[50, 100])
    mover.join()
    # against the promoted champion, and the promotion did not take its challenger alias
    assert (nxt.champion, nxt.challenger) == (2, 1)
    assert rig.registry.alias_version("churn", "challenger") == 1


def test_a_rollout_is_refused_while_an_ending_never_moves_its_aliases(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "ALIAS_WAIT_SECONDS", 0.3)
    ended(rig, rig.deploy(steps=[50, 100]), "rolled_back")  # its challenger alias stays
    with pytest.raises(Conflict, match=r"rolled back rollout of version 2 has not finished"):
        rig.deploy(challenger=2, steps=[50, 100])
    rig.registry.remove_alias("churn", "challenger")
    assert rig.deploy(challenger=2, steps=[50, 100]).champion == 1


def drift_window(rig: Rig, d: Deployment, variant: str, end: float, flagged: bool) -> None:
    """A drift window of ``variant``'s traffic as the monitor records it."""
    version = d.versions()[variant]
    SignalLog(rig.store).add(Signal(
        "churn", variant, version, "drift", end - 5, end, uuid.uuid4().hex, 1000, flagged,
        {"drifted_columns": ["tenure_months"] if flagged else [], "dataset_drift": flagged}))


def test_one_window_of_drift_on_a_twin_waits_for_more_then_steps(rig: Rig) -> None:
    """A twin of the champion was rolled back (max-failures 1) on its traffic's one flagged
    window against the champion's one quiet window: now the rollout waits for windows
    enough to tell, steps when the flag stays alone, and at 100% judges only the windows of
    the periods both versions served."""
    d = rig.deploy(steps=[50, 100], max_failures=1)
    start = d.last_check
    traffic(rig, d, start + 2, 6, seed=30)
    drift_window(rig, d, "challenger", start + 7, True)
    drift_window(rig, d, "champion", start + 7, False)
    assert rig.controller.tick(now=start + 10) == []  # 1 of 1 against 0 of 1: wait
    traffic(rig, d, start + 10, 6, seed=31)
    for k in range(4):
        drift_window(rig, d, "challenger", start + 11 + k, False)
        drift_window(rig, d, "champion", start + 11 + k, False)
    (check,) = rig.controller.tick(now=start + 20)
    drift = next(g for g in check.gates if g.gate == "drift")
    assert check.action == "step", check.gates
    assert drift.passed is True and "not significantly" in drift.reason
    current = rig.log.get("churn")
    assert current is not None and current.weights["champion"] == 0
    traffic(rig, current, start + 22, 6, seed=32)
    for k in range(5):  # the world moves at 100%: no champion traffic shows it
        drift_window(rig, current, "challenger", start + 23 + k, True)
    (check,) = rig.controller.tick(now=start + 30)
    drift = next(g for g in check.gates if g.gate == "drift")
    assert check.action == "promote", check.gates
    assert drift.numbers["windows"] == 5 and drift.numbers["flagged"] == 1
