"""Decoding a V2 request, this tree against an earlier commit, in alternating processes.

What the server does before a batch reaches a runtime: ``parse_request`` (JSON, the binary
extension) and ``columns_from_tensors`` (validation against the signature). For one
tensor per column, the form ``tritonclient`` sends, this costs far more than the model
(``benchmarks/runtime.py`` prints both), so it is worth timing on its own.

The parser and validation span several modules, so each version runs from its own copy
of ``src`` (the earlier one from ``git archive``, the current one from the working tree)
in its own long-lived process, pinned to one core. For each request in turn the two are
timed back to back, ~0.1 s apart, the order alternating between rounds: a noisy host then
moves both sides of each ratio alike. Each figure is the current time over the earlier
one, the geometric mean over rounds (range in brackets): below 1 is faster.

Requests: the serving benchmark's 30 numeric columns and the demo's churn table (every
column kind), one tensor per column, 1, 16, 64 and 512 rows, as JSON and with every
tensor binary (``tritonclient``'s default).

    .venv/bin/python benchmarks/decode_versions.py --against 12e6016   # about 1 min
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
BATCHES = (1, 16, 64, 512)
MODES = ("json", "binary")


def child(data: Path) -> None:
    """Serve timings with the mlcanary on ``sys.path``: each line in is a case name and a
    time budget, each line out the median µs of one decode of that case."""
    import statistics

    import mlcanary
    from mlcanary.serve.messages import parse_request
    from mlcanary.serve.validation import columns_from_tensors
    from mlcanary.signature import Signature

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    decoders = {}
    for case in json.loads((data / "cases.json").read_text()):
        signature = Signature.from_dict(json.loads((data / case["signature"]).read_text()))
        body = (data / case["body"]).read_bytes()

        def decode(body: bytes = body, length: int | None = case["header_length"],
                   signature: Signature = signature) -> Any:
            return columns_from_tensors(parse_request(body, length).inputs, signature, "reject")

        decode()
        decoders[case["name"]] = decode
    print(json.dumps({"module": mlcanary.__file__}), flush=True)
    for line in sys.stdin:
        name, budget = line.rstrip("\n").rsplit("|", 1)
        decode, samples = decoders[name], []
        for _ in range(5):
            calls, start = 0, time.perf_counter()
            while calls < 3 or time.perf_counter() - start < float(budget) / 5:
                decode()
                calls += 1
            samples.append((time.perf_counter() - start) / calls)
        print(statistics.median(samples) * 1e6, flush=True)


def requests(data: Path, rows: int) -> list[dict[str, Any]]:
    """Write each model's signature and one request body per batch size and mode."""
    from runtime import tables

    from mlcanary.serve.messages import encode_request
    from mlcanary.serve.validation import tensors_from_frame
    from mlcanary.train.schema import infer_signature

    cases = []
    for i, (model, (frame, target)) in enumerate(tables(rows).items()):
        signature = infer_signature(frame, target, "classification")
        (data / f"signature{i}.json").write_text(json.dumps(signature.as_dict()))
        features = frame.drop(columns=target)
        for b in BATCHES:
            tensors = tensors_from_frame(features.head(b), signature)
            for mode in MODES:
                binary = [t.name for t in tensors] if mode == "binary" else []
                body, length = encode_request(tensors, binary=binary)
                name = f"{model}|{b}|{mode}"
                path = f"body{len(cases)}.bin"
                (data / path).write_bytes(body)
                cases.append({"name": name, "signature": f"signature{i}.json", "body": path,
                              "header_length": length})
    (data / "cases.json").write_text(json.dumps(cases))
    return cases


class Child:
    """A timing process running the mlcanary under ``src``."""

    def __init__(self, src: Path, data: Path) -> None:
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT / 'benchmarks'}"}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--child", str(data)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        module = json.loads(self.ask(None))["module"]
        if not module.startswith(str(src)):
            self.close()
            raise SystemExit(f"the child imported {module}, not the copy under {src}")

    def ask(self, line: str | None) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise SystemExit(f"a timing process ended (exit {self.process.wait()})")
        return answer

    def time(self, case: str, budget: float) -> float:
        return float(self.ask(f"{case}|{budget}"))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", help="the earlier commit")
    parser.add_argument("--rounds", type=int, default=20, help="measurements of each case")
    parser.add_argument("--rows", type=int, default=2_000, help="rows each table is drawn with")
    parser.add_argument("--budget", type=float, default=0.05, help="seconds per measurement")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    if not args.against:
        parser.error("--against is required")
    import plotly.graph_objects as go
    from machine import machine
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table
    from versions import sources

    console = Console(highlight=False, width=120)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        data = where / "data"
        data.mkdir()
        cases = requests(data, args.rows)
        children = {name: Child(src, data) for name, src in sources(args.against, where).items()}
        times: dict[str, dict[str, list[float]]] = {
            name: {c["name"]: [] for c in cases} for name in children}
        try:
            with Progress(console=console) as progress:
                task = progress.add_task("alternating measurements", total=args.rounds)
                for turn in range(args.rounds):
                    for case in (c["name"] for c in cases):  # the two versions back to back
                        order = ("before", "now") if turn % 2 == 0 else ("now", "before")
                        for name in order:
                            times[name][case].append(children[name].time(case, args.budget))
                    progress.advance(task)
        finally:
            for process in children.values():
                process.close()
    figures: dict[str, dict[str, float]] = {}
    for case in (c["name"] for c in cases):
        ratios = [now / before for now, before in
                  zip(times["now"][case], times["before"][case], strict=True)]
        figures[case] = {
            "before_us": statistics.median(times["before"][case]),
            "now_us": statistics.median(times["now"][case]),
            "ratio": math.exp(sum(map(math.log, ratios)) / len(ratios)),
            "low": min(ratios), "high": max(ratios),
        }
    table = Table(title=f"decoding one request: now / at {args.against} (µs: median)")
    for column in ("model", "rows", "mode", "before µs", "now µs", "now / before"):
        table.add_column(column, justify="left" if column in ("model", "mode") else "right")
    for case, f in figures.items():
        model, rows, mode = case.split("|")
        table.add_row(model, rows, mode, f"{f['before_us']:,.0f}", f"{f['now_us']:,.0f}",
                      f"{f['ratio']:.2f} ({f['low']:.2f}-{f['high']:.2f})")
    console.print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "decode_versions.json").write_text(json.dumps(
        {"against": args.against, "rounds": args.rounds, "machine": machine(("mlcanary",)),
         "figures": figures}, indent=2))
    figure = go.Figure()
    for mode in MODES:
        for model in dict.fromkeys(c.split("|")[0] for c in figures):
            keys = [k for k in figures if k.startswith(f"{model}|") and k.endswith(f"|{mode}")]
            figure.add_bar(name=f"{model}, {mode}", x=[k.split("|")[1] for k in keys],
                           y=[figures[k]["ratio"] for k in keys])
    figure.add_hline(y=1.0, line_dash="dot")
    figure.update_layout(title=f"Decoding a request: time now / at {args.against}",
                         xaxis_title="rows per request", yaxis_title="ratio (below 1: faster)",
                         barmode="group")
    figure.write_html(OUT / "decode_versions.html", include_plotlyjs="cdn")
    console.print(f"wrote {OUT / 'decode_versions.json'} and {OUT / 'decode_versions.html'}")


if __name__ == "__main__":
    sys.exit(main())
