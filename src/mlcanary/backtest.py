"""``mlcanary backtest``: check a user's table, score it with each version, replay it.

The replay itself is ``control.backtest``; this module does what sits around it: the
table's checks (every bad option is one line naming it, exit 2), scoring through the
server's validation and runtime, the drift reference, and the printed figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from mlcanary.config import Settings
from mlcanary.control.backtest import BacktestPlan, BacktestResult, Scored, backtest
from mlcanary.control.strategies import strategy_named
from mlcanary.errors import InvalidInput
from mlcanary.monitor.decision import Reference
from mlcanary.monitor.watch import VersionFacts, load_facts
from mlcanary.progress import Steps
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX
from mlcanary.registry.versions import ModelRegistry
from mlcanary.signature import Signature


@dataclass(frozen=True)
class BacktestRequest:
    """The command's options, as given."""

    name: str
    data: Path
    version: str = "champion"
    target: str | None = None
    time_column: str | None = None
    reference_rows: int | None = None
    challenger: str = "same"


def run_backtest(request: BacktestRequest, plan: BacktestPlan, settings: Settings,
                 steps: Steps) -> BacktestResult:
    """Check, score and replay; InvalidInput naming the option for anything wrong."""
    from mlcanary.serve.batch import score_frame
    from mlcanary.serve.repository import ModelRepository
    from mlcanary.serve.validation import check_columns
    from mlcanary.train.data import read_table
    from mlcanary.train.schema import check_time_column, require_column

    registry = ModelRegistry(settings)
    frame = read_table(request.data)
    number, champion_facts = _facts(registry, request.name, request.version, "--version")
    signature = champion_facts.signature
    target = request.target or signature.target
    require_column(frame, target, "--target")
    check_columns(frame, signature)
    if request.time_column:
        order = check_time_column(frame, request.time_column).argsort(kind="stable")
        frame = frame.iloc[order.to_numpy()].reset_index(drop=True)
    frame = frame[frame[target].notna()].reset_index(drop=True)
    skip = request.reference_rows or 0
    rows = len(frame) - skip
    if rows < plan.rows_needed():
        checks = strategy_named(plan.rollout).checks_needed(plan.steps) if plan.rollout else 0
        what = f"a full {plan.rollout} ramp" if checks > 1 else "one window"
        raise InvalidInput(
            f"data: {rows} labelled rows to replay"
            + (f" after the {skip} reference rows" if skip else "")
            + f", fewer than {what} needs ({plan.rows_needed()}: --window-rows "
            f"{plan.window_rows}" + (f", --interval-rows {plan.interval_rows} x "
                                     f"{checks} steps" if checks > 1
                                     else "") + ")"
        )
    facts = {number: champion_facts}
    versions = [number]
    if plan.rollout is not None and request.challenger != "same":
        number, other = _facts(registry, request.name, request.challenger, "--challenger")
        _same_contract(signature, other.signature, request.challenger)
        if number == versions[0]:
            raise InvalidInput(
                f"--challenger {request.challenger}: that is the version under test; "
                "use --challenger same for an A/A test"
            )
        facts[number] = other
        versions.append(number)

    scored = {}
    with steps.running():
        for number in versions:
            repository = ModelRepository(registry, [request.name], alias=str(number))
            repository.load()
            model = repository.get(request.name)
            with steps.stage(f"scoring with {request.name} v{number}", len(frame)) as advance:
                answers = score_frame(frame, model, settings.unseen_categories, advance)
            scored[number] = _scored(number, answers, model.signature)
        if skip:
            reference = frame.iloc[:skip]
            for number in versions:
                facts[number] = _with_reference(facts[number], reference, scored[number])
        replay = frame.iloc[skip:].reset_index(drop=True)
        labels = _labels(replay[target].to_numpy(), signature)
        columns = _columns(replay, signature)
        trimmed = {v: _slice(s, skip) for v, s in scored.items()}
        champion = trimmed[versions[0]]
        challenger = trimmed[versions[1]] if len(versions) > 1 else None
        with steps.stage("replaying", plan.repeats) as advance:
            return backtest(request.name, columns, labels, champion, challenger, facts,
                            registry, plan, on_replay=advance)


