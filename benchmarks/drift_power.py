"""Power table of the dataset-drift rule: false alarms and detections, old rule against new.

Data: 30 independent standard-normal columns x0..x29; a 10,000-row reference sample and
windows of 1,000, 10,000 and 100,000 rows, every one drawn from its own seed. A binary
"model" scores score = sigmoid(sum_j b_j x_j), b_j > 0, logged as the server logs it
(``__prediction__``: 1 when score >= 0.5, else 0; ``__score__1``: the score) in the
reference sample and in every window. The logit has standard deviation 2 (sum b_j^2 = 4)
and the importance given to ``Reference.from_sample`` is each column's share of it,
b_j^2 / 4, in two settings:

* even: every column 1/30, so k shifted columns carry k/30 of the importance;
* leading: the k shifted columns carry 50% between them, the other 30 - k the rest.

A shifted window adds delta (in standard deviations) to x0..x(k-1), delta in 0.1, 0.2,
0.3, 0.5 and k in 1, 3, 10; the scores are recomputed from the shifted inputs. The null
(delta = 0) is run for every model (even, and leading for each k) on shared windows.

Both rules decide on the same window:

* old: drifted columns carry >= 25% of the importance, or the domain classifier on at
  most 2,000 rows per side flags (p < alpha and lower bound of AUC - 0.5 >= 0.05);
  prediction drift is not counted. Emulated with ``analyse(..., DriftSettings(
  multivariate=False))`` for the columns and ``domain_classifier_test(..., max_rows=2000)``.
* new: ``analyse`` with the default settings: share >= 10%, or prediction drift, or the
  classifier on up to ``multivariate.MAX_ROWS`` (10,000) rows per side.

Everything runs in this one process on one thread (LightGBM's and the BLAS's). The
file's name shadows the standard library's ``statistics`` for anything imported while it
runs as a script, so it imports no such module itself.

    .venv/bin/python benchmarks/drift_power.py                      # full run (~15 min)
    .venv/bin/python benchmarks/drift_power.py --quick              # smoke run (~1 min)
    .venv/bin/python benchmarks/drift_power.py --out table.md --json table.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from machine import machine as facts
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from threadpoolctl import threadpool_limits

from mlcanary.monitor import multivariate
from mlcanary.monitor.decision import DriftReport, DriftSettings, Reference, analyse, encode
from mlcanary.monitor.multivariate import domain_classifier_test
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX
from mlcanary.signature import ColumnSpec, Signature

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
COLUMNS = [f"x{j}" for j in range(30)]
REFERENCE_ROWS = 10_000
SIZES = (1_000, 10_000, 100_000)
DELTAS = (0.1, 0.2, 0.3, 0.5)
SHIFTED = (1, 3, 10)
LOGIT_SD = 2.0
"""Standard deviation of the model's logit on the reference: sum b_j^2 = LOGIT_SD^2."""
LEADING_SHARE = 0.5
OLD_SHARE = 0.25
OLD_MAX_ROWS = 2_000
REPS = {1_000: 40, 10_000: 40, 100_000: 12}
"""Windows per shifted cell."""
NULL_REPS = {1_000: 200, 10_000: 100, 100_000: 40}
"""Windows per null cell (each scored by every model): false alarms need the most."""
QUICK_REPS, QUICK_NULL_REPS = 1, 3
Z95 = 1.959964
SIGNATURE = Signature(
    [ColumnSpec(name, "numeric", nullable=False) for name in COLUMNS],
    target="y",
    task="classification",
    classes=[0, 1],
)
SCORE = f"{SCORE_PREFIX}1"
console = Console(highlight=False, width=140)


@dataclass(frozen=True)
class Model:
    """One scoring model and the reference built from its logged sample."""

    name: str
    """'even', or 'leading k' (x0..x(k-1) carry LEADING_SHARE of the importance)."""
    label: str
    coefficients: np.ndarray
    importance: dict[str, float]
    reference: Reference


@dataclass(frozen=True)
class Cell:
    """One row of windows: a size, a shift, the models that score them."""

    index: int
    size: int
    k: int
    """Shifted columns (0: the null)."""
    delta: float
    models: tuple[str, ...]
    reps: int


