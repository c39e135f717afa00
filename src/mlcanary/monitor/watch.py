"""The monitor loop: read the prediction log in windows, run the detectors, store signals.

Each tick, for every watched model, the log is read up to ``now - settle`` (requests
answered earlier than that have been flushed by every replica) and split by variant and
version. Each group continues from its own cursor (the last window recorded for it), so
a restarted monitor resumes where the store says, and two monitors on one store cannot
record a window twice (the ``signals`` table refuses the duplicate). Every window is
compared with the reference of the version that served it.

Each group reads at most ``max_windows`` windows' worth of requests a tick. Under traffic
heavier than the monitor can test, the most recent windows are analysed and the older
requests skipped (their count goes into the next signal, ``skipped_requests``, and the
log), so that monitoring takes a bounded share of the machine, whatever the load.

Performance is computed on the group's most recent labelled rows whenever their labels
changed since the last performance signal (a digest of ids and labels says so).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlcanary.config import Settings
from mlcanary.models.adapter import open_version
from mlcanary.monitor.decision import DriftSettings, Reference, analyse
from mlcanary.monitor.performance import default_metric, metrics_for, window_performance
from mlcanary.monitor.windows import after, cut
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX, TARGET_COLUMN
from mlcanary.registry.versions import ModelRegistry
from mlcanary.signature import Signature
from mlcanary.store.database import Store
from mlcanary.store.records import ID_COLUMN, VARIANT_COLUMN, VERSION_COLUMN
from mlcanary.store.signals import Signal, SignalLog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowPlan:
    """How the log is cut and how much of it performance looks at."""

    rows: int = 1000
    seconds: float | None = 3600.0
    min_rows: int = 200
    settle_seconds: float = 3.0
    performance_rows: int = 2000
    performance_min_rows: int = 100
    max_windows: int | None = 10
    """Windows analysed per group and tick; None: all of them."""


RECHECK_SECONDS = 60.0
"""How often the facts of a version without a reference sample are read again."""


@dataclass(frozen=True)
class VersionFacts:
    """What the monitor needs of a model version, loaded once."""

    signature: Signature
    reference: Reference | None
    """None: the version has no reference sample, and its drift is not analysed."""
    baseline: dict[str, float]
    """CV mean of every metric the version was evaluated on."""


class Monitor:
    """Turns new log records into drift and performance signals."""

    def __init__(
        self,
        store: Store,
        registry: ModelRegistry,
        names: list[str],
        *,
        plan: WindowPlan | None = None,
        drift: DriftSettings | None = None,
        on_signal: Callable[[Signal], None] | None = None,
        seed: int = 0,
        facts: Callable[[str, int], VersionFacts | None] | None = None,
    ) -> None:
        """``facts`` gives a version's facts, or None for the registry's bundle."""
        self.store = store
        self.signals = SignalLog(store)
        self.registry = registry
        self.names = names
        self.plan = plan or WindowPlan()
        self.drift = drift or DriftSettings()
        self.on_signal = on_signal
        self.seed = seed
        self._load = facts
        self._facts: dict[tuple[str, int], VersionFacts] = {}
        self._floor: dict[str, float] = {}
        """Per model: no group has unanalysed rows older than this."""
        self._told: set[tuple[str, int]] = set()
        """Versions without a reference sample, said once."""
        self._read_at: dict[tuple[str, int], float] = {}
        self._performed: dict[tuple[str, str, int], str] = {}
        """Per (model, variant, version): the ``label_marks`` its last performance read."""

    # -- one pass --------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> list[Signal]:
        """Analyse whatever closed windows the log holds now; return the new signals."""
        now = time.time() if now is None else now
        out: list[Signal] = []
        for name in self.names:
            try:
                out.extend(self._model(name, now))
            except Exception:  # one broken model must not stop the others' monitoring
                log.exception("monitor: model %s failed this tick", name)
        return out

    def _model(self, name: str, now: float) -> list[Signal]:
        until = now - self.plan.settle_seconds
        floor = self._floor.get(name)
        out: list[Signal] = []
        floors = [until]
        for (variant, version), _ in self.store.groups(name, since=floor, until=until).items():
            reference = self.facts(name, version).reference
            if reference is None:
                self._unreferenced(name, version)
                continue
            cursor = self.signals.cursor(name, variant, version, "drift")
            since = floor if floor is not None and floor > cursor[0] else None
            if since is None and cursor[0] > float("-inf"):
                since = cursor[0]
            budget = None if self.plan.max_windows is None else (
                self.plan.max_windows * self.plan.rows
            )
            group = self.store.read_window(name, variant=variant, version=version,
                                           since=since, until=until, limit=budget)
            fresh = after(group, cursor)
            skipped = 0
            if budget is not None and len(group) and group[ID_COLUMN].nunique() >= budget:
                # A full tail: older requests may be waiting beyond it, too many to test.
                first = float(fresh["__ts__"].iloc[0]) if len(fresh) else until
                skipped = self.store.count_after(name, variant, version, cursor[0], first)
            windows = cut(
                fresh,
                rows=self.plan.rows,
                seconds=self.plan.seconds,
                min_rows=self.plan.min_rows,
                now=now,
            )
            consumed = sum(w.rows for w in windows)
            if consumed < len(fresh):
                floors.append(float(fresh["__ts__"].iloc[consumed]))
            if self.plan.max_windows is not None and len(windows) > self.plan.max_windows:
                dropped = windows[: -self.plan.max_windows]
                skipped += sum(int(w.frame[ID_COLUMN].nunique()) for w in dropped)
                windows = windows[-self.plan.max_windows:]
            if not windows:
                continue
            if skipped:
                log.warning("monitor: %s v%s (%s): %d requests skipped (more traffic than "
                            "%d windows a tick); analysing the latest", name, version,
                            variant, skipped, self.plan.max_windows)
            for k, window in enumerate(windows):
                seed = window_seed(self.seed, name, variant, version, window.last_id)
                report = analyse(reference, window.frame, self.drift, seed=seed)
                payload = report.as_dict()
                if k == 0 and skipped:
                    payload["skipped_requests"] = skipped
                signal = Signal(
                    model=name,
                    variant=variant,
                    version=version,
                    kind="drift",
                    start_ts=window.start_ts,
                    end_ts=window.end_ts,
                    last_id=window.last_id,
                    rows=window.rows,
                    flagged=report.dataset_drift,
                    payload=payload,
                )
                if self.signals.add(signal):
                    out.append(signal)
        self._floor[name] = min(floors)
        out.extend(self._performances(name))
        for signal in out:
            log.info(
                "monitor: %s v%s (%s) %s window of %d rows: %s",
                name, signal.version, signal.variant, signal.kind, signal.rows,
                "FLAGGED" if signal.flagged else "ok",
            )
            if self.on_signal is not None:
                self.on_signal(signal)
        return out

    def _performances(self, name: str) -> list[Signal]:
        """A performance signal per group whose recent labels changed since its last one.

        The labels' marks are read first (ids and labels, no records): the recent records
        are decoded and scored only when some group's labels changed.
        """
        marks = self.store.label_marks(name, limit=self.plan.performance_rows)
        changed = {group for group, mark in marks.items()
                   if self._performed.get((name, *group)) != mark}
        if not changed:
            return []
        recent = self.store.read_window(name, limit=self.plan.performance_rows, inputs=False)
        if recent.empty:
            return []
        out = []
        labelled = recent[recent[TARGET_COLUMN].notna()]
        for key, group in labelled.groupby([VARIANT_COLUMN, VERSION_COLUMN], sort=False):
            variant, version = _group(key)
            if (variant, version) not in changed:
                continue
            signal = self._performance(name, variant, version, group)
            self._performed[(name, variant, version)] = marks[(variant, version)]
            if signal is not None and self.signals.add(signal):
                out.append(signal)
        return out

    def _performance(
        self, name: str, variant: str, version: int, labelled: pd.DataFrame
    ) -> Signal | None:
        if len(labelled) < self.plan.performance_min_rows:
            return None
        digest = hashlib.sha256(
            pd.util.hash_pandas_object(
                labelled[[ID_COLUMN, TARGET_COLUMN]].astype(str), index=False
            ).to_numpy().tobytes()
        ).hexdigest()[:32]
        facts = self.facts(name, version)
        signature = facts.signature
        metric = default_metric(signature.task, signature.classes)
        if metric not in facts.baseline:
            return None
        y_true = _labels(labelled[TARGET_COLUMN].to_numpy(), signature)
        predicted = _labels(labelled[PREDICTION_COLUMN].to_numpy(), signature)
        if signature.task == "regression":
            scores = predicted.astype(float)
        else:
            columns = [f"{SCORE_PREFIX}{c}" for c in signature.classes or []]
            scores = labelled[columns].to_numpy(dtype=float)
        seed = window_seed(self.seed, name, variant, version, digest)
        results = {
            other: window_performance(
                y_true, scores, predicted, task=signature.task, classes=signature.classes,
                baseline=facts.baseline[other], metric=other, seed=seed,
            )
            for other in metrics_for(signature.task, signature.classes)
            if other in facts.baseline
        }
        result = results[metric]
        return Signal(
            model=name,
            variant=variant,
            version=version,
            kind="performance",
            start_ts=float(labelled["__ts__"].iloc[0]),
            end_ts=float(labelled["__ts__"].iloc[-1]),
            last_id=digest,
            rows=len(labelled),
            flagged=result.degraded,
            # The default metric decides the signal; the others are there for the record
            # and for policies that name one (``metric = "roc_auc"``).
            payload={"performance": result.as_dict(),
                     "metrics": {k: r.as_dict() for k, r in results.items()}},
        )

    # -- versions ----------------------------------------------------------------------------

    def facts(self, name: str, version: int) -> VersionFacts:
        """The version's signature, drift reference and CV baseline (cached; a version
        without a reference is read again every ``RECHECK_SECONDS``, as one may be
        attached to it meanwhile with ``mlcanary reference``)."""
        key = (name, version)
        cached = self._facts.get(key)
        if cached is not None and cached.reference is None and \
                time.monotonic() - self._read_at.get(key, 0.0) > RECHECK_SECONDS:
            cached = None
        if cached is None:
            loaded = self._load(name, version) if self._load else None
            cached = self._facts[key] = loaded or load_facts(self.registry, name, version)
            self._read_at[key] = time.monotonic()
            if cached.reference is not None and key in self._told:
                self._told.discard(key)
                log.info("monitor: %s v%s has a reference sample now; analysing its drift",
                         name, version)
        return cached

    def _unreferenced(self, name: str, version: int) -> None:
        if (name, version) not in self._told:
            self._told.add((name, version))
            log.warning("monitor: %s v%s has no reference sample (a model mlcanary did not "
                        "train); its drift is not analysed until one is attached: mlcanary "
                        "reference %s DATA --version %s", name, version, name, version)

    # -- loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event, every: float) -> None:
        """Tick every ``every`` seconds until ``stop`` is set (a final tick included)."""
        while not stop.wait(every):
            self.tick()

    def start(self, every: float) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run, args=(stop, every), name="mlcanary-monitor", daemon=True
        )
        thread.start()
        return thread, stop


def monitor_from_settings(
    settings: Settings,
    store: Store,
    names: list[str],
    on_signal: Callable[[Signal], None] | None = None,
) -> Monitor:
    """The monitor ``mlcanary serve`` and ``mlcanary watch`` run, configured by settings."""
    plan = WindowPlan(
        rows=settings.window_rows,
        seconds=settings.window_seconds,
        min_rows=settings.window_min_rows,
        # Every replica has flushed what it answered this long ago (one interval, plus a
        # second interval for a flush already under way, plus a margin).
        settle_seconds=2 * settings.log_flush_seconds + 1.0,
        max_windows=settings.monitor_max_windows,
    )
    return Monitor(
        store,
        ModelRegistry(settings),
        names,
        plan=plan,
        drift=DriftSettings(correction=settings.drift_correction),
        on_signal=on_signal,
        seed=settings.seed,
    )


def load_facts(registry: ModelRegistry, name: str, version: int) -> VersionFacts:
    model = open_version(registry, name, version, predictor=False)
    sample = model.reference()
    reference = (Reference.from_sample(sample, model.signature, model.importance())
                 if len(sample) else None)
    return VersionFacts(model.signature, reference, model.baseline())


def window_seed(seed: int, model: str, variant: str, version: int, window: str) -> int:
    """The seed of one window's random draws, from the window's identity.

    Reproducible (a restarted monitor, or a second one on the store, draws the same) but
    not shared: with one seed for every window the domain classifier compared each window
    with the same reference subsample, so its false alarms came together.

    >>> window_seed(0, "churn", "champion", 1, "a") == window_seed(0, "churn", "champion", 1, "a")
    True
    >>> window_seed(0, "churn", "champion", 1, "a") == window_seed(0, "churn", "champion", 1, "b")
    False
    """
    text = f"{seed}\x00{model}\x00{variant}\x00{version}\x00{window}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


def _group(key: Any) -> tuple[str, int]:
    variant, version = key
    return str(variant), int(version)


def _labels(values: np.ndarray, signature: Signature) -> np.ndarray:
    """Labels as the version's classes are typed (JSON may bring 1 for 1, '1' for '1')."""
    if signature.task == "regression":
        return np.asarray(values, dtype=float)
    classes = signature.classes or []
    lookup: dict[Any, Any] = {}
    for c in classes:
        lookup[c] = c
        lookup[str(c)] = c
    return np.asarray([lookup.get(v, lookup.get(str(v), v)) for v in values], dtype=object)
