"""Retraining: a new challenger from the data source plus the labelled prediction log.

A ``[retrain.NAME]`` table in the policy file says how model NAME is retrained:

    [retrain.churn]
    data = "churn.csv"        # the data source (CSV, TSV or Parquet; relative to this file)
    target = "churned"
    source_rows = 10000       # the last rows of the source (it is in time order); default all
    log = "fired"             # labelled log rows: "fired" (since the first window the rule
                              # fired on), "all", or "none"
    max_log_rows = 100000     # the most recent labelled rows taken from the log
    train = { model = "lightgbm", folds = 5 }   # further ``mlcanary train`` options
    rollout = { strategy = "canary", steps = [1, 5, 10, 25, 50, 100],
                interval_seconds = 60, max_failures = 2 }

A policy whose ``actions`` include ``"retrain"`` hands the job to a ``RetrainWorker``: a
background thread in the watch process, one job per model at a time. The job reads the
source, appends the labelled rows of the log window (typed as the source's columns), keeps
the table it trained on under ``MLCANARY_HOME/retrain/`` and registers the version with
its lineage (the data, its hash, the log window, the trigger) as MLflow version tags.
The version becomes the ``challenger`` and the configured rollout starts. Every outcome
is an event: ``retrain`` when it starts and when it registers, ``retrain_failed`` with
the reason when anything goes wrong (the watch loop goes on). ``mlcanary retrain NAME``
runs the same job in the foreground.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationInfo, field_validator

from mlcanary.bodies import Body, Field, checked
from mlcanary.config import Settings
from mlcanary.errors import InvalidInput, MlcanaryError
from mlcanary.registry.profile import TARGET_COLUMN
from mlcanary.registry.versions import ModelRegistry
from mlcanary.signature import Signature
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog, Event
from mlcanary.types import SHADOW_VARIANT

log = logging.getLogger(__name__)

LogWindow = Literal["fired", "all", "none"]
Reference = Literal["log", "all"]
_TRAIN_OPTIONS = {"model", "folds", "trials", "seed", "time_column", "group_column",
                  "min_precision", "min_recall", "task"}
_ROLLOUT_OPTIONS = {"strategy", "steps", "interval_seconds", "max_failures", "weights",
                    "mirror_percent", "key_column"}
_TRUE = {"true": True, "yes": True, "1": True, "1.0": True, "false": False, "no": False,
         "0": False, "0.0": False}


@dataclass(frozen=True)
class RetrainPlan:
    """How one model is retrained and rolled out."""

    model: str
    data: Path
    target: str
    log: LogWindow = "fired"
    max_log_rows: int = 100_000
    source_rows: int | None = None
    train: Mapping[str, Any] = field(default_factory=dict)
    rollout: Mapping[str, Any] = field(default_factory=lambda: {"strategy": "canary"})
    reference: Reference = "log"
    """Where the new version's drift reference comes from: the labelled log rows (what
    production looks like now), or every training row."""


@dataclass(frozen=True)
class Trigger:
    """Who asked for a retrain and why; ``since`` starts the log window (None: all)."""

    actor: str
    cause: dict[str, Any]
    since: float | None = None


@dataclass(frozen=True)
class Outcome:
    version: int
    lineage: dict[str, Any]
    rollout: dict[str, Any] | None
    report: Path


def load_plans(document: Mapping[str, Any], where: str, base: Path) -> dict[str, RetrainPlan]:
    """The ``[retrain.NAME]`` tables of a policy document, checked field by field."""
    tables = document.get("retrain", {})
    if not isinstance(tables, Mapping):
        raise InvalidInput(f"{where}: expected [retrain.NAME] tables")
    return {name: _plan(name, table, f"{where}, [retrain.{name}]", base)
            for name, table in tables.items()}


class RetrainTable(Body):
    """One ``[retrain.NAME]`` table of a policy file."""

    data: str = Field(min_length=1, description="a path to the data source (a string)")
    target: str = Field(min_length=1, description="a string naming the target column")
    source_rows: int | None = Field(None, ge=0, description="a whole number >= 0")
    log: LogWindow = Field("fired", description="'fired', 'all' or 'none'")
    max_log_rows: int = Field(100_000, ge=0, description="a whole number >= 0")
    train: dict[str, Any] = Field(
        default_factory=dict, description="a table of `mlcanary train` options")
    rollout: dict[str, Any] = Field(
        default_factory=lambda: {"strategy": "canary"}, description="a table of rollout options")
    reference: Reference = Field("log", description="'log' or 'all'")

    @field_validator("train", "rollout")
    @classmethod
    def _known_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        allowed = _TRAIN_OPTIONS if info.field_name == "train" else _ROLLOUT_OPTIONS
        extra = sorted(set(options) - allowed)
        if extra:
            raise ValueError(f"has unknown options {extra}; expected some of {sorted(allowed)}")
        return options


def _plan(model: str, table: object, where: str, base: Path) -> RetrainPlan:
    plan = checked(RetrainTable, table, where)
    data = Path(plan.data)
    return RetrainPlan(model, data if data.is_absolute() else base / data, plan.target,
                       plan.log, plan.max_log_rows, plan.source_rows, dict(plan.train),
                       dict(plan.rollout), plan.reference)


def retrain(
    plan: RetrainPlan,
    settings: Settings,
    trigger: Trigger,
    *,
    steps: Any = None,
    registered: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Train on source + labelled log, register as challenger, start the rollout.

    ``registered`` hears of the new version before its rollout starts (the audit trail
    then reads in the order things happened).
    """
    from mlcanary.control import actions
    from mlcanary.progress import Steps
    from mlcanary.train.data import read_table
    from mlcanary.train.publish import train_and_register
    from mlcanary.train.schema import is_identifier
    from mlcanary.train.spec import TrainSpec

    registry = ModelRegistry(settings)
    champion = registry.alias_version(plan.model, "champion")
    source = read_table(plan.data)
    if plan.target not in source.columns:
        raise InvalidInput(
            f"retrain '{plan.model}': target '{plan.target}' is not a column of '{plan.data}'"
        )
    if plan.source_rows is not None:
        source = source.iloc[len(source) - min(plan.source_rows, len(source)):]
    signature = (
        Signature.from_dict(registry.bundle(plan.model, champion, "signature.json"))
        if champion is not None else None
    )
    since = None if plan.log == "all" else trigger.since
    with Store.from_settings(settings) as store:
        logged = (
            labelled_rows(store, plan, list(source.columns), since)
            if plan.log != "none" and plan.max_log_rows > 0 else source.iloc[:0]
        )
        table = training_table(source, logged, plan.target, signature)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        folder = settings.home / "retrain" / plan.model
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{plan.model}-{stamp}.parquet"
        table.to_parquet(path, index=False)
        recent = len(logged) if plan.reference == "log" and len(logged) else None
        lineage = {
            "source": str(plan.data),
            "source_rows": len(source),
            "log_rows": len(logged),
            "log_since": since,
            "log_until": time.time(),
            "table": str(path),
            "rows": len(table),
            "trigger": trigger.actor,
            "champion": champion,
            "reference_last": recent,  # the drift reference: these last (log) rows
        }
        ids = tuple(c.name for c in signature.columns if is_identifier(c)
                    ) if signature is not None else ()
        spec = TrainSpec.parse(data=path, target=plan.target, name=plan.model,
                               **{"seed": settings.seed, "reference_last": recent,
                                  "id_columns": ids, **plan.train})
        tags = {"mlcanary.retrain": json.dumps(lineage, default=str),
                "mlcanary.trigger": trigger.actor}
        _, version, report = train_and_register(spec, settings, steps or Steps(None), tags)
        rollout = None
        if registered is not None:
            registered(Outcome(version.version, lineage, None, report))
        if champion is not None:
            options = {**plan.rollout}
            deployment = actions.deploy(registry, DeploymentLog(store), plan.model,
                                        challenger=version.version, actor=trigger.actor,
                                        **options)
            rollout = {"strategy": deployment.strategy, "weights": deployment.weights}
        else:
            registry.set_alias(plan.model, "champion", version.version)
    return Outcome(version.version, lineage, rollout, report)


