"""A real server logs what it answers, joins feedback to it, and loses at most one flush
interval when killed."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcanary.demo import make_churn
from mlcanary.registry.profile import TARGET_COLUMN
from mlcanary.store.database import Store
from tests.conftest import cli_runner
from tests.monitor.databases import DATABASES, store_url
from tests.serve.conftest import Running, registered_churn, running_server
from tests.serve.test_swap import request_body
from tests.waiting import wait_until

FLUSH_SECONDS = 0.3
README = Path(__file__).resolve().parents[2] / "README.md"
M = re.MULTILINE


@dataclass
class Logged:
    url: str
    store: Store
    rows: pd.DataFrame


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_churn(tmp_path_factory.mktemp("log"), 1200, seed=11)


@pytest.fixture(scope="module")
def logged(home: Path) -> Iterator[Logged]:
    url = f"sqlite:///{home.parent / 'logged.db'}"
    env = {"MLCANARY_STORE_URL": url, "MLCANARY_LOG_FLUSH_SECONDS": str(FLUSH_SECONDS),
           "MLCANARY_MONITOR": "false"}  # the log alone: no watch child to start
    with running_server(home, ["churn"], **env) as running, Store(url) as store:
        rows = make_churn(50, seed=12).drop(columns=["churned"])
        yield Logged(running.url, store, rows)


def call(
    url: str, path: str, document: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], Any]:
    """Status, JSON body and headers (looked up without regard to case)."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    request = urllib.request.Request(
        url + path, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers


def infer(url: str, rows: pd.DataFrame, request_id: str | None = None) -> dict[str, Any]:
    document = json.loads(request_body(rows))
    if request_id is not None:
        document["id"] = request_id
    status, answer, _ = call(url, "/v2/models/churn/infer", document)
    assert status == 200, answer
    return answer


def feedback(url: str, items: Any) -> tuple[int, dict[str, Any]]:
    status, answer, _ = call(url, "/v2/models/churn/feedback", items)
    return status, answer


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_v1_answers_carry_the_request_id_in_body_and_header(logged: Logged) -> None:
    instances = json.loads(logged.rows.head(2).to_json(orient="records"))
    status, answer, headers = call(logged.url, "/v1/models/churn:predict", {"instances": instances})
    assert status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", answer["id"]) and headers["X-Request-Id"] == answer["id"]
    mine = fresh("v1")
    status, answer, headers = call(
        logged.url, "/v1/models/churn:predict", {"instances": instances}, {"X-Request-Id": mine}
    )
    assert answer["id"] == mine and headers["X-Request-Id"] == mine
    # A label sent right away (within one flush interval) still finds its prediction.
    status, result = feedback(logged.url, [{"id": mine, "label": [1, 0]}])
    assert (status, result["matched"], result["unknown"]) == (200, 1, [])


def test_feedback_joins_answers_and_is_idempotent(logged: Logged) -> None:
    one, two = fresh("one"), fresh("two")
    infer(logged.url, logged.rows.head(1), one)
    infer(logged.url, logged.rows.iloc[1:2], two)
    three = infer(logged.url, logged.rows.iloc[2:5])["id"]  # an id the server made up
    missing = fresh("missing")
    items = [
        {"id": one, "label": 1},
        {"id": two, "label": [0]},
        {"id": three, "label": [0, 1, 1]},
        {"id": missing, "label": 1},
    ]
    status, result = feedback(logged.url, items)
    assert status == 200, result
    assert result == {"matched": 3, "new": 3, "changed": 0, "unchanged": 0, "unknown": [missing]}
    status, result = feedback(logged.url, items[:3])
    assert result == {"matched": 3, "new": 0, "changed": 0, "unchanged": 3, "unknown": []}
    status, result = feedback(logged.url, [{"id": one, "label": 0}, {"id": two, "label": "0"}])
    assert result == {"matched": 2, "new": 0, "changed": 1, "unchanged": 1, "unknown": []}
    window = logged.store.read_window("churn")
    labelled = window.set_index("__id__").loc[[one, two, three], TARGET_COLUMN]
    assert labelled.tolist() == [0, 0, 0, 1, 1]


