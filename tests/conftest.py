"""Fixtures shared across the suite: an isolated MLCANARY_HOME and a CLI runner."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a test marked ``longest`` run first, then those with one marked
    ``slow``. A worker takes a whole module (``--dist loadscope``), so a long module that
    started last kept one worker busy after the other had finished."""
    def marked(name: str) -> set[str]:
        return {item.nodeid.split("::")[0] for item in items if item.get_closest_marker(name)}

    longest, slow = marked("longest"), marked("slow")
    items.sort(key=lambda item: (item.nodeid.split("::")[0] not in longest,
                                 item.nodeid.split("::")[0] not in slow))  # stable


MLFLOW_URIS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` writes MLFLOW_TRACKING_URI into os.environ; undo it after
    each test, or a later fixture's Settings would follow another test's registry."""
    before = {key: os.environ.get(key) for key in MLFLOW_URIS}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLCANARY_HOME; MLFLOW_TRACKING_URI unset so the SQLite default is used."""
    path = tmp_path / "home"
    monkeypatch.setenv("MLCANARY_HOME", str(path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return path


def cli_runner(home: Path) -> Callable[..., Result]:
    """Run ``mlcanary ARGS`` in a real subprocess against ``home``."""

    def run(*args: str, timeout: float = 300) -> Result:
        env = {**os.environ, "MLCANARY_HOME": str(home), "COLUMNS": "200"}
        env.pop("MLFLOW_TRACKING_URI", None)
        proc = subprocess.run(
            [sys.executable, "-m", "mlcanary", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def cli_in_process(home: Path) -> Callable[..., Result]:
    """``mlcanary ARGS`` through its entry point in this process: the same parsing, checks
    and error handling as the command, without the seconds a new interpreter spends on its
    imports. For the error paths, which a suite checks by the dozen; a command that does its
    work, and one case of each error test, run in a subprocess (``cli_runner``)."""
    from rich.console import Console

    from mlcanary import cli

    def run(*args: str, timeout: float = 300) -> Result:
        environ, argv, consoles = dict(os.environ), sys.argv, (cli.out, cli.err)
        os.environ.update({"MLCANARY_HOME": str(home), "COLUMNS": "200"})
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        sys.argv = ["mlcanary", *args]
        stdout, stderr, code = io.StringIO(), io.StringIO(), 0
        # The command's consoles took their width when imported; a new process's take 200
        # columns from COLUMNS (``cli_runner``), so these do too.
        cli.out = Console(file=stdout, width=200, highlight=False)
        cli.err = Console(file=stderr, width=200, highlight=False)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            sys.argv, (cli.out, cli.err) = argv, consoles
            os.environ.clear()
            os.environ.update(environ)
        return Result(code, stdout.getvalue(), stderr.getvalue())

    return run


@pytest.fixture
def cli(home: Path) -> Callable[..., Result]:
    return cli_runner(home)


@functools.cache
def _empty_registry() -> bytes:
    """An empty MLflow database with all of MLflow's migrations applied, made once per test
    process: creating one runs ~70 alembic migrations (about 3 s), and the suite makes
    dozens of homes."""
    from mlcanary.config import Settings
    from mlcanary.registry.versions import ModelRegistry

    with tempfile.TemporaryDirectory() as tmp:
        ModelRegistry(Settings(home=Path(tmp))).names()
        return (Path(tmp) / "mlflow.db").read_bytes()


def with_registry(home: Path) -> Path:
    """``home``, holding an empty registry (a copy of one MLflow made) unless it has one."""
    home.mkdir(parents=True, exist_ok=True)
    db = home / "mlflow.db"
    if not db.exists():
        db.write_bytes(_empty_registry())
    return home


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def registry_state(home: Path) -> tuple[str, tuple[str, ...]]:
    """A snapshot of everything the registry has written: DB bytes and artifact files."""
    db = home / "mlflow.db"
    digest = hashlib.sha256(db.read_bytes()).hexdigest() if db.exists() else "absent"
    artifacts = home / "artifacts"
    files = (
        tuple(sorted(str(p.relative_to(home)) for p in artifacts.rglob("*")))
        if artifacts.exists()
        else ()
    )
    return digest, files


def shared_csv(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"../shared/data/{name} is not present (shared data sets are optional)")
    return path
