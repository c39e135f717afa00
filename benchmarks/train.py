"""Wall time of ``mlcanary train`` against a plain LightGBM 5-fold CV, measured side by side.

Both sides read the same generated CSV; repetitions are interleaved (anchor, subject,
anchor, ...) so that a noisy, shared machine slows both alike. The headline figure is
the ratio median(subject) / median(anchor), with the per-pair ratios to show the spread.

    .venv/bin/python benchmarks/train.py                          # 200,000 rows, 3 repeats
    .venv/bin/python benchmarks/train.py --rows 20000 --repeats 1  # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm
import pandas as pd
import plotly.graph_objects as go
from machine import machine as facts
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.datasets import make_classification
from sklearn.model_selection import StratifiedKFold, cross_val_score

from mlcanary.config import Settings

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
CLI = Path(sys.executable).with_name("mlcanary")
STAGE_LINE = re.compile(
    r"^(?P<stage>\S.*?)\s+\S*\s+\d+/\d+\s+(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d)\s*$"
)
console = Console(highlight=False)


def machine() -> dict[str, Any]:
    return facts(("lightgbm", "scikit-learn", "pandas", "mlcanary"))


def write_table(path: Path, rows: int) -> None:
    X, y = make_classification(n_samples=rows, n_features=30, n_informative=12, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["target"] = y
    frame.to_csv(path, index=False)


def anchor(path: Path, threads: int) -> tuple[float, float]:
    """Plain LightGBM 5-fold CV, CSV read included. Returns (seconds, mean ROC-AUC)."""
    start = time.perf_counter()
    frame = pd.read_csv(path)
    X, y = frame.drop(columns="target"), frame["target"].to_numpy()
    scores = cross_val_score(
        lightgbm.LGBMClassifier(n_jobs=threads, verbose=-1), X, y,
        cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="roc_auc",
    )
    return time.perf_counter() - start, float(scores.mean())


def subject(path: Path) -> tuple[float, float, dict[str, float]]:
    """The real CLI end to end in a fresh home. Returns (seconds, CV ROC-AUC, stage seconds)."""
    with tempfile.TemporaryDirectory(prefix="mlcanary-bench-home-") as home:
        env = {**os.environ, "MLCANARY_HOME": home}
        start = time.perf_counter()
        run = subprocess.run(
            [str(CLI), "train", str(path), "--target", "target", "--name", "bench"],
            env=env, cwd=ROOT, capture_output=True, text=True, check=False,
        )
        seconds = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(f"mlcanary train failed ({run.returncode}):\n{run.stderr}")
        listing = subprocess.run(
            [str(CLI), "models", "bench", "--json"],
            env=env, cwd=ROOT, capture_output=True, text=True, check=True,
        )
    auc = float(json.loads(listing.stdout)["versions"][0]["metrics"]["roc_auc"])
    return seconds, auc, stages(run.stderr)


def stages(stderr: str) -> dict[str, float]:
    """Stage times (whole seconds) from the CLI's final progress render on stderr."""
    found = {}
    for line in stderr.splitlines():
        if m := STAGE_LINE.match(line.strip()):
            found[m["stage"]] = int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])
    return found


def chart(result: dict[str, Any], path: Path) -> None:
    reps = [f"rep {i + 1}" for i in range(len(result["anchor_s"]))]
    fig = go.Figure([
        go.Bar(name="plain LightGBM 5-fold CV", x=reps, y=result["anchor_s"]),
        go.Bar(name="mlcanary train", x=reps, y=result["subject_s"]),
    ])
    fig.update_layout(
        barmode="group", yaxis_title="wall time (s)",
        title=f"mlcanary train vs LightGBM 5-fold CV, {result['rows']:,} x 30, "
              f"median ratio {result['ratio_of_medians']:.1f}x",
    )
    fig.write_html(path, include_plotlyjs=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    threads = Settings().threads
    info = machine()
    console.rule("mlcanary train benchmark")
    for key, value in info.items():
        console.print(f"{key:>13}: {value}")
    console.print(f"{'table':>13}: {args.rows:,} x 30, {args.repeats} interleaved repeats, "
                  f"LightGBM threads {threads}")

    anchor_s: list[float] = []
    subject_s: list[float] = []
    anchor_auc: list[float] = []
    subject_auc: list[float] = []
    stage_s: list[dict[str, float]] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlcanary-bench-") as tmp:
        data = Path(tmp) / "bench.csv"
        write_table(data, args.rows)
        columns = (TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("runs", total=2 * args.repeats)
            for i in range(args.repeats):
                progress.update(task, description=f"rep {i + 1}: plain LightGBM CV")
                seconds, auc = anchor(data, threads)
                anchor_s.append(seconds)
                anchor_auc.append(auc)
                progress.advance(task)
                progress.update(task, description=f"rep {i + 1}: mlcanary train")
                seconds, auc, stage = subject(data)
                subject_s.append(seconds)
                subject_auc.append(auc)
                stage_s.append(stage)
                progress.advance(task)
                console.print(f"rep {i + 1}: anchor {anchor_s[-1]:.1f} s, subject "
                              f"{subject_s[-1]:.1f} s, ratio {subject_s[-1] / anchor_s[-1]:.2f}")

    pairs = [s / a for a, s in zip(anchor_s, subject_s, strict=True)]
    names = list(stage_s[0])
    result = {
        **info, "rows": args.rows, "features": 30, "repeats": args.repeats, "threads": threads,
        "anchor_s": anchor_s, "subject_s": subject_s,
        "anchor_median_s": statistics.median(anchor_s),
        "subject_median_s": statistics.median(subject_s),
        "ratio_of_medians": statistics.median(subject_s) / statistics.median(anchor_s),
        "pair_ratios": pairs, "pair_ratio_min": min(pairs), "pair_ratio_max": max(pairs),
        "anchor_roc_auc": anchor_auc, "subject_roc_auc": subject_auc,
        "subject_stages_s": stage_s,
        "subject_stage_medians_s": {
            n: statistics.median(s.get(n, 0.0) for s in stage_s) for n in names
        },
        "total_benchmark_s": time.perf_counter() - began,
    }

    table = Table(title=f"mlcanary train vs plain LightGBM 5-fold CV ({args.rows:,} x 30)")
    for column in ("rep", "anchor s", "subject s", "ratio", "anchor AUC", "mlcanary AUC"):
        table.add_column(column, justify="right")
    for i, ratio in enumerate(pairs):
        table.add_row(str(i + 1), f"{anchor_s[i]:.1f}", f"{subject_s[i]:.1f}", f"{ratio:.2f}",
                      f"{anchor_auc[i]:.4f}", f"{subject_auc[i]:.4f}")
    table.add_section()
    table.add_row("median", f"{result['anchor_median_s']:.1f}", f"{result['subject_median_s']:.1f}",
                  f"{result['ratio_of_medians']:.2f}", "", "",
                  style="bold")
    console.print(table)
    console.print(f"pair ratios: min {min(pairs):.2f}, max {max(pairs):.2f}")
    stages_median = result["subject_stage_medians_s"]
    rest = result["subject_median_s"] - sum(stages_median.values())
    console.print("mlcanary stages (median s, whole seconds from its progress bars): " + ", ".join(
        f"{n} {s:.0f}" for n, s in stages_median.items()) + f"; rest ~{rest:.0f} "
        "(start-up, imports, CSV read, profile, report, registry write)")

    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"train-{args.rows}"
    (OUT / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(result, OUT / f"{stem}.html")
    console.print(f"total {result['total_benchmark_s']:.0f} s; wrote {OUT / stem}.json and .html")


if __name__ == "__main__":
    main()