def test_the_log_holds_the_validated_inputs_and_the_answer(logged: Logged) -> None:
    mine = fresh("rows")
    rows = logged.rows.iloc[10:14].reset_index(drop=True)
    answer = infer(logged.url, rows, mine)
    wait_until(
        lambda: mine in set(logged.store.read_window("churn")["__id__"]),
        what="the answer to reach the log",
    )
    window = logged.store.read_window("churn")
    window = window[window["__id__"] == mine].reset_index(drop=True)
    assert len(window) == 4
    assert (window["__version__"] == 1).all() and (window["__variant__"] == "champion").all()
    assert window["customer_id"].tolist() == rows["customer_id"].tolist()
    np.testing.assert_allclose(window["monthly_charges"], rows["monthly_charges"])
    outputs = {o["name"]: o["data"] for o in answer["outputs"]}
    assert window["__prediction__"].tolist() == outputs["predict"]
    np.testing.assert_allclose(window["__score__1"], outputs["probabilities"][1::2], atol=1e-12)
    with logged.store.engine.connect() as conn:
        latency = conn.exec_driver_sql(
            "SELECT latency_ms FROM predictions WHERE id = ?", (mine,)
        ).scalar_one()
    assert 0 < latency < 10_000


BAD_BODIES = [
    (b"{not json", "request body: not valid JSON"),
    ({"id": "x", "label": 1}, "feedback: expected a JSON list of"),
    ([{"label": 1}], "feedback item 0: missing 'id'"),
    ([{"id": 7, "label": 1}], "feedback item 0 'id': expected the prediction's id as a non-empty"),
    ([{"id": "x"}], "feedback item 0 (id 'x'): missing 'label'"),
    (["x"], "feedback item 0: expected an object"),
    ([{"id": "x", "label": {"a": 1}}], "feedback item 0 (id 'x') 'label': expected one value"),
    ([{"id": "x", "label": 1}, {"id": "x", "label": 0}], "feedback items 0 and 1: the same id"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES, ids=[m for _, m in BAD_BODIES])
def test_malformed_feedback_is_400_naming_the_field(
    logged: Logged, body: Any, message: str
) -> None:
    status, answer = feedback(logged.url, body)
    assert status == 400 and answer["error"].startswith(message), answer


def test_labels_are_checked_against_the_prediction_and_nothing_is_half_written(
    logged: Logged,
) -> None:
    good, multi = fresh("good"), fresh("multi")
    infer(logged.url, logged.rows.head(1), good)
    infer(logged.url, logged.rows.head(3), multi)
    status, answer = feedback(logged.url, [{"id": good, "label": 1}, {"id": multi, "label": 1}])
    assert status == 400
    assert answer["error"] == (
        f"feedback id '{multi}': expected 3 label(s), one per row of the prediction, got 1"
    )
    status, answer = feedback(logged.url, [{"id": good, "label": "churned"}])
    assert status == 400
    assert answer["error"] == (
        f"feedback id '{good}': label 'churned' is not a class of this model; "
        "expected one of [0, 1]"
    )
    window = logged.store.read_window("churn")
    assert window.loc[window["__id__"] == good, TARGET_COLUMN].isna().all()
    status, answer, _ = call(logged.url, "/v2/models/nope/feedback", [])
    assert status == 404 and "model 'nope'" in answer["error"]


def test_metrics_count_logged_and_dropped_records(logged: Logged) -> None:
    infer(logged.url, logged.rows.head(1))
    pattern = r'^mlcanary_prediction_log_records_total\{model="churn"\} (\S+)$'

    def written() -> str | None:
        with urllib.request.urlopen(f"{logged.url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        found = re.search(pattern, text, M)
        return text if found and float(found.group(1)) >= 1 else None

    text = wait_until(written, what="a written record to be counted")
    assert re.search(r'^mlcanary_prediction_log_dropped_total\{model="churn"\} 0\.0$', text, M)
    assert re.search(r"^mlcanary_prediction_log_buffer_records \d", text, M)


def test_no_log_serves_without_logging(home: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'off.db'}"
    with running_server(home, ["churn"], ("--no-log",), MLCANARY_STORE_URL=url) as running:
        mine = fresh("off")
        infer(running.url, make_churn(2, seed=3).drop(columns=["churned"]).head(1), mine)
        status, answer = feedback(running.url, [{"id": mine, "label": 1}])
        assert (status, answer["unknown"]) == (200, [mine])  # feedback still works
        with urllib.request.urlopen(f"{running.url}/metrics", timeout=10) as resp:
            assert b"mlcanary_prediction_log" not in resp.read()
    with Store(url) as store:
        assert store.count("churn") == 0


def answer_then_kill(running: Running, rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Answered requests, then > one flush interval of quiet, more requests, SIGKILL."""
    settled = [infer(running.url, rows.iloc[i : i + 1])["id"] for i in range(30)]
    # The scenario itself is quiet time: the bound is one interval, the rest is for a busy
    # machine. Nothing observable marks its end, so this is the suite's one deliberate sleep.
    time.sleep(FLUSH_SECONDS * 5)
    recent = [infer(running.url, rows.iloc[i : i + 1])["id"] for i in range(5)]
    running.proc.send_signal(signal.SIGKILL)
    assert running.proc.wait(timeout=30) == -signal.SIGKILL
    return settled, recent


@pytest.mark.parametrize("database", DATABASES)
def test_sigkill_loses_at_most_the_last_flush_interval(
    home: Path, tmp_path: Path, database: str
) -> None:
    rows = make_churn(40, seed=13).drop(columns=["churned"])
    with store_url(database, tmp_path) as url:
        env = {"MLCANARY_STORE_URL": url, "MLCANARY_LOG_FLUSH_SECONDS": str(FLUSH_SECONDS),
               "MLCANARY_MONITOR": "false"}  # the log alone: no watch child to start
        with running_server(home, ["churn"], **env) as running:
            settled, recent = answer_then_kill(running, rows)
        with Store(url) as store:
            logged = set(store.read_window("churn")["__id__"])
        assert set(settled) <= logged, f"lost: {sorted(set(settled) - logged)}"
        assert logged <= set(settled) | set(recent)


def test_the_readme_feedback_example_is_answered(logged: Logged) -> None:
    text = README.read_text()
    match = re.search(
        r"curl -s localhost:8080(/v2/models/churn/feedback) .*? -d '(.*?)'\n# (.*?)\n```",
        text,
        re.DOTALL,
    )
    assert match, "the README lost its feedback example"
    path, payload, shown = match.groups()
    status, answer, _ = call(logged.url, path, payload.encode())
    assert status == 200, answer
    assert answer.keys() == json.loads(shown).keys()
    assert answer["unknown"] == [item["id"] for item in json.loads(payload)]  # never answered


def test_the_feedback_command_writes_to_the_same_store(
    logged: Logged, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    single, multi = fresh("cli-one"), fresh("cli-multi")
    infer(logged.url, logged.rows.head(1), single)
    infer(logged.url, logged.rows.head(2), multi)
    wait_until(
        lambda: {single, multi} <= set(logged.store.read_window("churn")["__id__"]),
        what="both answers to reach the log",
    )
    labels = pd.DataFrame(
        {"id": [single, multi, multi, "never"], "row": [0, 1, 0, 0], "label": [1, 1, 0, 1]}
    )
    labels.to_csv(tmp_path / "labels.csv", index=False)
    monkeypatch.setenv("MLCANARY_STORE_URL", logged.store.url)
    cli = cli_runner(home)
    result = cli("feedback", "churn", str(tmp_path / "labels.csv"))
    assert result.code == 0, result.stderr
    assert "unknown ids (no prediction of churn logged): never" in result.stdout
    window = logged.store.read_window("churn").set_index("__id__")
    assert window.loc[[single, multi], TARGET_COLUMN].tolist() == [1, 0, 1]
    again = cli("feedback", "churn", str(tmp_path / "labels.csv"))
    assert again.code == 0 and re.search(r"│\s+2\s+│\s+0\s+│\s+0\s+│\s+2\s+│\s+1\s+│", again.stdout)

    labels.loc[0, "label"] = 7
    labels.to_csv(tmp_path / "bad.csv", index=False)
    bad = cli("feedback", "churn", str(tmp_path / "bad.csv"))
    assert bad.code == 2
    assert bad.stderr.strip() == (
        f"error: feedback id '{single}': label 7 is not a class of this model; "
        "expected one of [0, 1]"
    )
    labels.drop(columns=["label"]).to_csv(tmp_path / "nolabel.csv", index=False)
    missing = cli("feedback", "churn", str(tmp_path / "nolabel.csv"))
    assert missing.code == 2 and "missing column(s) ['label']" in missing.stderr
    typo = cli("feedback", "chrun", str(tmp_path / "labels.csv"))
    assert typo.code == 2 and typo.stderr.startswith("error: model 'chrun': no predictions")


def test_retention_deletes_old_predictions_while_serving(home: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'retention.db'}"
    env = {
        "MLCANARY_STORE_URL": url,
        "MLCANARY_LOG_FLUSH_SECONDS": str(FLUSH_SECONDS),
        "MLCANARY_RETENTION_DAYS": str(2 / 86400),  # two seconds
    }
    rows = make_churn(2, seed=5).drop(columns=["churned"])
    with running_server(home, ["churn"], **env) as running, Store(url) as store:
        infer(running.url, rows.head(1))
        wait_until(lambda: store.count("churn") == 1, what="the answer to reach the log")
        wait_until(lambda: store.count("churn") == 0, what="retention to delete it")