@dataclass
class Outcome:
    """Per (cell, model): the old and the new decision and their evidence, per window."""

    size: int
    model: str
    importance: str
    k: int
    delta: float
    shifted_share: float
    old: list[bool] = field(default_factory=list)
    new: list[bool] = field(default_factory=list)
    old_share: list[bool] = field(default_factory=list)
    old_classifier: list[bool] = field(default_factory=list)
    new_share: list[bool] = field(default_factory=list)
    new_prediction: list[bool] = field(default_factory=list)
    new_classifier: list[bool] = field(default_factory=list)
    old_ms: list[float] = field(default_factory=list)
    new_ms: list[float] = field(default_factory=list)
    mismatched_shares: int = 0
    """Windows where the old and the new analyse disagreed on the drifted columns (expect 0)."""

    @property
    def n(self) -> int:
        return len(self.new)


def shares(model: str) -> np.ndarray:
    """Each column's share of the importance (and of the logit's variance)."""
    if model == "even":
        return np.full(len(COLUMNS), 1 / len(COLUMNS))
    k = int(model.split()[1])
    out = np.full(len(COLUMNS), (1 - LEADING_SHARE) / (len(COLUMNS) - k))
    out[:k] = LEADING_SHARE / k
    return out


def label(model: str) -> str:
    if model == "even":
        return "even"
    k = int(model.split()[1])
    return "leading (x0 50%)" if k == 1 else f"leading (x0-x{k - 1} 50%)"


def logged(x: np.ndarray, coefficients: np.ndarray) -> pd.DataFrame:
    """The inputs and the model's outputs, as the server logs a window."""
    score = 1 / (1 + np.exp(-(x @ coefficients)))
    frame = pd.DataFrame(x, columns=COLUMNS)
    frame[PREDICTION_COLUMN] = (score >= 0.5).astype(int)
    frame[SCORE] = score
    return frame


def build_models() -> dict[str, Model]:
    sample = np.random.default_rng([SEED]).standard_normal((REFERENCE_ROWS, len(COLUMNS)))
    out: dict[str, Model] = {}
    for name in ("even", *(f"leading {k}" for k in SHIFTED)):
        share = shares(name)
        coefficients = LOGIT_SD * np.sqrt(share)
        importance = dict(zip(COLUMNS, share.tolist(), strict=True))
        reference = Reference.from_sample(logged(sample, coefficients), SIGNATURE, importance)
        out[name] = Model(name, label(name), coefficients, importance, reference)
    return out


def build_cells(quick: bool) -> list[Cell]:
    """Per window size: the null (every model), then importance x k x delta."""
    cells: list[Cell] = []
    for size in SIZES:
        null_reps = QUICK_NULL_REPS if quick else NULL_REPS[size]
        reps = QUICK_REPS if quick else REPS[size]
        models = ("even", *(f"leading {k}" for k in SHIFTED))
        cells.append(Cell(len(cells), size, 0, 0.0, models, null_reps))
        for importance in ("even", "leading"):
            for k in SHIFTED:
                model = "even" if importance == "even" else f"leading {k}"
                for delta in DELTAS:
                    cells.append(Cell(len(cells), size, k, delta, (model,), reps))
    return cells


def windows(cell: Cell) -> Iterator[tuple[int, np.ndarray]]:
    for rep in range(cell.reps):
        x = np.random.default_rng([SEED, cell.index, rep]).standard_normal(
            (cell.size, len(COLUMNS))
        )
        x[:, : cell.k] += cell.delta
        yield rep, x


def old_rule(reference: Reference, window: pd.DataFrame, seed: int) -> tuple[DriftReport, bool]:
    """Column decisions as before (share threshold applied by the caller), classifier at 2,000."""
    report = analyse(reference, window, DriftSettings(multivariate=False), seed=seed)
    settings = DriftSettings()
    joint = encode(window, reference.joint_columns, reference.joint_codes)
    result = domain_classifier_test(reference.joint, joint, seed=seed, max_rows=OLD_MAX_ROWS)
    flagged = (
        result is not None
        and result.p_value < settings.alpha
        and result.lower_bound(settings.alpha) >= settings.multivariate_threshold
    )
    return report, flagged


