"""Drift detection on the same windows: mlcanary against Evidently, Alibi Detect and NannyML.

Data: 30 numeric columns, unit variance, neighbours correlated 0.5 (x_j = 0.5 x_{j-1} + noise)
except x9 = 0.9 x8 + noise; a 10,000-row reference and 1,000-row windows, all seeded. The
windows of every case are the same fresh draws, each case changing them in one way:

* null: unchanged (the false-alarm rate);
* shift: x0 + 0.5 standard deviation (the power case);
* small shift, leading: x0, x1, x2 + 0.2 SD; small shift, minor: x27, x28, x29 + 0.2 SD;
* joint (mlcanary only): x9 shuffled within the window, so its marginal is intact and its
  0.9 correlation with x8 is gone: only a test that sees columns together can notice.

mlcanary weighs columns by importance. Here it is the permutation importance of the linear
model y = sum 0.8^j x_j, i.e. 2 * 0.64^j (unit variances): x0 carries 36% of it, x1 23%,
x2 15%, x27-x29 together 0.001%.

Each anchor is installed by this script, on first use, in its own virtualenv under
benchmarks/out/venvs/ and runs there as a worker process (a script this one writes under
benchmarks/out/drift/) that reads the windows from .npy files and answers in JSON lines; no
anchor package is ever imported here. Every process runs on one core (CPU 0). Cases are run
in turn by every method, so a noisy machine slows all of them alike.

    .venv/bin/python benchmarks/drift.py             # 50 windows per case (~15 min)
    .venv/bin/python benchmarks/drift.py --quick     # smoke run (~30 s once the venvs exist)

The first run installs the three venvs side by side (~4 min, ~4.3 GB).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from machine import machine as facts
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from mlcanary.monitor.decision import DriftSettings, Reference, analyse, encode
from mlcanary.monitor.multivariate import domain_classifier_test
from mlcanary.signature import ColumnSpec, Signature

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
WORK = OUT / "drift"
VENVS = OUT / "venvs"
SEED = 0
REFERENCE_ROWS, WINDOW_ROWS = 10_000, 1_000
COLUMNS = [f"x{j}" for j in range(30)]
IMPORTANCE = {name: 2 * 0.64**j for j, name in enumerate(COLUMNS)}
SPEED_TARGET = 20.0
Z_ONE_SIDED_95 = 1.645
PREFIX = "DRIFTBENCH "
console = Console(highlight=False, width=132)


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    anchors: bool
    change: Callable[[np.ndarray, np.random.Generator], None]
    """Changes one window (rows x columns) in place."""


def _add(columns: list[int], sd: float) -> Callable[[np.ndarray, np.random.Generator], None]:
    def change(window: np.ndarray, rng: np.random.Generator) -> None:
        window[:, columns] += sd

    return change


def _shuffle_x9(window: np.ndarray, rng: np.random.Generator) -> None:
    window[:, 9] = rng.permutation(window[:, 9])


CASES = (
    Case("null", "null", True, lambda window, rng: None),
    Case("shift", "shift x0 +0.5 SD", True, _add([0], 0.5)),
    Case("small_lead", "x0-x2 +0.2 SD", True, _add([0, 1, 2], 0.2)),
    Case("small_minor", "x27-x29 +0.2 SD", True, _add([27, 28, 29], 0.2)),
    Case("joint", "x8-x9 decorrelated", False, _shuffle_x9),
)


@dataclass(frozen=True)
class Anchor:
    name: str
    label: str
    specs: tuple[str, ...]
    decision: str
    timing: str = "median of per-window calls"


ANCHORS = (
    Anchor(
        "evidently", "Evidently DataDriftPreset",
        # pandas 3 removed pandas.core.dtypes.common.infer_dtype_from_object, which
        # evidently 0.7.23 imports; pip would otherwise pick pandas 3.
        ("evidently==0.7.23", "pandas<3"),
        "its test 'Share of Drifted Columns: Less 0.500' fails (>= 50% of columns drifted; per "
        "column: normed Wasserstein >= 0.1, its choice when the reference has > 1,000 rows)",
    ),
    Anchor(
        "alibi", "Alibi Detect KSDrift",
        ("alibi-detect==0.13.0",),
        "is_drift: some column's KS p-value < 0.05 / 30",
    ),
    Anchor(
        "nannyml", "NannyML univariate KS",
        # nannyml 0.13.1 imports statsmodels (nannyml.plots) without declaring it.
        ("nannyml==0.13.1", "statsmodels"),
        "some column alerted: its KS D above the mean + 3 SD of D over the 10 reference chunks",
        "one calculate() on a frame of all the case's windows as 1,000-row chunks, / windows; "
        "median of repeats",
    ),
)
MLCANARY = {
    "mlcanary univariate": "importance share of drifted columns >= 0.25 (analyse, "
                           "multivariate=False)",
    "mlcanary multivariate": "domain classifier: p < 0.05 and AUC lower bound - 0.5 >= 0.05 "
                             "(the classifier alone, as analyse runs it)",
    "mlcanary full": "either of the two (analyse with the default settings)",
}

WORKER = r'''"""Written by benchmarks/drift.py: one anchor's worker, windows in, JSON lines out."""
import json
import os
import sys
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

