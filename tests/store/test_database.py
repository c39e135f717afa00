"""The store on a real SQLite file and a real Postgres: log, feedback joins, windows, retention."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from mlcanary.config import Settings
from mlcanary.errors import InvalidInput, Unavailable
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX, TARGET_COLUMN
from mlcanary.store.database import Store, normalise_url
from mlcanary.store.feedback import FeedbackItem, FeedbackResult
from mlcanary.store.records import PredictionRecord
from tests.monitor.databases import DATABASES, store_url

TEXT = pd.StringDtype(na_value=np.nan)


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with store_url(request.param, tmp_path) as url, Store(url) as opened:
        yield opened


def record(
    id_: str,
    rows: int = 1,
    *,
    model: str = "churn",
    ts: float | None = None,
    version: int = 1,
    variant: str = "champion",
    classes: list[Any] | None = None,
) -> PredictionRecord:
    """A record shaped like the server's: validated columns as numpy and pandas arrays."""
    classes = [0, 1] if classes is None else classes
    k = np.arange(rows)
    inputs = {
        "charges": np.where(k % 2 == 1, np.nan, 10.0 + k),
        "calls": pd.arrays.IntegerArray(k.astype(np.int64), k % 3 == 2),
        "plan": pd.array(["basic" if i % 2 else None for i in range(rows)], dtype=TEXT),
    }
    proba = np.column_stack([np.full(rows, 0.25), np.full(rows, 0.75)])
    return PredictionRecord(
        id=id_,
        ts=time.time() if ts is None else ts,
        model=model,
        version=version,
        inputs=inputs,
        predicted=np.asarray([classes[1]] * rows),
        proba=proba if len(classes) == 2 else None,
        classes=classes,
        latency_ms=1.5,
        variant=variant,
    )


def regression_record(id_: str) -> PredictionRecord:
    return PredictionRecord(
        id_, time.time(), "price", 1, {"x": np.array([1.0])}, np.array([3.5]), None, None, 1.0
    )


def test_a_window_has_one_row_per_predicted_row_with_inputs_outputs_and_meta(store: Store) -> None:
    store.write_predictions([record("a", ts=100.0), record("b", rows=3, ts=101.0, version=2)])
    window = store.read_window("churn")
    assert list(window.columns) == [
        "charges",
        "calls",
        "plan",
        PREDICTION_COLUMN,
        f"{SCORE_PREFIX}0",
        f"{SCORE_PREFIX}1",
        TARGET_COLUMN,
        "__id__",
        "__ts__",
        "__version__",
        "__variant__",
    ]
    assert window["__id__"].tolist() == ["a", "b", "b", "b"]
    assert window["__ts__"].tolist() == [100.0, 101.0, 101.0, 101.0]
    assert window["__version__"].tolist() == [1, 2, 2, 2]
    assert window["__variant__"].tolist() == ["champion"] * 4
    # Missing values come back missing: NaN, NA and None all travel as JSON null.
    assert window["charges"].tolist()[:3] == [10.0, 10.0, pytest.approx(np.nan, nan_ok=True)]
    assert window["calls"].isna().tolist() == [False, False, False, True]
    assert window["plan"].isna().tolist() == [True, True, False, True]
    assert window[PREDICTION_COLUMN].tolist() == [1, 1, 1, 1]
    assert window[f"{SCORE_PREFIX}1"].tolist() == [0.75] * 4
    assert window[TARGET_COLUMN].isna().all()
    assert store.count("churn") == 2
    assert store.count("other") == 0


def test_a_reused_id_keeps_its_first_prediction(store: Store) -> None:
    store.write_predictions([record("same", ts=1.0)])
    store.write_predictions([record("same", rows=2, ts=2.0), record("next", ts=3.0)])
    window = store.read_window("churn")
    assert window["__id__"].tolist() == ["same", "next"]
    assert window["__ts__"].tolist() == [1.0, 3.0]


def test_feedback_joins_by_id_and_is_idempotent(store: Store) -> None:
    store.write_predictions([record("a"), record("b", rows=2), record("c")])
    first = store.add_feedback("churn", [("a", 1), ("b", [0, "1"]), ("nope", 1)])
    assert first == FeedbackResult(matched=2, unknown=["nope"], changed=0, unchanged=0)
    assert first.new == 2
    again = store.add_feedback("churn", [FeedbackItem("a", [1]), FeedbackItem("b", [0, 1])])
    assert again == FeedbackResult(matched=2, unknown=[], changed=0, unchanged=2)
    changed = store.add_feedback("churn", [("a", 0), ("c", 1)])
    assert changed == FeedbackResult(matched=2, unknown=[], changed=1, unchanged=0)
    window = store.read_window("churn")
    # "1" is stored as the class it spells, 1, not as text.
    assert window[TARGET_COLUMN].tolist() == [0, 0, 1, 1]


def test_a_label_count_that_does_not_match_the_rows_fails_the_whole_batch(store: Store) -> None:
    store.write_predictions([record("one"), record("three", rows=3)])
    with pytest.raises(InvalidInput) as caught:
        store.add_feedback("churn", [("one", 1), ("three", [0, 1])])
    assert str(caught.value) == (
        "feedback id 'three': expected 3 label(s), one per row of the prediction, got 2"
    )
    assert store.read_window("churn")[TARGET_COLUMN].isna().all()  # 'one' was not written


