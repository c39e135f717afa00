"""SIGTERM drains: requests in flight when it arrives are answered, then the server exits."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from mlcanary.config import Settings
from mlcanary.demo import make_churn
from mlcanary.registry.versions import ModelRegistry
from mlcanary.train.fit import train
from mlcanary.train.publish import publish
from mlcanary.train.spec import TrainSpec
from tests.conftest import with_registry
from tests.control.faults import Faulty
from tests.serve.conftest import (
    niceness,
    one_watcher_at,
    registered_churn,
    running_server,
    watch_children,
)
from tests.serve.test_swap import request_body

IN_FLIGHT = 3
BIG_ROWS = 5_000
HOLD_SECONDS = 2.0
"""Each call on a big request sleeps this long first: requests are surely in flight when the
test looks (a fast machine answered all three between two looks)."""


def held_churn(tmp_path: Path) -> Path:
    """A home whose champion holds every call on ``BIG_ROWS`` rows for ``HOLD_SECONDS``."""
    home = with_registry(tmp_path / "home")
    data = tmp_path / "churn.csv"
    make_churn(1500, seed=4).to_csv(data, index=False)
    settings = Settings(home=home)
    result = train(TrainSpec.parse(data=data, target="churned", name="churn",
                                   model="logistic", folds=3), settings)
    frozen = result.pipeline.estimator
    frozen.estimator = Faulty(frozen.estimator, hold_rows=BIG_ROWS, hold_seconds=HOLD_SECONDS)
    publish(result, ModelRegistry(settings), "<html></html>")
    return home


def in_flight(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    match = re.search(r"^mlcanary_requests_in_flight (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.slow
def test_sigterm_answers_requests_in_flight_then_exits(tmp_path: Path) -> None:
    home = held_churn(tmp_path)
    rows = make_churn(BIG_ROWS, seed=5).drop(columns=["churned"])
    body = request_body(pd.DataFrame(rows))
    answers: list[int | str] = []

    def send(url: str) -> None:
        request = urllib.request.Request(
            f"{url}/v2/models/churn/infer", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as resp:
                answers.append(resp.status)
                assert len(json.loads(resp.read())["outputs"][0]["data"]) == BIG_ROWS
        except Exception as exc:  # recorded, then asserted on below
            answers.append(type(exc).__name__)

    with running_server(home, ["churn"], MLCANARY_MAX_QUEUE_ROWS="1000000",
                        MLCANARY_MONITOR="false") as running:
        threads = [threading.Thread(target=send, args=(running.url,)) for _ in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while in_flight(running.url) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        held = in_flight(running.url)
        assert held >= 1, ("no request was in flight", answers)
        running.proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=120)
        # uvicorn drains, then re-raises the signal it caught, so the status is -SIGTERM.
        assert running.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    # Every request the app held at the signal is answered; one whose connection was not
    # yet read may be refused, as uvicorn stops reading new requests first.
    assert answers.count(200) >= held, (held, answers)
    assert all(
        a == 200 or a in ("ConnectionResetError", "RemoteDisconnected", "URLError") for a in answers
    ), answers


@pytest.mark.slow
def test_several_workers_serve_the_same_model(tmp_path: Path) -> None:
    home = registered_churn(tmp_path, 800, seed=6)
    body = request_body(make_churn(3, seed=7).drop(columns=["churned"]))
    with running_server(home, ["churn"], options=("--workers", "2")) as running:
        if Path("/proc/self/stat").exists():  # one watcher for both workers
            one_watcher_at(running.proc.pid)
            workers = [p for p in Path("/proc").glob("[0-9]*/stat")
                       if _parent(p) == running.proc.pid]
            assert all(watch_children(int(p.parent.name)) == [] for p in workers)
        for _ in range(6):
            request = urllib.request.Request(
                f"{running.url}/v2/models/churn/infer",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as resp:
                assert resp.status == 200
                assert json.loads(resp.read())["model_version"] == "1"


def _parent(stat: Path) -> int | None:
    try:
        return niceness(stat)[0]
    except OSError:  # the process ended while we looked
        return None