def labelled_rows(
    store: Store, plan: RetrainPlan, columns: list[str], since: float | None
) -> pd.DataFrame:
    """The most recent labelled rows of the champion's and challenger's traffic."""
    frame = store.read_window(plan.model, since=since)
    if frame.empty or TARGET_COLUMN not in frame:
        return pd.DataFrame(columns=columns)
    frame = frame[frame[TARGET_COLUMN].notna() & (frame["__variant__"] != SHADOW_VARIANT)]
    frame = frame.tail(plan.max_log_rows)
    out = pd.DataFrame(index=frame.index)
    for name in columns:
        if name == plan.target:
            out[name] = frame[TARGET_COLUMN]
        else:
            out[name] = frame.get(name, None)
    return out.reset_index(drop=True)


def training_table(
    source: pd.DataFrame, logged: pd.DataFrame, target: str, signature: Signature | None
) -> pd.DataFrame:
    """Source and log rows in one table, every column typed one way.

    The log holds what validation made of a request (``True`` for a boolean sent as
    "yes", numbers as floats), the source what the file held; both are read by the
    champion's column kinds so that the trainer sees one type per column.
    """
    if logged.empty:
        return source.reset_index(drop=True)
    kinds = {c.name: c.kind for c in signature.columns} if signature is not None else {}
    parts = []
    for frame in (source, logged):
        typed = pd.DataFrame(index=frame.index)
        for name in source.columns:
            values = frame[name]
            if name == target:
                typed[name] = _like(values, source[target])
            else:
                typed[name] = _typed(values, kinds.get(name), source[name])
        parts.append(typed)
    return pd.concat(parts, ignore_index=True)


