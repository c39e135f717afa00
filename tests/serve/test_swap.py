"""Hot swap under load: the alias moves twice while clients keep sending."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from mlcanary.config import Settings
from mlcanary.registry.versions import ModelRegistry
from tests.serve.conftest import registered_churn, running_server
from tests.waiting import wait_until

CLIENTS = 4
SWAP_TIMEOUT = 60.0


def request_body(rows: pd.DataFrame) -> bytes:
    inputs = []
    for name in rows.columns:
        column = rows[name]
        if pd.api.types.is_numeric_dtype(column):
            data = [None if pd.isna(v) else float(v) for v in column]
            inputs.append({"name": name, "datatype": "FP64", "shape": [len(rows)], "data": data})
        else:
            data = column.astype(str).tolist()
            inputs.append({"name": name, "datatype": "BYTES", "shape": [len(rows)], "data": data})
    return json.dumps({"inputs": inputs}).encode()


@pytest.mark.slow
def test_alias_moves_twice_under_load_without_a_failed_request(tmp_path: Path) -> None:
    home = registered_churn(tmp_path, 1500, seed=2, versions=3)  # 1 champion; 2, 3 waiting
    registry = ModelRegistry(Settings(home=home))
    body = request_body(pd.read_csv(tmp_path / "churn.csv").drop(columns=["churned"]).head(4))
    outcomes: list[list[tuple[int, str]]] = [[] for _ in range(CLIENTS)]
    stop = threading.Event()

    def client(index: int, url: str) -> None:
        while not stop.is_set():
            request = urllib.request.Request(
                f"{url}/v2/models/churn/infer",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    outcomes[index].append((resp.status, json.loads(resp.read())["model_version"]))
            except urllib.error.HTTPError as exc:
                outcomes[index].append((exc.code, ""))

    def everyone_on(version: int) -> bool:
        """Every client has had a few answers from ``version``."""
        return all(sum(v == str(version) for _, v in results[-20:]) >= 3 for results in outcomes)

    with running_server(home, ["churn"], MLCANARY_POLL_SECONDS="0.2") as running:
        url = running.url
        threads = [threading.Thread(target=client, args=(i, url)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            for version in (2, 3):
                wait_until(lambda v=version - 1: everyone_on(v), SWAP_TIMEOUT,
                           what=f"every client to be answered by version {version - 1}")
                registry.set_alias("churn", "champion", version)
            wait_until(lambda: everyone_on(3), SWAP_TIMEOUT,
                       what="every client to be answered by version 3")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    answered = [outcome for results in outcomes for outcome in results]
    assert answered and all(status == 200 for status, _ in answered), {s for s, _ in answered}
    assert {v for _, v in answered} == {"1", "2", "3"}
    for results in outcomes:  # each client sees versions only move forward
        versions = [int(v) for _, v in results]
        assert versions == sorted(versions)