def run_window(outcome: Outcome, model: Model, x: np.ndarray, seed: int) -> None:
    window = logged(x, model.coefficients)
    start = time.perf_counter()
    old, old_classifier = old_rule(model.reference, window, seed)
    old_s = time.perf_counter() - start
    start = time.perf_counter()
    new = analyse(model.reference, window, seed=seed)
    new_s = time.perf_counter() - start
    old_share = old.drift_share >= OLD_SHARE
    outcome.old.append(old_share or old_classifier)
    outcome.old_share.append(old_share)
    outcome.old_classifier.append(old_classifier)
    outcome.new.append(new.dataset_drift)
    outcome.new_share.append(new.drift_share >= DriftSettings().share_threshold)
    outcome.new_prediction.append(new.prediction_drift)
    outcome.new_classifier.append(bool(new.multivariate is not None and new.multivariate.drift))
    outcome.old_ms.append(old_s * 1e3)
    outcome.new_ms.append(new_s * 1e3)
    outcome.mismatched_shares += set(old.drifted_columns) != set(new.drifted_columns)


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a binomial rate."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(centre - half, 0.0), min(centre + half, 1.0)


def pct(flags: list[bool]) -> str:
    return f"{sum(flags) / len(flags):.0%}" if flags else "-"


def rate(flags: list[bool]) -> str:
    """count/n, rate and 95% Wilson interval."""
    count, n = sum(flags), len(flags)
    lo, hi = wilson(count, n)
    return f"{count}/{n} = {count / n:.1%} ({lo:.1%}-{hi:.1%})"


def shifted_label(outcome: Outcome) -> str:
    columns = "x0" if outcome.k == 1 else f"x0-x{outcome.k - 1}"
    return f"{columns} ({outcome.shifted_share:.0%})"