PROTOCOL = sys.stdout
sys.stdout = sys.stderr  # library chatter goes to the log, not into the protocol


def emit(**message):
    PROTOCOL.write("DRIFTBENCH " + json.dumps(message) + "\n")
    PROTOCOL.flush()


class Evidently:
    packages = ("evidently", "pandas", "numpy", "scipy")

    def __init__(self, reference, columns):
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        self.columns, self.Dataset, self.Report = columns, Dataset, Report
        self.Preset = DataDriftPreset
        self.definition = DataDefinition(numerical_columns=columns)
        frame = pd.DataFrame(reference, columns=columns)
        self.reference = Dataset.from_pandas(frame, data_definition=self.definition)

    def run(self, windows, repeats):
        out = {"ms": [], "flags": [], "detail": []}
        for window in windows:
            frame = pd.DataFrame(window, columns=self.columns)
            start = time.perf_counter()
            current = self.Dataset.from_pandas(frame, data_definition=self.definition)
            snapshot = self.Report([self.Preset()], include_tests=True).run(current, self.reference)
            out["ms"].append((time.perf_counter() - start) * 1e3)
            result = snapshot.dict()
            count = next(m for m in result["metrics"] if "DriftedColumnsCount" in m["metric_name"])
            test = next(
                t for t in result["tests"]
                if t["metric_config"]["params"]["type"].endswith("DriftedColumnsCount")
            )
            out["flags"].append(test["status"] == "FAIL")
            out["detail"].append(count["value"]["count"])
            emit(done=1)
        return out


class Alibi:
    packages = ("alibi-detect", "numpy", "scipy")

    def __init__(self, reference, columns):
        from alibi_detect.cd import KSDrift

        self.detector = KSDrift(reference, p_val=0.05, correction="bonferroni")

    def run(self, windows, repeats):
        out = {"ms": [], "flags": [], "detail": []}
        for window in windows:
            start = time.perf_counter()
            data = self.detector.predict(window)["data"]
            out["ms"].append((time.perf_counter() - start) * 1e3)
            out["flags"].append(bool(data["is_drift"]))
            out["detail"].append(int((data["p_val"] < data["threshold"]).sum()))
            emit(done=1)
        return out


