"""``mlcanary serve`` of this tree against an earlier commit, over HTTP, as users run it.

Both versions serve the same registered models from one registry, each server pinned to
core 0 with the prediction log and the monitor on (every request logged), so the watcher
child(ren) each server starts share its core, as on a small box; a third server, this
tree with the log and the monitor off, gives the cost of logging. Two models: the demo's
churn table (every column kind, one tensor per column, as ``tritonclient`` sends it) and
scikit-learn's breast-cancer table (30 numbers, one ``input-0`` [n, 30] FP64 tensor, as
NumPy clients send it), both trained once by the current tree. ``wrk`` (core 1) sends
the same bodies to each server in turn, the order rotating between rounds, the other two
servers and their children stopped (SIGSTOP) meanwhile, as one server runs on a box (their
watchers' periodic analyses would otherwise take core 0 from whichever server is being
measured); each ratio is
one server's requests/s over another's in the same round, and the figure is their
geometric mean (with the range of rounds).

    .venv/bin/python benchmarks/serve_versions.py --against ffc6c8d   # about 8 min
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from serving import BIN, WRK_LUA, free_port, machine, rss_mb, run, start, stop, wrk
from sklearn.datasets import load_breast_cancer
from versions import sources

from mlcanary.demo import make_churn
from mlcanary.serve.messages import encode_request
from mlcanary.serve.validation import tensors_from_frame
from mlcanary.train.schema import infer_signature

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
WORKLOADS = {  # name: model, rows per request, connections
    "1 row, per column, 1 conn": ("bench", 1, 1),
    "1 row, per column, 16 conn": ("bench", 1, 16),
    "1 row, per column, 64 conn": ("bench", 1, 64),
    "64 rows, per column, 64 conn": ("bench", 64, 64),
    "1 row, input-0, 16 conn": ("wide", 1, 16),
    "1 row, input-0, 64 conn": ("wide", 1, 64),
    "64 rows, input-0, 64 conn": ("wide", 64, 64),
}
SERVERS = ("before", "now", "now, log off")
"""Logged and monitored at the earlier commit and now; now without the log and monitor."""
LOGGED = {"MLCANARY_LOG_SAMPLE_RATE": "1", "MLCANARY_MONITOR": "true"}
QUIET = {"MLCANARY_LOG_SAMPLE_RATE": "0", "MLCANARY_MONITOR": "false"}
console = Console(highlight=False, width=120)


def prepare(tmp: Path, rows: int) -> tuple[dict[str, str], dict[str, Path]]:
    frame = make_churn(rows)
    frame.to_csv(tmp / "churn.csv", index=False)
    wide = load_breast_cancer(as_frame=True).frame
    wide.to_csv(tmp / "wide.csv", index=False)
    env = {**os.environ, "MLCANARY_HOME": str(tmp / "home"), "MLCANARY_ACCESS_LOG": "false"}
    for table, target, name in (("churn.csv", "churned", "bench"), ("wide.csv", "target", "wide")):
        run([str(BIN / "mlcanary"), "train", table, "--target", target, "--name", name],
            env=env, cwd=tmp)
    signature = infer_signature(frame, "churned", "classification")  # as training did
    features = frame.drop(columns="churned").iloc[100:]
    numbers = wide.drop(columns="target").to_numpy(dtype=float)
    bodies = {}
    for name, (model, n, _) in WORKLOADS.items():
        if model == "bench":
            body, _ = encode_request(tensors_from_frame(features.head(n), signature), binary=[])
        else:
            body = json.dumps({"inputs": [{
                "name": "input-0", "datatype": "FP64", "shape": [n, numbers.shape[1]],
                "data": numbers[:n].ravel().tolist()}]}).encode()
        path = tmp / f"body-{len(bodies)}.json"
        path.write_bytes(body)
        bodies[name] = path
    (tmp / "json.lua").write_text(WRK_LUA)
    return env, bodies


def tree(pid: int) -> list[int]:
    """A server and its children (the watchers)."""
    return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]


@contextlib.contextmanager
def alone(servers: dict[str, dict[str, Any]], version: str) -> Iterator[None]:
    """Run a measurement with the other servers' process trees stopped (SIGSTOP), as one
    server runs on a box: their watchers' analyses would otherwise share core 0 with it."""
    others = [p for v, s in servers.items() if v != version for p in tree(s["proc"].pid)]
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


