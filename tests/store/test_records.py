"""Binary prediction records: every column kind comes back as it went in, on both
databases, and rows older stores logged as JSON still read the same."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX
from mlcanary.store.database import Store
from mlcanary.store.records import BLOCK_ROWS, RECORD, PredictionRecord, encode, unpack
from mlcanary.store.schema import MIGRATIONS
from tests.monitor.databases import DATABASES, store_url


def every_kind(rows: int, seed: int) -> dict[str, Any]:
    """Columns as validation makes them: numpy numbers (NaN for missing), nullable
    integers and booleans with missing values, text with None, dates as text."""
    rng = np.random.default_rng(seed)
    k = np.arange(rows)
    return {
        "charges": np.where(k % 3 == 1, np.nan, rng.normal(size=rows)),
        "count": rng.integers(-2**62, 2**62, size=rows),  # beyond float's 2**53
        "flag": rng.random(rows) < 0.5,
        "small": rng.random(rows).astype(np.float32),
        "calls": pd.arrays.IntegerArray(k.astype(np.int64), k % 4 == 2),
        "autopay": pd.array([None if i % 5 == 0 else bool(i % 2) for i in range(rows)],
                            dtype="boolean"),
        "plan": np.asarray(["basic" if i % 2 else None for i in range(rows)], dtype=object),
        "signup": np.asarray([f"2026-01-{1 + i % 28:02d}" for i in range(rows)], dtype=object),
    }


def record_of(inputs: dict[str, Any], rows: int, *, classes: list[Any] | None,
              version: int = 1) -> PredictionRecord:
    rng = np.random.default_rng(rows)
    if classes is None:  # regression
        predicted, proba = rng.normal(size=rows), None
    else:
        proba = rng.dirichlet(np.ones(len(classes)), size=rows)
        predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return PredictionRecord(uuid.uuid4().hex, time.time(), "m", version, inputs, predicted,
                            proba, classes, 1.0)


def expected(inputs: dict[str, Any]) -> dict[str, list[Any]]:
    """What a window must read back: Python values, missing as None or NaN."""
    out = {}
    for name, values in inputs.items():
        listed = np.asarray(values, dtype=object).tolist()
        out[name] = [None if v is pd.NA else v for v in listed]
    return out


def same(read: list[Any], wanted: list[Any]) -> bool:
    missing = [v is None or (isinstance(v, float) and v != v) for v in read]
    return all(
        m == (w is None or (isinstance(w, float) and w != w)) and (m or r == w)
        for r, w, m in zip(read, wanted, missing, strict=True))


@pytest.mark.parametrize("kind", DATABASES)
@pytest.mark.parametrize("rows", [1, BLOCK_ROWS - 1, BLOCK_ROWS, 64])
@pytest.mark.parametrize("classes", [["no", "yes"], [0, 1, 2], None])
def test_every_column_kind_reads_back_as_it_was_logged(
    kind: str, rows: int, classes: list[Any] | None, tmp_path: Path
) -> None:
    batch = [every_kind(rows, seed) for seed in range(3)]
    records = [record_of(inputs, rows, classes=classes) for inputs in batch]
    with store_url(kind, tmp_path) as url, Store(url) as store:
        store.write_predictions(records)
        frame = store.read_window("m").set_index("__id__", drop=False)
    for inputs, rec in zip(batch, records, strict=True):
        mine = frame.loc[[rec.id]]
        assert list(mine.columns[:len(inputs)]) == list(inputs)  # the order they came in
        for name, values in expected(inputs).items():
            read = mine[name].tolist()
            if inputs[name].dtype == np.float32:  # JSON writes float32's shortest digits
                read = np.asarray(read, dtype=np.float32).tolist()
            assert same(read, values), (name, read, values)
        assert mine[PREDICTION_COLUMN].tolist() == rec.predicted.tolist()
        for k, label in enumerate(classes or []):
            assert rec.proba is not None
            assert mine[f"{SCORE_PREFIX}{label}"].tolist() == rec.proba[:, k].tolist()
    assert frame["count"].tolist() == [v for b in batch for v in b["count"].tolist()]


def test_many_rows_travel_as_blocks_and_few_as_json() -> None:
    few, many = (record_of(every_kind(n, 0), n, classes=["a", "b"]) for n in (1, 64))
    (one, lots) = encode([few, many])
    for row in (one, lots):
        assert row["inputs"][:1] == RECORD and row["outputs"][:1] == RECORD
    header, _ = unpack(one["inputs"])
    assert header["blocks"] == []
    header, columns = unpack(lots["inputs"])
    assert {b[0] for b in header["blocks"]} == {"<f8", "<i8", "|b1", "<f4"}
    assert isinstance(columns["charges"], np.ndarray) and len(columns["charges"]) == 64
    # 64 rows of 30 measured numbers: the record is under half their JSON document
    rng = np.random.default_rng(1)
    numbers = {f"x{k}": rng.normal(size=64) for k in range(30)}
    (wide,) = encode([record_of(numbers, 64, classes=[0, 1])])
    document = orjson.dumps(numbers, option=orjson.OPT_SERIALIZE_NUMPY)
    assert len(wide["inputs"]) < 0.5 * len(document)


@pytest.mark.parametrize("kind", DATABASES)
def test_json_rows_of_a_store_before_binary_records_read_the_same_after_migrating(
    kind: str, tmp_path: Path
) -> None:
    """A store at revision 0001 holds JSON text, as mlcanary wrote it then; opening it
    migrates the columns to binary, and its rows read back beside new binary ones."""
    with store_url(kind, tmp_path) as url:
        driver = url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(driver)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(text(
                "INSERT INTO predictions (id, ts, model, variant, version, rows, inputs, "
                "outputs, latency_ms) VALUES ('old', :ts, 'm', 'champion', 1, 2, :inputs, "
                ":outputs, 1.0)"), {
                    "ts": time.time() - 10,
                    "inputs": '{"charges": [1.5, null], "plan": ["basic", null]}',
                    "outputs": '{"predict": ["no", "yes"], "probabilities": [[0.9, 0.1], '
                               '[0.2, 0.8]], "classes": ["no", "yes"]}'})
        engine.dispose()
        with Store(url) as store:
            new = record_of({"charges": np.array([2.5, 3.5]),
                             "plan": np.asarray(["pro", "pro"], dtype=object)}, 2,
                            classes=["no", "yes"])
            store.write_predictions([new])
            frame = store.read_window("m")
            assert store.add_feedback("m", [("old", ["no", "yes"])]).matched == 1
    assert frame["__id__"].tolist() == ["old", "old", new.id, new.id]
    assert same(frame["charges"].tolist(), [1.5, None, 2.5, 3.5])
    assert frame["plan"].tolist()[:1] == ["basic"] and frame["plan"].tolist()[2:] == ["pro"] * 2
    assert frame[PREDICTION_COLUMN].tolist()[:2] == ["no", "yes"]
    assert frame[f"{SCORE_PREFIX}yes"].tolist()[:2] == [0.1, 0.8]
