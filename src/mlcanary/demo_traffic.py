"""The demo's moving parts: a server process, a client replaying a table, the timeline.

Everything goes through the public surfaces a user has: ``mlcanary serve`` as a child
process, Open Inference Protocol requests and feedback over HTTP on 127.0.0.1, and the
store's signals and events read the way ``mlcanary status`` and ``mlcanary events`` read
them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from mlcanary.config import Settings
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog, Event
from mlcanary.store.signals import Signal, SignalLog


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(settings: Settings, name: str, env: dict[str, str], log_path: Path,
           timeout: float = 120.0) -> Iterator[str]:
    """``mlcanary serve NAME`` as a child process; yields its URL once ready, stops it after."""
    port = free_port()
    environment = {**os.environ, "MLCANARY_HOME": str(settings.home), **env}
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlcanary", "serve", name, "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=environment,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while not _ready(url, name):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the server exited with {process.returncode}; see {log_path}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the server was not ready in {timeout:.0f} s; see {log_path}"
                    )
                time.sleep(0.3)
            yield url
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _ready(url: str, name: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/models/{name}/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Client:
    """Sends rows as V2 requests (sticky by customer) and their labels as feedback."""

    def __init__(self, url: str, name: str, key_column: str, target: str) -> None:
        self.url, self.name, self.key_column, self.target = url, name, key_column, target
        self.sent = 0
        self.failed = 0
        self.by_variant: dict[str, int] = {}
        self._labels: list[dict[str, Any]] = []

    def send(self, rows: pd.DataFrame) -> None:
        """One request for ``rows``; its labels are queued for ``flush_labels``."""
        request_id = uuid.uuid4().hex
        features = rows.drop(columns=self.target)
        body = {"id": request_id, "inputs": [_tensor(features[c]) for c in features.columns]}
        request = urllib.request.Request(
            f"{self.url}/v2/models/{self.name}/infer", json.dumps(body).encode(),
            {"Content-Type": "application/json",
             "X-Mlcanary-Key": str(rows[self.key_column].iloc[0])},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                variant = json.loads(resp.read())["parameters"]["variant"]
        except (urllib.error.URLError, OSError):
            self.failed += 1
            return
        self.sent += len(rows)
        self.by_variant[variant] = self.by_variant.get(variant, 0) + len(rows)
        self._labels.append({"id": request_id, "label": rows[self.target].tolist()})

    def flush_labels(self) -> None:
        """Ground truth arrives: post the queued labels in one feedback request."""
        if not self._labels:
            return
        request = urllib.request.Request(
            f"{self.url}/v2/models/{self.name}/feedback", json.dumps(self._labels).encode(),
            {"Content-Type": "application/json"},
        )
        with contextlib.suppress(urllib.error.URLError, OSError):
            urllib.request.urlopen(request, timeout=30).close()
        self._labels = []


def _tensor(column: pd.Series) -> dict[str, Any]:
    n = len(column)
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = [None if pd.isna(v) else float(v) for v in column]
        return {"name": column.name, "datatype": "FP64", "shape": [n], "data": numbers}
    texts = [None if pd.isna(v) else str(v) for v in column]
    return {"name": column.name, "datatype": "BYTES", "shape": [n], "data": texts}


class Timeline:
    """Prints each new drift window and audit event once, as a line with its time."""

    def __init__(self, settings: Settings, name: str, console: Console) -> None:
        self.store = Store.from_settings(settings).open()
        self.name = name
        self.console = console
        self.signals = SignalLog(self.store)
        self.events = DeploymentLog(self.store)
        self._signal_ids: set[int] = set()
        self._event_ids: set[int] = {e.id for e in self.events.events(name, last=1000)
                                     if e.id is not None}
        self.seen: list[Event] = []

    def close(self) -> None:
        self.store.close()

    def poll(self) -> None:
        """Print what is new since the last poll, in time order."""
        lines = []
        for s in self.signals.latest(self.name, kind="drift", last=20):
            if s.id is not None and s.id not in self._signal_ids:
                self._signal_ids.add(s.id)
                lines.append((s.end_ts, _window_line(s)))
        for e in self.events.events(self.name, last=50):
            if e.id is not None and e.id not in self._event_ids:
                self._event_ids.add(e.id)
                self.seen.append(e)
                lines.append((e.ts, _event_line(e)))
        for _, line in sorted(lines, key=lambda item: item[0]):
            self.console.print(line)

    def happened(self, kind: str, **after: Any) -> bool:
        return any(e.kind == kind and all((e.after or {}).get(k) == v for k, v in after.items())
                   for e in self.seen)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _window_line(s: Signal) -> str:
    share = s.payload.get("drift_share") or 0.0
    columns = ", ".join(s.payload.get("drifted_columns") or []) or "none"
    mark = "[bold red]DRIFT[/]" if s.flagged else "[green]ok[/]"
    return (f"{_clock(s.end_ts)}  window of {s.rows:,} rows ({s.variant} v{s.version}): {mark}; "
            f"{share:.0%} of the model's importance drifted (columns: {columns})")


def _share(after: dict[str, Any]) -> Any:
    return after.get("weights", {}).get("challenger")


def _event_line(e: Event) -> str:
    after = e.after or {}
    if e.kind == "retrain":
        if after.get("status") == "started":
            what = "retraining started"
        else:
            lineage = after.get("lineage", {})
            what = (f"retrained: version {after.get('version')} from "
                    f"{lineage.get('source_rows', 0):,} source rows + "
                    f"{lineage.get('log_rows', 0):,} labelled rows of the log")
    elif e.kind == "retrain_failed":
        what = f"retrain FAILED: {e.cause.get('reason')}"
    elif e.kind == "alert":
        what = f"alert: {e.cause.get('rule')} ({e.cause.get('delivery')})"
    elif e.kind == "deploy":
        what = (f"{after.get('strategy')} of version {after.get('challenger')} against "
                f"{after.get('champion')}: challenger gets {_share(after)}% of traffic")
    elif e.kind == "step":
        what = f"gates passed: challenger traffic -> {_share(after)}%"
    elif e.kind in ("promote", "rollback"):
        failed = [g["reason"] for g in e.cause.get("gates", []) if g.get("passed") is False]
        why = "; ".join(failed) or e.cause.get("reason") or "every gate passed"
        verb = "[bold green]PROMOTED[/]" if e.kind == "promote" else "[bold red]ROLLED BACK[/]"
        what = f"{verb} version {after.get('challenger')}: {why}"
    elif e.kind == "check_failed":
        failed = [g["reason"] for g in e.cause.get("gates", []) if g.get("passed") is False]
        what = (f"check failed ({after.get('failures')}/{after.get('max_failures')}): "
                + "; ".join(failed))
    else:
        what = e.kind
    return f"{_clock(e.ts)}  [bold]{e.kind}[/] by {e.actor}: {what}"