def _version_number(registry: ModelRegistry, name: str, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    if ref not in ("champion", "challenger"):
        raise InvalidInput(f"expected a version number, champion or challenger, got {ref!r}")
    number = registry.alias_version(name, "champion" if ref == "champion" else "challenger")
    if number is None:
        raise InvalidInput(f"model '{name}': no version has the alias '{ref}'")
    return int(number)


def _facts(registry: ModelRegistry, name: str, ref: str, option: str
           ) -> tuple[int, VersionFacts]:
    from mlcanary.errors import MlcanaryError

    try:
        number = _version_number(registry, name, ref)
        return number, load_facts(registry, name, number)
    except MlcanaryError as exc:
        raise InvalidInput(f"{option} {ref}: {exc}") from exc


def _same_contract(ours: Signature, theirs: Signature, ref: str) -> None:
    """The challenger must take the same rows and answer the same question."""
    a = [(c.name, c.kind) for c in ours.columns]
    b = [(c.name, c.kind) for c in theirs.columns]
    if a != b:
        only_a = sorted(set(a) - set(b))
        only_b = sorted(set(b) - set(a))
        raise InvalidInput(
            f"--challenger {ref}: its signature differs from the version under test "
            f"(only in the tested version: {only_a}; only in the challenger: {only_b}); "
            "expected the same columns of the same kinds"
        )
    if (ours.task, ours.classes) != (theirs.task, theirs.classes):
        raise InvalidInput(
            f"--challenger {ref}: it predicts {theirs.task} {theirs.classes or ''}, the "
            f"version under test {ours.task} {ours.classes or ''}; expected the same target"
        )


def _scored(version: int, answers: pd.DataFrame, signature: Signature) -> Scored:
    predicted = answers["predict"].to_numpy()
    proba = None
    if signature.classes is not None:
        proba = answers[[f"probability_{c}" for c in signature.classes]].to_numpy(dtype=float)
    return Scored(version, predicted, proba, signature.classes)


def _slice(scored: Scored, skip: int) -> Scored:
    return replace(scored, predicted=scored.predicted[skip:],
                   proba=None if scored.proba is None else scored.proba[skip:])


def _with_reference(facts: VersionFacts, rows: pd.DataFrame, scored: Scored) -> VersionFacts:
    """The version's facts with its drift reference drawn from ``rows`` (as it scores them)."""
    signature = facts.signature
    sample = rows[[c.name for c in signature.columns]].reset_index(drop=True).copy()
    sample[PREDICTION_COLUMN] = scored.predicted[: len(rows)]
    if scored.proba is not None:
        for k, label in enumerate(signature.classes or []):
            sample[f"{SCORE_PREFIX}{label}"] = scored.proba[: len(rows), k]
    weights = dict(facts.reference.weights) if facts.reference is not None else {}
    reference = Reference.from_sample(sample, signature, weights)
    return replace(facts, reference=reference)


def _labels(values: np.ndarray, signature: Signature) -> np.ndarray:
    """Labels typed as the version's classes (a CSV may read 1 for class '1')."""
    if signature.task == "regression":
        return np.asarray(values, dtype=float)
    lookup: dict[Any, Any] = {}
    for c in signature.classes or []:
        lookup[c] = c
        lookup[str(c)] = c
    unknown = sorted({str(v) for v in values if v not in lookup and str(v) not in lookup})
    if unknown:
        raise InvalidInput(
            f"--target: labels {unknown[:5]} are not classes of the model; expected one of "
            f"{signature.classes}"
        )
    return np.asarray([lookup.get(v, lookup.get(str(v))) for v in values], dtype=object)


def _columns(frame: pd.DataFrame, signature: Signature) -> dict[str, np.ndarray]:
    """The rows' columns typed exactly as a request carrying them would be."""
    from mlcanary.serve.validation import columns_from_frame

    return {name: np.asarray(values) for name, values in
            columns_from_frame(frame, signature).items()}


def print_result(result: BacktestResult, plan: BacktestPlan, out: Console) -> None:
    """The figures as a person reads them."""
    drift = result.drift
    share = drift.dataset_drift / drift.windows if drift.windows else 0.0
    out.print(
        f"drift: {drift.dataset_drift} of {drift.windows} windows flagged at dataset level "
        f"({share:.1%}); prediction drift in {drift.prediction_drift}"
    )
    if drift.columns:
        table = Table("column", "windows drifted", title="columns that drifted")
        for column, count in sorted(drift.columns.items(), key=lambda kv: -kv[1]):
            table.add_row(column, f"{count} of {drift.windows}")
        out.print(table)
    if not result.rollouts:
        return
    summary = result.as_dict()["rollout"]
    n = summary["repeats"]
    out.print(
        f"rollout ({plan.rollout}, {n} replays"
        + ("" if plan.stratify else ", quality pooled over the ramp") + "): "
        f"rolled back {summary['rolled_back']}, promoted {summary['promoted']}, "
        f"paused {summary['paused']}, undecided {summary['undecided']}; "
        f"challenger found better {summary['challenger_better']}, "
        f"worse {summary['challenger_worse']}"
    )
    table = Table("offset", "ended", "at share", "verdict", "checks", "requests")
    for r in result.rollouts:
        table.add_row(str(r.offset), r.outcome, f"{r.step:g}%", r.verdict, str(r.checks),
                      str(r.rows))
    out.print(table)