class NannyML:
    packages = ("nannyml", "pandas", "numpy", "scipy")

    def __init__(self, reference, columns):
        import nannyml

        self.columns = columns
        self.calculator = nannyml.UnivariateDriftCalculator(
            column_names=columns, continuous_methods=["kolmogorov_smirnov"],
            chunk_size=1_000,
        ).fit(pd.DataFrame(reference, columns=columns))

    def run(self, windows, repeats):
        frame = pd.DataFrame(np.concatenate(list(windows)), columns=self.columns)
        out = {"ms": []}
        for _ in range(repeats):
            start = time.perf_counter()
            result = self.calculator.calculate(frame)
            out["ms"].append((time.perf_counter() - start) * 1e3 / len(windows))
        table = result.filter(period="analysis").to_df()
        alerts = table[[(c, "kolmogorov_smirnov", "alert") for c in self.columns]].to_numpy(bool)
        out["flags"] = [bool(a) for a in alerts.any(axis=1)]
        out["detail"] = [int(a) for a in alerts.sum(axis=1)]
        emit(done=len(windows))
        return out


def main():
    name, data = sys.argv[1], Path(sys.argv[2])
    os.sched_setaffinity(0, {0})
    warnings.simplefilter("ignore")  # NannyML warns on every small analysis frame
    kind = {"evidently": Evidently, "alibi": Alibi, "nannyml": NannyML}[name]
    reference = np.load(data / "reference.npy")
    columns = [f"x{j}" for j in range(reference.shape[1])]
    start = time.perf_counter()
    detector = kind(reference, columns)
    setup_s = time.perf_counter() - start
    detector.run(np.load(data / "null.npy")[:1], 1)  # warm-up, untimed
    emit(ready={
        "setup_s": setup_s, "versions": {p: version(p) for p in kind.packages},
        "python": sys.version.split()[0],
    })
    for line in sys.stdin:
        command = json.loads(line)
        windows = np.load(data / f"{command['case']}.npy")[: command["limit"]]
        emit(result=detector.run(windows, command["repeats"]))


