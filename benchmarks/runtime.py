"""In-process runtime cost per row: mlcanary's runtimes against raw ONNX Runtime.

For two models trained with mlcanary (30 numeric columns like the serving benchmark, and
the demo's churn table with every column kind) it times, at batch sizes 1, 16, 64 and 512,
on one pinned core:

* ``raw onnx``: ``InferenceSession.run`` on the model's ONNX graph (preprocessing and
  estimator, up to the estimator's float32 probabilities) with its inputs already built,
  i.e. ONNX Runtime alone, the anchor;
* ``mlcanary onnx``: ``OnnxRuntime.predict`` from validated columns (what the batcher hands
  it) to labels and float64 probabilities: building the inputs, the run of that graph
  extended by the class prior and the decision, the labels;
* ``compiled`` and ``native``: the other runtimes, for context.

Methods are interleaved within each repeat and the ratio is taken per repeat, so a noisy
machine moves both sides together.

    .venv/bin/python benchmarks/runtime.py               # full run (~2 min)
    .venv/bin/python benchmarks/runtime.py --repeats 3   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pandas as pd
import plotly.graph_objects as go
from machine import machine as facts
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sklearn.datasets import make_classification

from mlcanary.config import Settings
from mlcanary.demo import make_churn
from mlcanary.serve.compiled import CompiledRuntime
from mlcanary.serve.onnx import OnnxRuntime
from mlcanary.serve.runtime import NativeRuntime
from mlcanary.serve.validation import columns_from_frame
from mlcanary.train.fit import train
from mlcanary.train.spec import TrainSpec

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
BATCHES = (1, 16, 64, 512)
METHODS = ("raw onnx", "mlcanary onnx", "compiled", "native")
TARGET = 1.2
console = Console(highlight=False, width=120)


def machine() -> dict[str, Any]:
    return facts(("onnxruntime", "lightgbm", "scikit-learn", "mlcanary"))


def tables(rows: int) -> dict[str, tuple[pd.DataFrame, str]]:
    X, y = make_classification(n_samples=rows, n_features=30, n_informative=12, random_state=0)
    numeric = pd.DataFrame(X, columns=[f"f{i}" for i in range(30)]).assign(target=y)
    return {"30 numeric": (numeric, "target"), "churn (mixed kinds)": (make_churn(rows), "churned")}


def per_call(func: Callable[[], Any], budget: float) -> float:
    """Seconds per call: as many calls as fit in ``budget`` seconds (at least 5)."""
    func()
    calls, start = 0, time.perf_counter()
    while calls < 5 or time.perf_counter() - start < budget:
        func()
        calls += 1
    return (time.perf_counter() - start) / calls


def measure(frame: pd.DataFrame, target: str, repeats: int, budget: float, tmp: Path,
            progress: Progress) -> dict[str, Any]:
    path = tmp / "data.csv"
    frame.to_csv(path, index=False)
    task = progress.add_task(f"training on {len(frame):,} rows", total=None)
    result = train(TrainSpec.parse(data=path, target=target), Settings(home=tmp / "home"))
    progress.remove_task(task)
    rows = frame.drop(columns=target).head(max(BATCHES))
    columns = columns_from_frame(rows, result.signature)
    onnx = OnnxRuntime(result.pipeline, result.signature)
    raw = ort.InferenceSession(onnx.scores.SerializeToString(), onnx.options,
                               providers=["CPUExecutionProvider"])
    runtimes = {
        "mlcanary onnx": onnx,
        "compiled": CompiledRuntime(result.pipeline, result.signature),
        "native": NativeRuntime(result.pipeline, result.signature),
    }
    out: dict[str, Any] = {"trees": int(getattr(result.pipeline.estimator.estimator[-1],
                                                 "n_estimators_", 0)), "batches": {}}
    task = progress.add_task("timing", total=repeats * len(BATCHES))
    samples = {b: {m: [] for m in METHODS} for b in BATCHES}
    for _ in range(repeats):
        for b in BATCHES:
            batch = {name: values[:b] for name, values in columns.items()}
            feeds = onnx.inputs(batch)
            calls: dict[str, Callable[[], Any]] = {
                "raw onnx": lambda f=feeds: raw.run([onnx.score_output], f),
                **{m: (lambda r=r, x=batch: r.predict(x)) for m, r in runtimes.items()},
            }
            for method in METHODS:
                samples[b][method].append(per_call(calls[method], budget) / b)
            progress.advance(task)
    progress.remove_task(task)
    for b in BATCHES:
        s = samples[b]
        ratios = [o / r for o, r in zip(s["mlcanary onnx"], s["raw onnx"], strict=True)]
        out["batches"][b] = {
            **{m: statistics.median(v) * 1e6 for m, v in s.items()},
            "ratio": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
        }
    return out


def report(results: dict[str, Any]) -> None:
    for model, result in results["models"].items():
        table = Table(title=f"{model}: µs per row ({result['trees']} trees)")
        table.add_column("batch", justify="right")
        for method in METHODS:
            table.add_column(method, justify="right")
        table.add_column("mlcanary onnx / raw", justify="right")
        for b, row in result["batches"].items():
            lo, hi = row["ratio_range"]
            mark = "[green]" if row["ratio"] <= TARGET else "[red]"
            table.add_row(str(b), *(f"{row[m]:,.1f}" for m in METHODS),
                          f"{mark}{row['ratio']:.2f}x[/] ({lo:.2f}-{hi:.2f})")
        console.print(table)
    figure = go.Figure()
    for model, result in results["models"].items():
        batches = list(result["batches"])
        for method in METHODS:
            figure.add_scatter(x=batches, y=[result["batches"][b][method] for b in batches],
                               name=f"{model}: {method}", mode="lines+markers")
    figure.update_layout(title="Runtime cost per row (one core)", xaxis_type="log",
                         yaxis_type="log", xaxis_title="rows per call",
                         yaxis_title="µs per row")
    figure.write_html(OUT / "runtime.html", include_plotlyjs="cdn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="training rows per model")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per measurement")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv),
                               "models": {}}
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        for i, (model, (frame, target)) in enumerate(tables(args.rows).items()):
            where = Path(tmp) / str(i)
            where.mkdir()
            results["models"][model] = measure(frame, target, args.repeats, args.budget,
                                               where, progress)
    (OUT / "runtime.json").write_text(json.dumps(results, indent=2))
    report(results)
    console.print(f"wrote {OUT / 'runtime.json'} and {OUT / 'runtime.html'}")


if __name__ == "__main__":
    main()
