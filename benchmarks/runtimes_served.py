"""Each runtime end to end: ``mlcanary serve`` with one runtime forced, over HTTP.

``benchmarks/runtime.py`` times the runtimes' predict calls alone; what a user sees is a
whole request (HTTP, decoding, validation, batching, predict, encoding). This serves the
demo's churn model (every column kind) once per runtime (``MLCANARY_RUNTIME``), each as
one process pinned to core 0 with the prediction log, the monitor and the access log off;
``wrk`` (core 1) sends the same per-column V2 bodies to each in turn, the order rotating
between rounds. Each ratio is a runtime's requests/s over the native runtime's in the
same round; the figure is their geometric mean, with the range of rounds. A runtime is
worth its code only where it wins by 10% or more (docs/architecture.md, "Runtimes").

    .venv/bin/python benchmarks/runtimes_served.py            # about 6 min
    .venv/bin/python benchmarks/runtimes_served.py --model logistic
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from serving import BIN, WRK_LUA, free_port, machine, run, start, stop, wrk

from mlcanary.demo import make_churn
from mlcanary.serve.messages import encode_request
from mlcanary.serve.validation import tensors_from_frame
from mlcanary.train.schema import infer_signature

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
WORKLOADS = {  # name: rows per request, connections
    "1 row, 1 conn": (1, 1),
    "1 row, 16 conn": (1, 16),
    "64 rows, 16 conn": (64, 16),
}
console = Console(highlight=False, width=120)


def prepare(tmp: Path, rows: int, model: str) -> tuple[dict[str, str], dict[str, Path]]:
    frame = make_churn(rows)
    frame.to_csv(tmp / "churn.csv", index=False)
    env = {**os.environ, "MLCANARY_HOME": str(tmp / "home"), "MLCANARY_ACCESS_LOG": "false",
           "MLCANARY_LOG_SAMPLE_RATE": "0", "MLCANARY_MONITOR": "false"}
    run([str(BIN / "mlcanary"), "train", "churn.csv", "--target", "churned", "--name", "bench",
         "--model", model], env=env, cwd=tmp)
    signature = infer_signature(frame, "churned", "classification")  # as training did
    features = frame.drop(columns="churned").iloc[100:]
    bodies = {}
    for name, (n, _) in WORKLOADS.items():
        body, _ = encode_request(tensors_from_frame(features.head(n), signature))
        path = tmp / f"body-{n}.json"
        path.write_bytes(body)
        bodies[name] = path
    (tmp / "json.lua").write_text(WRK_LUA)
    return env, bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runtimes", default="native,compiled,onnx")
    parser.add_argument("--model", default="lightgbm", help="mlcanary train --model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    args = parser.parse_args()
    runtimes = args.runtimes.split(",")
    live: list[Any] = []
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        w: {r: [] for r in runtimes} for w in WORKLOADS}
    notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        try:
            with console.status(f"training the churn model ({args.model}) ..."):
                env, bodies = prepare(tmp, args.rows, args.model)
            servers = {}
            for runtime in runtimes:
                port = free_port()
                servers[runtime] = start(
                    runtime, [sys.executable, "-m", "mlcanary", "serve", "bench", "--port",
                              str(port)],
                    port, tmp / f"{runtime}.log", live,
                    env={**env, "MLCANARY_RUNTIME": runtime}, cwd=tmp)
                meta = run(["curl", "-s", f"http://127.0.0.1:{port}/v2/models/bench"])
                notes[runtime] = json.loads(meta)["parameters"]["runtime"]
            with Progress(console=console) as progress:
                task = progress.add_task("rotating wrk runs",
                                         total=args.rounds * len(WORKLOADS) * len(runtimes))
                for turn in range(args.rounds):
                    order = runtimes[turn % len(runtimes):] + runtimes[:turn % len(runtimes)]
                    for workload, (_, conns) in WORKLOADS.items():
                        for runtime in order:
                            found = wrk(servers[runtime]["port"], bodies[workload],
                                        tmp / "json.lua", conns, args.duration)
                            if found["non_2xx"] or found["socket_errors"]:
                                raise SystemExit(f"{runtime}: failed requests in {workload}")
                            runs[workload][runtime].append(found)
                            progress.advance(task)
            rss = {r: _rss_mb(s["proc"].pid) for r, s in servers.items()}
        finally:
            for process in live:
                stop(process)
    report(args, runtimes, runs, notes, rss)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(args: argparse.Namespace, runtimes: list[str],
           runs: dict[str, dict[str, list[dict[str, float]]]], notes: dict[str, str],
           rss: dict[str, float]) -> None:
    table = Table(title=f"mlcanary serve per runtime ({args.model} churn model): "
                        "req/s, and / native")
    table.add_column("workload")
    for runtime in runtimes:
        table.add_column(f"{runtime} ({notes[runtime]})", justify="right")
    figures: dict[str, Any] = {}
    for workload, by_runtime in runs.items():
        base = by_runtime[runtimes[0]]
        cells, figures[workload] = [], {}
        for runtime in runtimes:
            ratios = [r["rps"] / b["rps"] for r, b in zip(by_runtime[runtime], base, strict=True)]
            ratio = math.exp(sum(map(math.log, ratios)) / len(ratios))
            rps = statistics.median(r["rps"] for r in by_runtime[runtime])
            p50 = statistics.median(r["p50_ms"] for r in by_runtime[runtime])
            figures[workload][runtime] = {"rps": rps, "p50_ms": p50, "ratio": ratio,
                                          "ratios": ratios}
            cells.append(f"{rps:,.0f}  {ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
        table.add_row(workload, *cells)
    table.add_row("server RSS", *[f"{rss[r]:,.0f} MB" for r in runtimes])
    console.print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "runtimes_served.json"
    path.write_text(json.dumps({"model": args.model, "rounds": args.rounds,
                                "duration_s": args.duration, "machine": machine(),
                                "served_by": notes, "rss_mb": rss, "figures": figures},
                               indent=2))
    figure = go.Figure()
    for runtime in runtimes:
        figure.add_bar(name=runtime, x=list(figures),
                       y=[figures[w][runtime]["rps"] for w in figures])
    figure.update_layout(title=f"mlcanary serve per runtime ({args.model} churn model)",
                         yaxis_title="requests/s (median of rounds)", barmode="group")
    figure.write_html(OUT / "runtimes_served.html", include_plotlyjs="cdn")
    console.print(f"wrote {path} and {OUT / 'runtimes_served.html'}")


if __name__ == "__main__":
    sys.exit(main())