def test_labels_must_be_classes_of_the_model_or_numbers_for_regression(store: Store) -> None:
    store.write_predictions(
        [record("yes-no", classes=["no", "yes"]), record("multi", rows=2), regression_record("r")]
    )
    with pytest.raises(InvalidInput, match=r"label 'maybe' is not a class of this model; "):
        store.add_feedback("churn", [("yes-no", "maybe")])
    with pytest.raises(InvalidInput) as caught:
        store.add_feedback("churn", [("multi", [1, 2])])
    assert str(caught.value) == (
        "feedback id 'multi': label 2 at row 1 is not a class of this model; "
        "expected one of [0, 1]"
    )
    with pytest.raises(InvalidInput, match=r"feedback id 'r': label 'high' is not a number"):
        store.add_feedback("price", [("r", "high")])
    assert store.add_feedback("price", [("r", 4)]).matched == 1
    assert store.read_window("price")[TARGET_COLUMN].tolist() == [4.0]
    assert store.add_feedback("churn", [("yes-no", "yes")]).matched == 1


def test_feedback_for_another_models_prediction_is_unknown(store: Store) -> None:
    store.write_predictions([record("a", model="fraud")])
    assert store.add_feedback("churn", [("a", 1)]).unknown == ["a"]
    with pytest.raises(InvalidInput, match="given twice"):
        store.add_feedback("fraud", [("a", 1), ("a", 0)])


def test_windows_filter_by_variant_version_and_time_and_keep_the_latest(store: Store) -> None:
    store.write_predictions(
        [
            record("old", ts=10.0),
            record("v2", ts=20.0, version=2),
            record("shadow", ts=30.0, variant="shadow"),
            record("new", ts=40.0),
        ]
    )
    ids = lambda frame: frame["__id__"].tolist()  # noqa: E731
    assert ids(store.read_window("churn", variant="champion")) == ["old", "v2", "new"]
    assert ids(store.read_window("churn", version=2)) == ["v2"]
    assert ids(store.read_window("churn", since=20.0, until=40.0)) == ["v2", "shadow"]
    assert ids(store.read_window("churn", limit=2)) == ["shadow", "new"]
    empty = store.read_window("churn", since=1e12)
    assert len(empty) == 0 and TARGET_COLUMN in empty.columns


def test_a_window_mixing_versions_with_other_columns_pads_with_missing(store: Store) -> None:
    other = record("v2", version=2, ts=2.0)
    other.inputs = {"charges": np.array([5.0]), "region": np.array(["eu"], dtype=object)}
    store.write_predictions([record("v1", ts=1.0), other])
    window = store.read_window("churn")
    assert window["region"].isna().tolist() == [True, False]
    assert window["region"].iloc[1] == "eu"
    assert window["calls"].isna().tolist() == [False, True]


def test_purge_deletes_old_predictions_with_their_feedback(store: Store) -> None:
    now = time.time()
    store.write_predictions([record("old", ts=now - 3600), record("new", ts=now)])
    store.add_feedback("churn", [("old", 1), ("new", 0)])
    assert store.purge(older_than_seconds=60) == 1
    assert store.read_window("churn")["__id__"].tolist() == ["new"]
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM feedback")).scalars().all() == ["new"]


def test_opening_is_idempotent_from_several_threads_and_stores(store: Store) -> None:
    store.write_predictions([record("kept")])
    others = [Store(store.url) for _ in range(4)]
    errors: list[BaseException] = []

    def open_it(other: Store) -> None:
        try:
            other.open()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(other,)) for other in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert others[0].count("churn") == 1
    for other in others:
        other.close()


def test_sqlite_runs_in_wal_mode_with_normal_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'deep' / 'store.db'}", busy_timeout_ms=1234)
    with store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
    assert (tmp_path / "deep" / "store.db").exists()


def test_an_unreachable_database_is_unavailable_with_the_password_hidden() -> None:
    store = Store("postgresql://user:secret@127.0.0.1:9/nothing")
    with pytest.raises(Unavailable) as caught:
        store.count("churn")
    assert "secret" not in str(caught.value)
    assert str(caught.value).startswith("store 'postgresql+psycopg://user:***@127.0.0.1:9/")


def test_urls_are_normalised_and_bad_ones_refused() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(InvalidInput, match=r"store URL 'nonsense': cannot be opened"):
        Store("nonsense")


def test_settings_default_to_a_sqlite_file_under_home_and_check_the_log_knobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path)
    assert settings.store_uri == f"sqlite:///{(tmp_path / 'store.db').resolve()}"
    assert (settings.log_sample_rate, settings.log_flush_seconds) == (1.0, 1.0)
    assert (settings.log_buffer_records, settings.retention_days) == (100_000, None)
    monkeypatch.setenv("MLCANARY_STORE_URL", "postgresql://u@h/db")
    assert Settings().store_uri == "postgresql://u@h/db"
    monkeypatch.setenv("MLCANARY_LOG_SAMPLE_RATE", "1.5")
    with pytest.raises(InvalidInput, match="log_sample_rate"):
        Settings()