def tree_mb(pid: int) -> dict[str, float]:
    """Resident memory of a server and of each child (the watchers), MB."""
    kids = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    found = {"server": rss_mb(pid), **{f"child {i + 1}": rss_mb(k) for i, k in enumerate(kids)}}
    return {**found, "tree": sum(found.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", required=True, help="the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    args = parser.parse_args()
    live: list[Any] = []
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        w: {v: [] for v in SERVERS} for w in WORKLOADS}
    memory: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        try:
            with console.status("training the churn and breast-cancer models ..."):
                env, bodies = prepare(tmp, args.rows)
            copies = sources(args.against, tmp)
            servers = {}
            for k, version in enumerate(SERVERS):
                src = copies["before" if version == "before" else "now"]
                setting = QUIET if version.endswith("log off") else LOGGED
                where = {**env, **setting, "PYTHONPATH": str(src),
                         "MLCANARY_STORE_URL": f"sqlite:///{tmp / f'store-{k}.db'}"}
                imported = run([sys.executable, "-c", "import mlcanary; print(mlcanary.__file__)"],
                               env=where).strip()
                if not imported.startswith(str(src)):
                    raise SystemExit(f"{version}: imported {imported}, not the copy under {src}")
                port = free_port()
                servers[version] = start(
                    version, [sys.executable, "-m", "mlcanary", "serve", "bench", "wide",
                              "--port", str(port)],
                    port, tmp / f"server-{k}.log", live, env=where, cwd=tmp)
            with Progress(console=console) as progress:
                task = progress.add_task("rotating wrk runs",
                                         total=args.rounds * len(WORKLOADS) * len(SERVERS))
                for turn in range(args.rounds):
                    for workload, (model, _, conns) in WORKLOADS.items():
                        shift = turn % len(SERVERS)
                        for version in SERVERS[shift:] + SERVERS[:shift]:
                            with alone(servers, version):
                                found = wrk(servers[version]["port"], bodies[workload],
                                            tmp / "json.lua", conns, args.duration, model=model)
                            if found["non_2xx"] or found["socket_errors"]:
                                raise SystemExit(f"{version}: failed requests in {workload}")
                            runs[workload][version].append(found)
                            progress.advance(task)
            memory = {v: tree_mb(servers[v]["proc"].pid) for v in SERVERS}
        finally:
            for process in live:
                stop(process)
    report(args, runs, memory)


def ratio(now: list[dict[str, float]], base: list[dict[str, float]]) -> tuple[float, list[float]]:
    """The geometric mean of the rounds' requests/s ratios, and the ratios."""
    ratios = [n["rps"] / b["rps"] for n, b in zip(now, base, strict=True)]
    return math.exp(sum(map(math.log, ratios)) / len(ratios)), ratios


def report(args: argparse.Namespace, runs: dict[str, dict[str, list[dict[str, float]]]],
           memory: dict[str, dict[str, float]]) -> None:
    table = Table(title=f"mlcanary serve, log and monitor on, pinned with its watchers: "
                        f"now / at {args.against}; log on / off")
    for column in ("workload", "req/s before", "req/s now", "now / before", "log off",
                   "on / off", "p99 ms before -> now"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    figures = {}
    for workload, found in runs.items():
        median = {v: {k: statistics.median(r[k] for r in found[v]) for k in found[v][0]}
                  for v in found}
        versus, ratios = ratio(found["now"], found["before"])
        logged, log_ratios = ratio(found["now"], found["now, log off"])
        figures[workload] = {"medians": median, "now_over_before": versus, "ratios": ratios,
                             "log_on_over_off": logged, "log_ratios": log_ratios}
        table.add_row(
            workload, f"{median['before']['rps']:,.0f}", f"{median['now']['rps']:,.0f}",
            f"{versus:.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
            f"{median['now, log off']['rps']:,.0f}",
            f"{logged:.2f} ({min(log_ratios):.2f}-{max(log_ratios):.2f})",
            f"{median['before']['p99_ms']:.2f} -> {median['now']['p99_ms']:.2f}",
        )
    console.print(table)
    for version, found in memory.items():
        console.print(f"{version}: " + ", ".join(f"{k} {v:,.0f} MB" for k, v in found.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "serve_versions.json"
    path.write_text(json.dumps({"against": args.against, "rounds": args.rounds,
                                "duration_s": args.duration, "machine": machine(),
                                "figures": figures, "memory_mb": memory}, indent=2))
    figure = go.Figure()
    for version in SERVERS:
        label = f"at {args.against}" if version == "before" else version
        figure.add_bar(name=label, x=list(figures),
                       y=[f["medians"][version]["rps"] for f in figures.values()])
    figure.update_layout(title="mlcanary serve, log and monitor on, watchers on the server's "
                               "core", yaxis_title="requests/s (median of rounds)",
                         barmode="group")
    figure.write_html(OUT / "serve_versions.html", include_plotlyjs="cdn")
    console.print(f"wrote {path} and {OUT / 'serve_versions.html'}")


if __name__ == "__main__":
    sys.exit(main())
