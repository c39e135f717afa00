"""Start-up time and memory of ``mlcanary serve`` with the monitor on, against an earlier commit.

Each round starts ``mlcanary serve`` of the demo's churn model (every column kind, trained
once by the current tree, one registry for both versions) with the prediction log and the
monitor on, as a user runs it: the time from process start to the first answered V2 infer,
then 10,000 one-row requests over one keep-alive connection, a pause for the watcher to
analyse them, and the resident memory of the server, of each child and of the tree (the
sum of their RSS, and their PSS, which counts the pages they share once). The
versions alternate within a round; the first start of each is a warm-up (file caches) and
is not counted. Figures are medians of rounds, and ratios now / before.

    .venv/bin/python benchmarks/processes.py --against 239d84c   # about 4 min
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from machine import machine
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from serving import BIN, free_port, run, stop
from versions import sources

from mlcanary.demo import make_churn
from mlcanary.serve.messages import encode_request
from mlcanary.serve.validation import tensors_from_frame
from mlcanary.train.schema import infer_signature

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
console = Console(highlight=False, width=120)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: each shared page counted once across the processes mapping
    it (libpython, NumPy, pyarrow ... are mapped by the server and its child alike, and a
    sum of RSS counts them twice)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def one_start(src: Path, env: dict[str, str], body: bytes, requests: int, settle: float,
              cwd: Path) -> dict[str, Any]:
    """Start, time the first answer, send ``requests``, settle, measure, stop."""
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mlcanary", "serve", "bench", "--port",
                             str(port)], env={**env, "PYTHONPATH": str(src)}, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = None
        while time.perf_counter() - began < 180:
            if proc.poll() is not None:
                raise SystemExit(f"{src}: the server exited {proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/v2/models/bench/infer", body,
                             {"Content-Type": "application/json"})
                answer = conn.getresponse()
                answer.read()
                if answer.status != 200:
                    raise SystemExit(f"{src}: the first infer answered {answer.status}")
                break
            except OSError:
                time.sleep(0.01)
        first = time.perf_counter() - began
        assert conn is not None
        for _ in range(requests):
            conn.request("POST", "/v2/models/bench/infer", body,
                         {"Content-Type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise SystemExit(f"{src}: an infer answered {answer.status}")
        time.sleep(settle)  # the watcher reads and analyses what was logged
        pids = children(proc.pid)
        kids = {f"child {i + 1}": rss_mb(pid) for i, pid in enumerate(pids)}
        server = rss_mb(proc.pid)
        return {"first_answer_s": first, "server_mb": server, **kids,
                "children": len(kids), "tree_mb": server + sum(kids.values()),
                "tree_pss_mb": sum(pss_mb(pid) for pid in [proc.pid, *pids])}
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", required=True, help="the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--settle", type=float, default=12.0,
                        help="seconds after the requests before measuring")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "now": []}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        frame = make_churn(3000, seed=1)
        frame.to_csv(tmp / "churn.csv", index=False)
        env = {**os.environ, "MLCANARY_HOME": str(tmp / "home"), "MLCANARY_ACCESS_LOG": "false",
               "MLCANARY_MONITOR_SECONDS": "2"}
        with console.status("training the churn model ..."):
            run([str(BIN / "mlcanary"), "train", "churn.csv", "--target", "churned", "--name",
                 "bench"], env=env, cwd=tmp)
        signature = infer_signature(frame, "churned", "classification")
        tensors = tensors_from_frame(frame.drop(columns="churned").iloc[[7]], signature)
        body, _ = encode_request(tensors, binary=[])
        copies = sources(args.against, tmp)
        with Progress(console=console) as progress:
            task = progress.add_task("starts", total=(args.rounds + 1) * 2)
            for turn in range(args.rounds + 1):
                order = ("before", "now") if turn % 2 == 0 else ("now", "before")
                for version in order:
                    found = one_start(copies[version], env, body, args.requests if turn else 200,
                                      args.settle if turn else 1.0, tmp)
                    if turn:  # the first round warms the file caches
                        runs[version].append(found)
                    progress.advance(task)
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> None:
    keys = sorted({k for r in runs["before"] + runs["now"] for k in r if k != "children"},
                  key=lambda k: (k != "first_answer_s", k != "server_mb", k == "tree_mb", k))
    median = {v: {k: statistics.median(r.get(k, 0.0) for r in rs) for k in keys}
              for v, rs in runs.items()}
    table = Table(title=f"mlcanary serve, monitor on, after {args.requests:,} requests: "
                        f"now / at {args.against}")
    for column in ("figure", "before", "now", "now / before"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for key in keys:
        before, now = median["before"][key], median["now"][key]
        unit = " s" if key.endswith("_s") else " MB"
        table.add_row(key.removesuffix("_s").removesuffix("_mb").replace("_", " "),
                      f"{before:,.2f}{unit}" if unit == " s" else f"{before:,.0f}{unit}",
                      f"{now:,.2f}{unit}" if unit == " s" else f"{now:,.0f}{unit}",
                      f"{now / before:.2f}" if before else "-")
    console.print(table)
    console.print("processes: before " + ", ".join(str(r["children"] + 1) for r in runs["before"])
                  + "; now " + ", ".join(str(r["children"] + 1) for r in runs["now"]))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "processes.json"
    path.write_text(json.dumps({"against": args.against, "rounds": args.rounds,
                                "requests": args.requests, "machine": machine(),
                                "runs": runs, "medians": median}, indent=2))
    figure = go.Figure()
    memory = [k for k in keys if k.endswith("_mb") or k.startswith("child")]
    for version, label in (("before", f"at {args.against}"), ("now", "now")):
        figure.add_bar(name=label, x=memory, y=[median[version][k] for k in memory])
    figure.update_layout(title=f"mlcanary serve: resident memory after {args.requests:,} "
                               "requests, monitor on", yaxis_title="MB (median of rounds)",
                         barmode="group")
    figure.write_html(OUT / "processes.html", include_plotlyjs="cdn")
    console.print(f"wrote {path} and {OUT / 'processes.html'}")


if __name__ == "__main__":
    sys.exit(main())