def half_width(n: int) -> float:
    lo, hi = wilson(n // 2, n)
    return (hi - lo) / 2


def markdown(outcomes: list[Outcome], timings: dict[int, dict[str, float]]) -> str:
    null = [o for o in outcomes if o.k == 0]
    shift = [o for o in outcomes if o.k > 0]
    lines = [
        "False alarms: windows with no shift flagged at dataset level "
        "(count/windows = rate, 95% Wilson interval). The four models score the same "
        "windows at each size.",
        "",
        "| window rows | importance | old rule | new rule |",
        "|---:|---|---|---|",
    ]
    for o in null:
        lines.append(f"| {o.size:,} | {label(o.model)} | {rate(o.old)} | {rate(o.new)} |")
    lines += [
        "",
        "Power: share of shifted windows flagged at dataset level, old% -> new%. Columns: "
        "the shift delta, in standard deviations, of each shifted column's mean.",
        "",
        "| window rows | importance | shifted columns (their importance) | windows | "
        + " | ".join(f"delta {d}" for d in DELTAS)
        + " |",
        "|---:|---|---|---:|" + "---:|" * len(DELTAS),
    ]
    for size in SIZES:
        for importance in ("even", "leading"):
            for k in SHIFTED:
                row = [
                    o
                    for o in shift
                    if o.size == size and o.importance == importance and o.k == k
                ]
                cells = " | ".join(f"{pct(o.old)} -> {pct(o.new)}" for o in row)
                lines.append(
                    f"| {size:,} | {importance} | {shifted_label(row[0])} | {row[0].n} | {cells} |"
                )
    widths = ", ".join(
        f"{n} windows: +/-{half_width(n):.0%}"
        for n in sorted({o.n for o in shift}, reverse=True)
    )
    lines += [
        "",
        f"Precision of a power cell: the 95% Wilson interval is widest at 50%, {widths}; "
        "narrower towards 0% and 100%.",
        "",
        "Time per window, mean milliseconds on one thread, over every window of that size "
        "(null and shifted): the new rule is one `analyse` call with default settings; the "
        "old is `analyse(multivariate=False)` plus the classifier on at most 2,000 rows per "
        "side.",
        "",
        "| window rows | windows | new: `analyse` (ms) | old: columns + classifier (ms) | "
        "classifier rows per side, new / old |",
        "|---:|---:|---:|---:|---|",
    ]
    for size, t in timings.items():
        rows = min(size, REFERENCE_ROWS, multivariate.MAX_ROWS)
        lines.append(
            f"| {size:,} | {int(t['windows']):,} | {t['new_ms']:.0f} | {t['old_ms']:.0f} | "
            f"{rows:,} / {min(size, REFERENCE_ROWS, OLD_MAX_ROWS):,} |"
        )
    return "\n".join(lines) + "\n"


def evidence_table(outcomes: list[Outcome]) -> Table:
    """What fired, per cell: old (share >= 25%, classifier) and new (share, prediction,
    classifier)."""
    table = Table(title="Dataset-level flags and their evidence (% of windows)")
    table.add_column("rows", justify="right")
    table.add_column("model")
    for name in ("k", "delta", "n", "old", "new", "old share>=25%", "old clf 2k",
                 "new share>=10%", "new prediction", "new clf"):
        table.add_column(name, justify="right")
    for o in outcomes:
        table.add_row(
            f"{o.size:,}", label(o.model), str(o.k), f"{o.delta}", str(o.n),
            pct(o.old), pct(o.new), pct(o.old_share), pct(o.old_classifier),
            pct(o.new_share), pct(o.new_prediction), pct(o.new_classifier),
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: {QUICK_REPS} window per shifted cell, "
                             f"{QUICK_NULL_REPS} per null cell")
    parser.add_argument("--out", type=Path, help="write the markdown tables to this file")
    parser.add_argument("--json", type=Path, help="write every cell's counts and timings here")
    args = parser.parse_args()
    began = time.perf_counter()
    info = {**facts(("numpy", "scipy", "pandas", "lightgbm", "mlcanary")),
            "load_average_start": os.getloadavg()}
    command = shlex.join([os.path.relpath(sys.executable, ROOT),
                          os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    console.rule("mlcanary dataset-drift rule: power table")
    for key, value in info.items():
        console.print(f"{key:>19}: {value}")
    console.print(f"{'command':>19}: {command}")

    with threadpool_limits(1):
        models = build_models()
        cells = build_cells(args.quick)
        outcomes: list[Outcome] = []
        total = sum(c.reps * len(c.models) for c in cells)
        progress = Progress(SpinnerColumn(), TextColumn("{task.description:<40}"), BarColumn(),
                            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=console)
        with progress:
            task = progress.add_task("windows", total=total)
            for cell in cells:
                what = "null" if cell.k == 0 else f"{cell.models[0]}, k={cell.k}, +{cell.delta}"
                progress.update(task, description=f"{cell.size:,} rows: {what}")
                here = {
                    name: Outcome(
                        cell.size, name, name.split()[0], cell.k, cell.delta,
                        float(shares(name)[: cell.k].sum()),
                    )
                    for name in cell.models
                }
                for rep, x in windows(cell):
                    for name in cell.models:
                        run_window(here[name], models[name], x, seed=cell.index * 10_000 + rep)
                        progress.advance(task)
                outcomes.extend(here.values())

    timings = {
        size: {
            "windows": float(sum(o.n for o in outcomes if o.size == size)),
            "new_ms": float(np.mean([t for o in outcomes if o.size == size for t in o.new_ms])),
            "old_ms": float(np.mean([t for o in outcomes if o.size == size for t in o.old_ms])),
        }
        for size in SIZES
    }
    console.print(evidence_table(outcomes))
    text = markdown(outcomes, timings)
    mismatched = sum(o.mismatched_shares for o in outcomes)
    if mismatched:
        console.print(f"[red]{mismatched} windows: old and new analyse drifted different "
                      "columns[/]")
    elapsed = time.perf_counter() - began
    if args.out:
        args.out.write_text(text)
        console.print(f"wrote {args.out}")
    else:
        console.rule("markdown")
        console.print(text, markup=False)
    if args.json:
        payload = {
            "machine": {**info, "load_average_end": os.getloadavg()},
            "command": command,
            "total_s": elapsed,
            "settings": {"reference_rows": REFERENCE_ROWS, "logit_sd": LOGIT_SD,
                         "old_share": OLD_SHARE, "old_max_rows": OLD_MAX_ROWS,
                         "new_max_rows": multivariate.MAX_ROWS, "seed": SEED},
            "timings": timings,
            "outcomes": [
                {key: value for key, value in vars(o).items() if not key.endswith("_ms")}
                | {"n": o.n, "new_ms_mean": float(np.mean(o.new_ms)),
                   "old_ms_mean": float(np.mean(o.old_ms))}
                for o in outcomes
            ],
        }
        args.json.write_text(json.dumps(payload, indent=1, default=float) + "\n")
        console.print(f"wrote {args.json}")
    console.print(f"total {elapsed:.0f} s; load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
