"""A real `mlcanary serve` process over a model trained on the generated churn table."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcanary.config import Settings
from mlcanary.demo import make_churn
from mlcanary.registry.versions import ModelRegistry
from mlcanary.train.fit import train
from mlcanary.train.publish import publish
from mlcanary.train.spec import TrainSpec
from tests.conftest import with_registry
from tests.waiting import wait_until


@dataclass
class Server:
    url: str
    port: int
    home: Path
    rows: pd.DataFrame
    """Rows as read from the training file, without the target."""
    pipeline: Any
    """The registered pipeline, loaded back in this process."""
    log: Path


@dataclass
class Running:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not become ready")


@contextlib.contextmanager
def running_server(
    home: Path, names: list[str], options: tuple[str, ...] = (), **env: str
) -> Iterator[Running]:
    """Start `mlcanary serve NAMES` on a free port; yield it; stop it by its PID."""
    port = free_port()
    environment = {**os.environ, "MLCANARY_HOME": str(home), **env}
    environment.pop("MLFLOW_TRACKING_URI", None)
    log = home.parent / f"server-{port}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcanary", "serve", *names, "--port", str(port), *options],
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield Running(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def niceness(stat: Path) -> tuple[int, int]:
    """Parent PID and nice value from a ``/proc/PID/stat`` file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[16])


def watch_children(pid: int) -> list[tuple[int, set[int]]]:
    """The ``mlcanary watch`` children of ``pid``: each one's nice and its threads' (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parent, nice = niceness(stat)
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")
            if parent == pid and b"watch" in command:
                threads = {niceness(t)[1] for t in stat.parent.glob("task/*/stat")}
                found.append((nice, threads))
    return found


def one_watcher_at(pid: int, timeout: float = 60) -> None:
    """Wait until ``pid`` has one watch child at its own priority whose monitor thread
    runs at nice 19 (so serving gets the CPU first and the controller not later)."""
    _, own = niceness(Path(f"/proc/{pid}/stat"))
    low = min(own + 19, 19)
    wait_until(lambda: [n for n, threads in watch_children(pid) if low in threads],
               timeout=timeout, what="the watch child's monitor thread at nice 19")
    assert [n for n, _ in watch_children(pid)] == [own]


def registered_churn(tmp_path: Path, rows: int, seed: int, versions: int = 1) -> Path:
    """A home whose registry holds ``versions`` versions of a logistic churn model."""
    home = with_registry(tmp_path / "home")
    data = tmp_path / "churn.csv"
    make_churn(rows, seed=seed).to_csv(data, index=False)
    settings = Settings(home=home)
    spec = TrainSpec.parse(data=data, target="churned", name="churn", model="logistic", folds=3)
    result = train(spec, settings)
    registry = ModelRegistry(settings)
    for _ in range(versions):  # the first is champion, later ones challengers
        publish(result, registry, "<html></html>")
    return home


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = with_registry(tmp_path_factory.mktemp("serve") / "home")
    path = home.parent / "churn.csv"
    make_churn(3000, seed=1).to_csv(path, index=False)
    settings = Settings(home=home)
    result = train(
        TrainSpec.parse(data=path, target="churned", name="churn", model="lightgbm"), settings
    )
    registry = ModelRegistry(settings)
    publish(result, registry, "<html></html>")
    pipeline = registry.load("churn", "champion")
    with running_server(home, ["churn"], MLCANARY_MAX_REQUEST_BYTES=str(2**20)) as running:
        rows = pd.read_csv(path).drop(columns=["churned"])
        url = running.url
        yield Server(url, int(url.rsplit(":", 1)[1]), home, rows, pipeline, running.log)


@dataclass
class InProcess:
    """The app built in this process over the ``server`` fixture's registry, no socket."""

    client: Any
    """A ``starlette.testclient.TestClient``: the app's lifespan runs while it is open."""
    rows: pd.DataFrame
    pipeline: Any
    service: Any
    """The app's ``InferenceService``."""


@pytest.fixture(scope="package")
def inprocess(server: Server) -> Iterator[InProcess]:
    from starlette.testclient import TestClient

    from mlcanary.serve.app import create_app
    from mlcanary.serve.repository import ModelRepository

    settings = Settings(home=server.home, max_request_bytes=2**20, poll_seconds=0)
    repository = ModelRepository(ModelRegistry(settings), ["churn"])
    repository.load()
    app = create_app(settings, repository)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield InProcess(client, server.rows, server.pipeline, app.state.service)