def _typed(values: pd.Series, kind: str | None, like: pd.Series) -> pd.Series:
    if kind == "boolean":
        words = values.map(lambda v: None if _missing(v) else _TRUE.get(str(v).strip().lower()))
        return words.astype("boolean")
    if kind in ("numeric", "integer"):
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        whole = numbers.dropna()
        if kind == "integer" and (whole == np.floor(whole)).all():
            return numbers.astype("Int64")
        return numbers
    if kind in ("categorical", "datetime"):
        return values.map(lambda v: np.nan if _missing(v) else str(v)).astype(
            pd.StringDtype(na_value=np.nan)
        )
    return _like(values, like)


def _like(values: pd.Series, like: pd.Series) -> pd.Series:
    """Values in the source column's type (labels from JSON: 1 for 1, 'yes' for 'yes')."""
    if pd.api.types.is_numeric_dtype(like) and not pd.api.types.is_bool_dtype(like):
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers.astype(like.dtype) if not numbers.isna().any() else numbers
    return values.map(lambda v: np.nan if _missing(v) else str(v)).astype(
        pd.StringDtype(na_value=np.nan)
    )


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


class RetrainWorker:
    """Runs retrains in background threads, one per model at a time; never raises."""

    def __init__(self, settings: Settings, plans: Mapping[str, RetrainPlan],
                 events: DeploymentLog) -> None:
        self.settings = settings
        self.plans = plans
        self.events = events
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def submit(self, model: str, trigger: Trigger) -> bool:
        """Start a retrain of ``model``; False (and nothing done) when one is running."""
        plan = self.plans.get(model)
        with self._lock:
            running = self._running.get(model)
            if running is not None and running.is_alive():
                return False
            self.events.record(Event(model, "retrain", trigger.actor, trigger.cause,
                                     None, {"status": "started"}))
            if plan is None:
                self._failed(model, trigger, f"no [retrain.{model}] table in the policy file")
                return True
            thread = threading.Thread(target=self._run, args=(plan, trigger),
                                      name=f"retrain-{model}", daemon=True)
            self._running[model] = thread
            thread.start()
        return True

    def join(self, timeout: float | None = None) -> None:
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout)

    def _run(self, plan: RetrainPlan, trigger: Trigger) -> None:
        run_and_record(plan, self.settings, trigger, self.events)

    def _failed(self, model: str, trigger: Trigger, reason: str) -> None:
        _record_failure(self.events, model, trigger, reason)


def run_and_record(
    plan: RetrainPlan, settings: Settings, trigger: Trigger, events: DeploymentLog,
    steps: Any = None,
) -> Outcome | None:
    """``retrain`` with its outcome in the audit trail; None (and an event) on failure."""
    made: list[Outcome] = []

    def registered(outcome: Outcome) -> None:
        made.append(outcome)
        events.record(Event(
            plan.model, "retrain", trigger.actor, trigger.cause, None,
            {"status": "registered", "version": outcome.version, "lineage": outcome.lineage,
             "report": str(outcome.report)},
        ))

    try:
        return retrain(plan, settings, trigger, steps=steps, registered=registered)
    except Exception as exc:  # a retrain must never take the watch loop down
        if not isinstance(exc, MlcanaryError):
            log.exception("retrain of %s failed", plan.model)
        reason = str(exc) if isinstance(exc, MlcanaryError) else f"{type(exc).__name__}: {exc}"
        if made:
            reason = (f"version {made[0].version} was registered but its rollout did not "
                      f"start: {reason}")
        _record_failure(events, plan.model, trigger, reason)
        return None


def _record_failure(events: DeploymentLog, model: str, trigger: Trigger, reason: str) -> None:
    try:
        events.record(Event(model, "retrain_failed", trigger.actor,
                            {**trigger.cause, "reason": reason}, None, None))
    except Exception:
        log.exception("could not record the failed retrain of %s", model)
