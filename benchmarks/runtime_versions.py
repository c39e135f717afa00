"""The ONNX runtime of this tree against the same module at an earlier commit, side by side.

``benchmarks/runtime.py`` compares mlcanary with raw ONNX Runtime; its µs move by tens of
percent between runs on a noisy host, so a change to the runtime cannot be judged by two of
its runs. This loads ``mlcanary/serve/onnx.py`` as it was at ``--against`` next to the
current one, builds both runtimes for the same fitted models, and times ``predict`` of each
interleaved call by call: alone, and after decoding a V2 request (as ``runtime.py`` does).

Which of two runtimes was built first can change its time: two copies of one module,
built once and timed this way, differed by 5% alone and 11-17% after decoding. So each
comparison builds both in each order, and the figure is the geometric mean of the two
ratios (the position's effect cancels); the two orders are printed too.

    .venv/bin/python benchmarks/runtime_versions.py --against f783adb   # about 2 min

The earlier module must import only what the current package still has.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from runtime import interleaved, tables

from mlcanary.config import Settings
from mlcanary.serve import onnx as current
from mlcanary.serve.messages import encode_request, parse_request
from mlcanary.serve.validation import columns_from_frame, columns_from_tensors, tensors_from_frame
from mlcanary.train.fit import train
from mlcanary.train.spec import TrainSpec

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 16, 64, 512)
console = Console(highlight=False, width=120)


def earlier(rev: str, where: Path) -> ModuleType:
    text = subprocess.run(
        ["git", "show", f"{rev}:src/mlcanary/serve/onnx.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    path = where / f"onnx_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"onnx_{rev}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(result: Any, rows: Any, before: ModuleType, budget: float,
            progress: Progress) -> dict[int, dict[str, float]]:
    columns = columns_from_frame(rows, result.signature)
    out: dict[int, dict[str, float]] = {}
    task = progress.add_task("timing", total=2 * len(BATCHES))
    for b in BATCHES:
        batch = {name: values[:b] for name, values in columns.items()}
        body, _ = encode_request(tensors_from_frame(rows.head(b), result.signature))

        def decode(body: bytes = body) -> Any:
            return columns_from_tensors(parse_request(body).inputs, result.signature, "reject")

        ratios: dict[str, list[float]] = {"alone": [], "after a request": []}
        for first in ("before", "now"):  # each order once: the position's effect cancels
            made = {}
            for name in (first, "now" if first == "before" else "before"):
                module = before if name == "before" else current
                make = getattr(module.OnnxRuntime, "convert", module.OnnxRuntime)  # converted since
                made[name] = make(result.pipeline, result.signature)
            now, old = made["now"], made["before"]
            times = interleaved({
                "now": lambda r=now, x=batch: r.predict(x),
                "before": lambda r=old, x=batch: r.predict(x),
                "decode": decode,
                "decode + now": lambda r=now, d=decode: r.predict(d()),
                "decode + before": lambda r=old, d=decode: r.predict(d()),
            }, budget)
            ratios["alone"].append(times["now"] / times["before"])
            ratios["after a request"].append(
                (times["decode + now"] - times["decode"])
                / (times["decode + before"] - times["decode"])
            )
            progress.advance(task)
        out[b] = {
            **{f"{k} ({order})": v for k, pair in ratios.items()
               for order, v in zip(("before first", "now first"), pair, strict=True)},
            **{k: math.sqrt(pair[0] * pair[1]) for k, pair in ratios.items()},
        }
    progress.remove_task(task)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", required=True, help="the earlier commit")
    parser.add_argument("--rows", type=int, default=20_000, help="training rows per model")
    parser.add_argument("--budget", type=float, default=0.4, help="seconds per measurement")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        before = earlier(args.against, Path(tmp))
        for i, (model, (frame, target)) in enumerate(tables(args.rows).items()):
            where = Path(tmp) / str(i)
            where.mkdir()
            frame.to_csv(where / "data.csv", index=False)
            task = progress.add_task(f"training {model}", total=None)
            result = train(TrainSpec.parse(data=where / "data.csv", target=target),
                           Settings(home=where / "home"))
            progress.remove_task(task)
            rows = frame.drop(columns=target).head(max(BATCHES))
            found = compare(result, rows, before, args.budget, progress)
            table = Table(title=f"{model}: predict time now / at {args.against}")
            table.add_column("batch", justify="right")
            for column in next(iter(found.values())):
                table.add_column(column, justify="right")
            for b, row in found.items():
                table.add_row(str(b), *(f"{v:.2f}" for v in row.values()))
            console.print(table)


if __name__ == "__main__":
    sys.exit(main())