main()
'''


class WorkerError(RuntimeError):
    pass


class Worker:
    """An anchor's worker process in its own venv, driven case by case over stdin/stdout."""

    def __init__(self, anchor: Anchor, data: Path) -> None:
        script = WORK / "anchor_worker.py"
        script.write_text(WORKER)
        self.log_path = WORK / f"{anchor.name}.log"
        self.log = self.log_path.open("w")
        threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                    "NUMBA_NUM_THREADS")}
        # NannyML posts usage events to a web service from calculate() unless told not to,
        # and Evidently's telemetry honours DO_NOT_TRACK: no traffic, no time spent on it.
        quiet = {"NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1"}
        self.process = subprocess.Popen(
            [str(VENVS / anchor.name / "bin" / "python"), str(script), anchor.name, str(data)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, **threads, **quiet}, cwd=WORK,
        )
        if self.process.stdin is None or self.process.stdout is None:  # both are pipes
            raise WorkerError("worker started without its pipes")
        self.requests, self.replies = self.process.stdin, self.process.stdout

    def read(self, on_done: Callable[[int], None] | None = None) -> dict[str, Any]:
        for line in self.replies:
            if not line.startswith(PREFIX):
                continue
            message: dict[str, Any] = json.loads(line[len(PREFIX):])
            if "done" in message:
                if on_done:
                    on_done(message["done"])
                continue
            return message
        self.process.wait()
        self.log.flush()
        raise WorkerError(last_line(self.log_path.read_text()) or "worker exited")

    def run(self, case: str, limit: int, repeats: int,
            on_done: Callable[[int], None]) -> dict[str, Any]:
        self.requests.write(json.dumps({"case": case, "limit": limit, "repeats": repeats}) + "\n")
        self.requests.flush()
        result: dict[str, Any] = self.read(on_done)["result"]
        return result

    def close(self) -> None:
        self.requests.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def last_line(text: str) -> str:
    lines = [s.strip() for s in text.splitlines()
             if s.strip() and not s.lstrip().startswith("WARNING")]
    return lines[-1] if lines else ""


def setup_venv(anchor: Anchor) -> dict[str, Any]:
    """Create the anchor's venv and install its pinned packages once; a marker says it is done."""
    where = VENVS / anchor.name
    marker = where / "mlcanary-bench.json"
    if marker.exists() and json.loads(marker.read_text()).get("specs") == list(anchor.specs):
        return {"status": "ready", "seconds": 0.0, "specs": list(anchor.specs), "cached": True}
    shutil.rmtree(where, ignore_errors=True)
    start = time.perf_counter()
    python3 = shutil.which("python3") or sys.executable
    steps = [[python3, "-m", "venv", str(where)],
             [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", *anchor.specs]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return {"status": "unavailable", "seconds": time.perf_counter() - start,
                    "specs": list(anchor.specs),
                    "error": last_line(done.stderr) or last_line(done.stdout)}
    marker.write_text(json.dumps({"specs": list(anchor.specs)}))
    return {"status": "ready", "seconds": time.perf_counter() - start,
            "specs": list(anchor.specs), "cached": False}


def machine() -> dict[str, Any]:
    return {
        **facts(("numpy", "scipy", "pandas", "lightgbm", "mlcanary")),
        "load_average_start": os.getloadavg(),
    }


def draw(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Rows of the 30 unit-variance columns: AR(1) at 0.5, except x9 = 0.9 x8 + noise."""
    noise = rng.standard_normal((rows, len(COLUMNS)))
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for j in range(1, len(COLUMNS)):
        rho = 0.9 if j == 9 else 0.5
        x[:, j] = rho * x[:, j - 1] + math.sqrt(1 - rho**2) * noise[:, j]
    return x


def write_data(windows: int) -> dict[str, np.ndarray]:
    """The reference and every case's windows, as arrays and as .npy files for the workers."""
    data = WORK / "data"
    data.mkdir(parents=True, exist_ok=True)
    reference = draw(np.random.default_rng([SEED, 0]), REFERENCE_ROWS)
    np.save(data / "reference.npy", reference)
    base = np.stack([draw(np.random.default_rng([SEED, 1, i]), WINDOW_ROWS)
                     for i in range(windows)])
    arrays = {"reference": reference}
    for k, case in enumerate(CASES):
        rng = np.random.default_rng([SEED, 2, k])
        changed = base.copy()
        for window in changed:
            case.change(window, rng)
        np.save(data / f"{case.name}.npy", changed)
        arrays[case.name] = changed
    return arrays


def mlcanary_reference(reference: np.ndarray) -> Reference:
    signature = Signature([ColumnSpec(name, "numeric", nullable=False) for name in COLUMNS],
                          target="y", task="regression")
    return Reference.from_sample(pd.DataFrame(reference, columns=COLUMNS), signature, IMPORTANCE)


def run_mlcanary(reference: Reference, windows: np.ndarray,
                 on_done: Callable[[int], None]) -> dict[str, dict[str, list[Any]]]:
    """The three mlcanary figures per window; the classifier's flag is the one analyse takes."""
    univariate, full = DriftSettings(multivariate=False), DriftSettings()
    out: dict[str, dict[str, list[Any]]] = {
        m: {"ms": [], "flags": [], "detail": []} for m in MLCANARY}

    def record(method: str, seconds: float, flag: bool, detail: float) -> None:
        out[method]["ms"].append(seconds * 1e3)
        out[method]["flags"].append(flag)
        out[method]["detail"].append(detail)

    for i, window in enumerate(windows):
        frame = pd.DataFrame(window, columns=COLUMNS)
        start = time.perf_counter()
        report = analyse(reference, frame, univariate, seed=i)
        uni_s = time.perf_counter() - start
        start = time.perf_counter()
        joint = encode(frame, reference.joint_columns, reference.joint_codes)
        classifier = domain_classifier_test(reference.joint, joint, seed=i)
        classifier_s = time.perf_counter() - start
        start = time.perf_counter()
        whole = analyse(reference, frame, full, seed=i)
        full_s = time.perf_counter() - start
        record("mlcanary univariate", uni_s, report.dataset_drift, len(report.drifted_columns))
        record("mlcanary multivariate", classifier_s,
               bool(whole.multivariate and whole.multivariate.drift),
               classifier.auc if classifier else float("nan"))
        record("mlcanary full", full_s, whole.dataset_drift, len(whole.drifted_columns))
        on_done(1)
    return out


def slack(rate_a: float, rate_b: float, n: int) -> float:
    """One-sided 95% spread of the difference of two binomial rates over n windows each.

    z * sqrt(2 p (1 - p) / n) with p the pooled rate, kept within [1/n, 1 - 1/n] so that two
    perfect scores do not leave zero room for one window's luck.
    """
    p = min(max((rate_a + rate_b) / 2, 1 / n), 1 - 1 / n)
    return Z_ONE_SIDED_95 * math.sqrt(2 * p * (1 - p) / n)


def summarise(results: dict[str, dict[str, Any]]) -> None:
    """Rates and median times per case, and the median over the cases every method ran."""
    for result in results.values():
        if "cases" not in result:
            continue
        pooled: list[float] = []
        for name, case in result["cases"].items():
            case["n"] = len(case["flags"])
            case["flagged"] = int(sum(case["flags"]))
            case["rate"] = case["flagged"] / case["n"] if case["n"] else float("nan")
            case["median_ms"] = statistics.median(case["ms"])
            if next(c for c in CASES if c.name == name).anchors:
                pooled.extend(case["ms"])
        result["median_ms"] = statistics.median(pooled)
        result["ms_quartiles"] = [float(q) for q in np.percentile(pooled, [25, 75])]


def targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    uni, ev, alibi = (results.get(m, {}) for m in ("mlcanary univariate", "evidently", "alibi"))
    if "median_ms" in uni and "median_ms" in ev:
        ratio = ev["median_ms"] / uni["median_ms"]
        out.append({"target": f"univariate suite >= {SPEED_TARGET:.0f}x faster than Evidently",
                    "value": f"{ratio:.0f}x ({ev['median_ms']:,.0f} / {uni['median_ms']:.1f} ms)",
                    "pass": ratio >= SPEED_TARGET})
    else:
        out.append({"target": "univariate suite >= 20x faster than Evidently",
                    "value": "n/a (Evidently unavailable)", "pass": None})
    for method in ("mlcanary full", "mlcanary univariate"):
        for case, word, sign in (("null", "false alarms", 1), ("shift", "power", -1)):
            if "cases" not in alibi:
                out.append({"target": f"{method} {word} vs Alibi", "value": "n/a", "pass": None})
                continue
            ours, theirs = results[method]["cases"][case], alibi["cases"][case]
            room = slack(ours["rate"], theirs["rate"], min(ours["n"], theirs["n"]))
            bound = theirs["rate"] + sign * room
            ok = ours["rate"] <= bound if sign > 0 else ours["rate"] >= bound
            relation = "<=" if sign > 0 else ">="
            out.append({
                "target": f"{method} {word} ({case}) {relation} Alibi's "
                          f"{'+' if sign > 0 else '-'} slack",
                "value": f"{ours['rate']:.0%} vs {theirs['rate']:.0%} "
                         f"{'+' if sign > 0 else '-'} {room:.1%} = {bound:.1%}",
                "pass": ok, "slack": room,
            })
    return out


def ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def print_tables(results: dict[str, dict[str, Any]], goals: list[dict[str, Any]],
                 windows: int) -> None:
    table = Table(title=f"Dataset-level flags per case ({windows} windows of {WINDOW_ROWS:,} x 30 "
                        f"vs {REFERENCE_ROWS:,} reference rows; one core)")
    table.add_column("method", no_wrap=True)
    table.add_column("ms / window", justify="right")
    for case in CASES:
        table.add_column(case.label, justify="right")
    for result in results.values():
        if "cases" not in result:
            table.add_row(result["label"], f"[red]{result['status']}[/]: {result['error']}")
            continue
        lo, hi = result["ms_quartiles"]
        cells = []
        for case in CASES:
            c = result["cases"].get(case.name)
            cells.append(f"{c['rate']:.0%} ({c['flagged']}/{c['n']})" if c else "-")
        table.add_row(result["label"], f"{ms(result['median_ms'])}\n({ms(lo)}-{ms(hi)})",
                      *cells)
    console.print(table)
    console.print("ms: median (quartiles) over the windows of the cases all methods ran; null "
                  "column: false-alarm rate; the others: power.")
    goal_table = Table(title="Targets")
    for column in ("target", "measured", "result"):
        goal_table.add_column(column)
    for goal in goals:
        mark = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "n/a"}[goal["pass"]]
        goal_table.add_row(goal["target"], goal["value"], mark)
    console.print(goal_table)


def chart(results: dict[str, dict[str, Any]], windows: int, path: Path) -> None:
    figure = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65], subplot_titles=(
        "ms per window (median, bars: quartiles), log scale", "share of windows flagged"))
    done = [r for r in results.values() if "cases" in r]
    for result, colour in zip(done, qualitative.Plotly, strict=False):
        lo, hi = result["ms_quartiles"]
        figure.add_bar(
            x=[result["label"]], y=[result["median_ms"]], marker_color=colour,
            legendgroup=result["label"], showlegend=False, row=1, col=1,
            error_y={"type": "data", "symmetric": False, "array": [hi - result["median_ms"]],
                     "arrayminus": [result["median_ms"] - lo]},
            text=[ms(result["median_ms"])], textposition="inside",
        )
        cases = [c for c in CASES if c.name in result["cases"]]
        rates = [result["cases"][c.name]["rate"] for c in cases]
        figure.add_bar(
            x=[c.label for c in cases], y=rates, name=result["label"], marker_color=colour,
            legendgroup=result["label"], row=1, col=2,
            text=[f"{r:.0%}" for r in rates], textposition="outside", textfont_size=9,
        )
    figure.update_xaxes(showticklabels=False, row=1, col=1)
    figure.update_yaxes(type="log", title_text="ms per window", row=1, col=1)
    figure.update_yaxes(range=[0, 1.1], tickformat=".0%", row=1, col=2)
    figure.update_layout(
        barmode="group", height=600, legend={"orientation": "h", "y": -0.12},
        title=f"Drift detection, {windows} windows of {WINDOW_ROWS:,} x 30 per case against "
              f"{REFERENCE_ROWS:,} reference rows, one core",
    )
    figure.write_html(path, include_plotlyjs=True)


def progress_bar() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description:<44}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console)


def install(progress: Progress) -> tuple[dict[str, dict[str, Any]], float]:
    """Every anchor's venv, installed side by side; returns each one's outcome and the wall time."""
    tasks = {a.name: progress.add_task(f"venv {a.name}", total=1) for a in ANCHORS}

    def one(anchor: Anchor) -> dict[str, Any]:
        result = setup_venv(anchor)
        word = ("cached" if result.get("cached")
                else f"{result['status']} in {result['seconds']:.0f} s")
        progress.update(tasks[anchor.name], description=f"venv {anchor.name}: {word}", completed=1)
        return result

    started = time.perf_counter()
    with ThreadPoolExecutor(len(ANCHORS)) as pool:
        setup = dict(zip((a.name for a in ANCHORS), pool.map(one, ANCHORS), strict=True))
    return setup, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, help="windows per case (default 50; --quick: 6)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 6 windows, Evidently on 1 per case, NannyML 1 repeat")
    args = parser.parse_args()
    windows = args.windows or (6 if args.quick else 50)
    evidently_limit = 1 if args.quick else windows
    repeats = 1 if args.quick else 3
    os.sched_setaffinity(0, {0})
    began = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    info = machine()
    command = shlex.join([os.path.relpath(sys.executable, ROOT),
                          os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    console.rule("mlcanary drift detection benchmark")
    for key, value in info.items():
        console.print(f"{key:>19}: {value}")

    results: dict[str, dict[str, Any]] = {
        m: {"label": m, "decision": d, "timing": "median of per-window calls", "cases": {},
            "detail": "held-out AUC" if m == "mlcanary multivariate" else "drifted columns"}
        for m, d in MLCANARY.items()}
    workers: dict[str, Worker] = {}
    with progress_bar() as progress:
        setup, setup_s = install(progress)
        arrays = write_data(windows)
        start = time.perf_counter()
        reference = mlcanary_reference(arrays["reference"])
        reference_s = time.perf_counter() - start
        run_mlcanary(reference, arrays["null"][:1], lambda n: None)  # warm-up, untimed
        for anchor in ANCHORS:
            results[anchor.name] = {"label": anchor.label, "decision": anchor.decision,
                                    "timing": anchor.timing, "detail": "drifted columns",
                                    "status": setup[anchor.name]["status"],
                                    "error": setup[anchor.name].get("error", "")}
            if setup[anchor.name]["status"] != "ready":
                continue
            task = progress.add_task(f"starting {anchor.name}", total=None)
            try:
                workers[anchor.name] = Worker(anchor, WORK / "data")
                ready = workers[anchor.name].read()["ready"]
                release = next(iter(ready["versions"].values()))
                results[anchor.name].update(worker=ready, label=f"{anchor.label} {release}")
                results[anchor.name]["cases"] = {}
            except WorkerError as error:
                results[anchor.name].update(status="failed", error=str(error))
            progress.remove_task(task)

        totals = {"mlcanary": len(CASES) * windows}
        for name in workers:
            limit = evidently_limit if name == "evidently" else windows
            totals[name] = sum(c.anchors for c in CASES) * limit
        labels = {"mlcanary": "mlcanary (3 figures)",
                  **{a.name: a.label for a in ANCHORS}}
        tasks = {m: progress.add_task(labels[m], total=t) for m, t in totals.items()}
        for case in CASES:
            for method, task in tasks.items():
                progress.update(task, description=f"{labels[method]}: {case.name}")
            per_method = run_mlcanary(reference, arrays[case.name],
                                      lambda n: progress.advance(tasks["mlcanary"], n))
            for method, figures in per_method.items():
                results[method]["cases"][case.name] = figures
            if not case.anchors:
                continue
            for name, worker in list(workers.items()):
                limit = evidently_limit if name == "evidently" else windows
                bar = tasks[name]

                def advance(n: int, bar: TaskID = bar) -> None:
                    progress.advance(bar, n)

                try:
                    results[name]["cases"][case.name] = worker.run(case.name, limit, repeats,
                                                                   advance)
                except WorkerError as error:
                    results[name].update(status="failed", error=str(error))
                    del results[name]["cases"]
                    workers.pop(name).close()
        for worker in workers.values():
            worker.close()

    summarise(results)
    goals = targets(results)
    print_tables(results, goals, windows)
    result = {
        "machine": {**info, "load_average_end": os.getloadavg()},
        "command": command,
        "settings": {
            "windows": windows, "evidently_windows": evidently_limit, "nannyml_repeats": repeats,
            "reference_rows": REFERENCE_ROWS, "window_rows": WINDOW_ROWS,
            "columns": len(COLUMNS), "seed": SEED,
            "importance": IMPORTANCE,
            "importance_note": "permutation importance (MSE increase) of y = sum 0.8^j x_j",
            "cases": {c.name: c.label for c in CASES},
            "slack": "1.645 * sqrt(2 p (1 - p) / n), p the pooled rate within [1/n, 1 - 1/n]",
        },
        "setup": setup,
        "setup_wall_s": setup_s,
        "mlcanary_reference_s": reference_s,
        "methods": results,
        "targets": goals,
        "total_s": time.perf_counter() - began,
    }
    (OUT / "drift.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    chart(results, windows, OUT / "drift.html")
    console.print(f"total {result['total_s']:.0f} s (venv setup {setup_s:.0f} s);"
                  f" wrote {OUT / 'drift.json'} and {OUT / 'drift.html'}")


if __name__ == "__main__":
    main()
