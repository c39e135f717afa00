"""``mlcanary serve`` of this tree against an earlier commit, over HTTP, one tensor per column.

``benchmarks/serving.py`` compares mlcanary with other servers using one ``input-0``
matrix per request. Clients such as ``tritonclient`` send one tensor per column instead,
and then decoding and validation weigh more than the model; this measures what a change
to that path gives end to end.

Both versions serve the same registered model (the demo's churn table, every column kind,
trained once by the current tree) from one registry, each as one process pinned to core 0,
with the prediction log, the monitor and the access log off (the request path alone).
``wrk`` (core 1) sends the same per-column request bodies to each in turn, the order
alternating between rounds; each ratio is the current version's requests/s over the
earlier one's in the same round, and the figure is their geometric mean.

    .venv/bin/python benchmarks/serve_versions.py --against 12e6016   # about 3 min
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
from versions import sources

from mlcanary.demo import make_churn
from mlcanary.serve.messages import encode_request
from mlcanary.serve.validation import tensors_from_frame
from mlcanary.train.schema import infer_signature

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
WORKLOADS = {  # name: rows per request, connections, binary tensors
    "1 row, JSON, 1 conn": (1, 1, False),
    "1 row, JSON, 16 conn": (1, 16, False),
    "1 row, binary, 16 conn": (1, 16, True),
    "16 rows, JSON, 16 conn": (16, 16, False),
}
BINARY_LUA = WRK_LUA.replace(
    'wrk.headers["Content-Type"] = "application/json"',
    'wrk.headers["Content-Type"] = "application/octet-stream"\n'
    'wrk.headers["Inference-Header-Content-Length"] = os.getenv("HEADER_LENGTH")',
)
console = Console(highlight=False, width=120)


def prepare(tmp: Path, rows: int) -> tuple[dict[str, str], dict[str, tuple[Path, int | None]]]:
    frame = make_churn(rows)
    frame.to_csv(tmp / "churn.csv", index=False)
    env = {**os.environ, "MLCANARY_HOME": str(tmp / "home"), "MLCANARY_ACCESS_LOG": "false",
           "MLCANARY_LOG_SAMPLE_RATE": "0", "MLCANARY_MONITOR": "false"}
    run([str(BIN / "mlcanary"), "train", "churn.csv", "--target", "churned", "--name", "bench"],
        env=env, cwd=tmp)
    signature = infer_signature(frame, "churned", "classification")  # as training did
    features = frame.drop(columns="churned").iloc[100:]
    bodies = {}
    for name, (n, _, binary) in WORKLOADS.items():
        tensors = tensors_from_frame(features.head(n), signature)
        body, length = encode_request(tensors, binary=[t.name for t in tensors] if binary else [])
        path = tmp / f"body-{len(bodies)}.bin"
        path.write_bytes(body)
        bodies[name] = (path, length)
    (tmp / "json.lua").write_text(WRK_LUA)
    (tmp / "binary.lua").write_text(BINARY_LUA)
    return env, bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", required=True, help="the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    args = parser.parse_args()
    live: list[Any] = []
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        w: {"before": [], "now": []} for w in WORKLOADS}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        try:
            with console.status("training the churn model ..."):
                env, bodies = prepare(tmp, args.rows)
            servers = {}
            for version, src in sources(args.against, tmp).items():
                imported = run([sys.executable, "-c", "import mlcanary; print(mlcanary.__file__)"],
                               env={**env, "PYTHONPATH": str(src)}).strip()
                if not imported.startswith(str(src)):
                    raise SystemExit(f"{version}: imported {imported}, not the copy under {src}")
                port = free_port()
                servers[version] = start(
                    version, [sys.executable, "-m", "mlcanary", "serve", "bench", "--port",
                              str(port)],
                    port, tmp / f"{version}.log", live, env={**env, "PYTHONPATH": str(src)},
                    cwd=tmp)
            with Progress(console=console) as progress:
                task = progress.add_task("alternating wrk runs",
                                         total=args.rounds * len(WORKLOADS) * 2)
                for turn in range(args.rounds):
                    for workload, (_, conns, binary) in WORKLOADS.items():
                        body, length = bodies[workload]
                        lua = tmp / ("binary.lua" if binary else "json.lua")
                        order = ("before", "now") if turn % 2 == 0 else ("now", "before")
                        for version in order:
                            found = wrk(servers[version]["port"], body, lua, conns,
                                        args.duration, {"HEADER_LENGTH": str(length or "")})
                            if found["non_2xx"] or found["socket_errors"]:
                                raise SystemExit(f"{version}: failed requests in {workload}")
                            runs[workload][version].append(found)
                            progress.advance(task)
        finally:
            for process in live:
                stop(process)
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, dict[str, list[dict[str, float]]]]
           ) -> None:
    table = Table(title=f"mlcanary serve, one tensor per column: now / at {args.against}")
    for column in ("workload", "req/s before", "req/s now", "now / before", "p50 ms",
                   "p99 ms"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    figures = {}
    for workload, pair in runs.items():
        ratios = [n["rps"] / b["rps"] for n, b in zip(pair["now"], pair["before"], strict=True)]
        median = {v: {k: statistics.median(r[k] for r in pair[v]) for k in pair[v][0]}
                  for v in pair}
        ratio = math.exp(sum(map(math.log, ratios)) / len(ratios))
        figures[workload] = {"before": median["before"], "now": median["now"], "ratio": ratio,
                             "ratios": ratios}
        table.add_row(
            workload, f"{median['before']['rps']:,.0f}", f"{median['now']['rps']:,.0f}",
            f"{ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
            f"{median['before']['p50_ms']:.2f} -> {median['now']['p50_ms']:.2f}",
            f"{median['before']['p99_ms']:.2f} -> {median['now']['p99_ms']:.2f}",
        )
    console.print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "serve_versions.json"
    path.write_text(json.dumps({"against": args.against, "rounds": args.rounds,
                                "duration_s": args.duration, "machine": machine(),
                                "figures": figures}, indent=2))
    figure = go.Figure()
    for version, label in (("before", f"at {args.against}"), ("now", "now")):
        figure.add_bar(name=label, x=list(figures),
                       y=[f[version]["rps"] for f in figures.values()])
    figure.update_layout(title="mlcanary serve, one tensor per column (churn model)",
                         yaxis_title="requests/s (median of rounds)", barmode="group")
    figure.write_html(OUT / "serve_versions.html", include_plotlyjs="cdn")
    console.print(f"wrote {path} and {OUT / 'serve_versions.html'}")


if __name__ == "__main__":
    sys.exit(main())
