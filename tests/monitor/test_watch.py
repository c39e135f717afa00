"""The monitor loop over a real store and a real registry: windows, cursors, signals."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcanary.config import Settings
from mlcanary.control.status import status_document
from mlcanary.demo import make_churn
from mlcanary.models.runtime import NativeRuntime
from mlcanary.monitor.report import render_drift_report
from mlcanary.monitor.watch import Monitor, WindowPlan, load_facts
from mlcanary.registry.versions import ModelRegistry
from mlcanary.serve.validation import columns_from_frame
from mlcanary.store.database import Store
from mlcanary.store.records import PredictionRecord
from tests.monitor.databases import DATABASES, store_url
from tests.serve.conftest import registered_churn

T0 = 1_800_000_000.0
PLAN = WindowPlan(rows=500, seconds=600, min_rows=100, settle_seconds=2,
                  performance_min_rows=200)


@dataclass
class Served:
    home: Path
    registry: ModelRegistry
    runtime: NativeRuntime
    url: str


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_churn(tmp_path_factory.mktemp("watch"), rows=3000, seed=5)


@pytest.fixture(params=DATABASES)
def served(request: pytest.FixtureRequest, home: Path, tmp_path: Path) -> Iterator[Served]:
    registry = ModelRegistry(Settings(home=home))
    runtime = NativeRuntime(registry.load("churn", "champion"),
                            load_facts(registry, "churn", 1).signature)
    with store_url(request.param, tmp_path) as url:
        yield Served(home, registry, runtime, url)


def log_requests(store: Store, served: Served, rows: pd.DataFrame, start: float,
                 per_request: int = 10, step: float = 0.01) -> list[str]:
    """Predict ``rows`` in requests of ``per_request`` rows and log them from ``start``."""
    signature = served.runtime.signature
    records, ids = [], []
    for k, begin in enumerate(range(0, len(rows), per_request)):
        chunk = rows.iloc[begin:begin + per_request]
        columns = columns_from_frame(chunk, signature, "missing")
        prediction = served.runtime.predict(columns)
        ids.append(uuid.uuid4().hex)
        records.append(PredictionRecord(ids[-1], start + k * step, "churn", 1, columns,
                                        prediction.predicted, prediction.proba,
                                        signature.classes, 1.0))
    store.write_predictions(records)
    return ids


def fresh(rows: int, seed: int) -> pd.DataFrame:
    return make_churn(rows, seed=seed).drop(columns="churned")


def test_windows_become_signals_once_and_drift_is_flagged(served: Served) -> None:
    with Store(served.url) as store:
        log_requests(store, served, fresh(1000, seed=11), T0)
        drifted = fresh(1000, seed=12)
        drifted["monthly_charges"] = drifted["monthly_charges"] * 1.8
        drifted["tenure_months"] = drifted["tenure_months"] + 40
        log_requests(store, served, drifted, T0 + 100)
        monitor = Monitor(store, served.registry, ["churn"], plan=PLAN)
        signals = monitor.tick(now=T0 + 200)
        drift = [s for s in signals if s.kind == "drift"]
        assert [s.rows for s in drift] == [500, 500, 500, 500]
        assert [s.flagged for s in drift][2:] == [True, True]
        flagged = drift[-1].payload
        assert {"monthly_charges", "tenure_months"} <= set(flagged["drifted_columns"])
        test = next(t for t in flagged["tests"] if t["feature"] == "monthly_charges")
        assert set(test) == {"feature", "test", "statistic", "p_value", "effect_size", "drift"}
        # A second monitor (a restart, or `mlcanary watch` beside a server) adds nothing.
        again = Monitor(store, served.registry, ["churn"], plan=PLAN)
        assert again.tick(now=T0 + 300) == []
        assert monitor.tick(now=T0 + 300) == []


def test_a_slow_model_gets_time_windows_but_never_tiny_ones(served: Served) -> None:
    with Store(served.url) as store:
        log_requests(store, served, fresh(150, seed=21), T0)
        monitor = Monitor(store, served.registry, ["churn"], plan=PLAN)
        assert monitor.tick(now=T0 + 100) == []  # 150 rows, younger than 600 s
        (signal,) = monitor.tick(now=T0 + 700)  # old enough and >= 100 rows
        assert signal.rows == 150 and signal.kind == "drift"
        log_requests(store, served, fresh(50, seed=22), T0 + 800)
        assert monitor.tick(now=T0 + 5000) == []  # 50 rows stay pending however long


def test_more_windows_than_a_tick_allows_skips_the_oldest_and_says_how_many(
    served: Served,
) -> None:
    plan = replace(PLAN, max_windows=2, seconds=None)
    with Store(served.url) as store:
        log_requests(store, served, fresh(3000, seed=41), T0)  # 6 windows of 50 requests
        monitor = Monitor(store, served.registry, ["churn"], plan=plan)
        first = [s for s in monitor.tick(now=T0 + 100) if s.kind == "drift"]
        assert [s.rows for s in first] == [500, 500]
        assert first[0].payload["skipped_requests"] == 200  # the 4 oldest windows' requests
        assert "skipped_requests" not in first[1].payload
        assert first[-1].end_ts == pytest.approx(T0 + 299 * 0.01)  # the latest request
        log_requests(store, served, fresh(500, seed=42), T0 + 200)
        (later,) = [s for s in monitor.tick(now=T0 + 300) if s.kind == "drift"]
        assert later.rows == 500 and "skipped_requests" not in later.payload


def test_rows_answered_within_the_settle_time_wait_for_the_next_tick(served: Served) -> None:
    with Store(served.url) as store:
        log_requests(store, served, fresh(500, seed=31), T0, step=0.0)
        monitor = Monitor(store, served.registry, ["churn"], plan=PLAN)
        assert monitor.tick(now=T0 + 1) == []  # not settled: a replica may still flush
        assert len(monitor.tick(now=T0 + 3)) == 1


def test_labels_produce_a_performance_signal_and_a_degraded_one_when_wrong(
    served: Served,
) -> None:
    rows = make_churn(600, seed=41)
    with Store(served.url) as store:
        ids = log_requests(store, served, rows.drop(columns="churned"), T0, per_request=1)
        truth = rows["churned"].to_numpy()
        store.add_feedback("churn", list(zip(ids, truth.tolist(), strict=True)))
        monitor = Monitor(store, served.registry, ["churn"], plan=PLAN)
        (performance,) = [s for s in monitor.tick(now=T0 + 100) if s.kind == "performance"]
        result = performance.payload["performance"]
        assert result["metric"] == "accuracy" and result["n"] == 600  # the default
        assert set(performance.payload["metrics"]) == {"accuracy", "roc_auc", "f1"}
        assert result["ci_low"] <= result["value"] <= result["ci_high"]
        assert not performance.flagged
        assert [s for s in monitor.tick(now=T0 + 200) if s.kind == "performance"] == []
        store.add_feedback("churn", list(zip(ids, (1 - truth).tolist(), strict=True)))
        (worse,) = [s for s in monitor.tick(now=T0 + 300) if s.kind == "performance"]
        assert worse.flagged and worse.payload["performance"]["value"] < 0.5
        assert np.isclose(worse.payload["performance"]["value"], 1 - result["value"])


def test_status_and_report_show_the_windows_and_the_tests(served: Served) -> None:
    with Store(served.url) as store:
        log_requests(store, served, fresh(500, seed=51), T0)
        drifted = fresh(500, seed=52)
        drifted["plan"] = "premium"
        log_requests(store, served, drifted, T0 + 100)
        Monitor(store, served.registry, ["churn"], plan=PLAN).tick(now=T0 + 200)
        document = status_document(store, "churn")
        assert document["predictions_logged"] == 100
        assert [w["dataset_drift"] for w in document["windows"]] == [False, True]
        latest = document["windows"][-1]
        assert "plan" in latest["drifted_columns"] and latest["rows"] == 500
        assert all(set(t) == {"feature", "test", "statistic", "p_value", "effect_size", "drift"}
                   for t in latest["tests"])
        json.dumps(document, allow_nan=False)  # strict JSON: no NaN
        page = render_drift_report(store, served.registry, "churn")
        assert page.count("plotly.js v") == 1 and "plan (drift)" in page
        assert "1 with dataset drift" in page
