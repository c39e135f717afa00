"""What monitoring costs in throughput: ``mlcanary serve`` with the prediction log and the
monitor (the default) against the same server with both off, in alternating pairs.

The serving benchmark compares four servers a few times each; on a shared two-core
machine two runs of one server differ by 10-20%, more than the effect measured here.
This script runs only the two mlcanary servers, side by side (both started once, each
pinned to core 0 when its turn comes, wrk on core 1), at the serving issue's target
workload (one-row requests over 64 connections), in ``--pairs`` back-to-back pairs whose
order alternates (on, off, off, on, ...). Each pair gives one ratio on / off; the figure
is their median, with a bootstrap 95% interval of the median.

    .venv/bin/python benchmarks/log_cost.py                 # 12 pairs of 8 s runs (~5 min)
    .venv/bin/python benchmarks/log_cost.py --pairs 4 --duration 4 --rows 20000   # smoke
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from serving import BIN, OUT, console, free_port, machine, prepare, run, start, stop, wrk

SERVERS = ("mlcanary", "mlcanary-nolog")
TARGET = 0.90
CONNECTIONS = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="training rows")
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--on-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra setting for the monitoring-on server (e.g. "
                        "MLCANARY_MONITOR=false to measure the log alone)")
    args = parser.parse_args()
    began = time.perf_counter()
    info = machine()
    live: list[Any] = []
    rates: dict[str, list[float]] = {s: [] for s in SERVERS}
    with tempfile.TemporaryDirectory(prefix="mlcanary-log-cost-") as name:
        tmp = Path(name)
        _, env, _ = prepare(tmp, args.rows)
        logs = OUT / "log-cost-logs"
        logs.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
        base = {**env, "MLCANARY_ACCESS_LOG": "false"}
        extra = dict(item.split("=", 1) for item in args.on_env)
        settings = {"mlcanary": {**base, **extra},
                    "mlcanary-nolog": {**base, "MLCANARY_LOG_SAMPLE_RATE": "0",
                                       "MLCANARY_MONITOR": "false"}}
        try:
            servers = {}
            for s in SERVERS:
                port = free_port()
                cmd = [str(BIN / "mlcanary"), "serve", "bench", "--port", str(port)]
                servers[s] = start(s, cmd, port, logs / f"{s}.log", live, env=settings[s],
                                   cwd=tmp)
            body = tmp / "body-mlcanary-1.json"
            for s in SERVERS:  # warm-up
                wrk(servers[s]["port"], body, tmp / "body.lua", 16, 2)
            for pair in range(args.pairs):
                order = SERVERS if pair % 2 == 0 else SERVERS[::-1]
                for s in order:
                    r = wrk(servers[s]["port"], body, tmp / "body.lua", CONNECTIONS,
                            args.duration)
                    if r["non_2xx"] or r["socket_errors"]:
                        console.print(f"[red]{s}: {r['non_2xx']} non-2xx, "
                                      f"{r['socket_errors']} socket errors[/]")
                    rates[s].append(r["rps"])
                    time.sleep(1)
                ratio = rates["mlcanary"][-1] / rates["mlcanary-nolog"][-1]
                console.print(f"pair {pair + 1:>2}/{args.pairs}: on {rates['mlcanary'][-1]:>7,.0f}"
                              f" req/s, off {rates['mlcanary-nolog'][-1]:>7,.0f} req/s, "
                              f"on/off {ratio:.3f}")
            logged = _logged(tmp)
        finally:
            for proc in live:
                stop(proc)
    ratios = [a / b for a, b in zip(rates["mlcanary"], rates["mlcanary-nolog"], strict=True)]
    median = statistics.median(ratios)
    low, high = _bootstrap_median(ratios)
    met = median >= TARGET
    console.print(f"monitoring on / off at 1 row x {CONNECTIONS} conn: median {median:.3f} "
                  f"(95% interval {low:.3f}-{high:.3f}; pairs range {min(ratios):.3f}-"
                  f"{max(ratios):.3f}); target >= {TARGET}: {'met' if met else 'NOT met'}; "
                  f"{logged:,} predictions logged")
    result = {**info, "args": vars(args), "rates": rates, "ratios": ratios, "median": median,
              "ci95": [low, high], "target_met": met, "predictions_logged": logged,
              "total_s": round(time.perf_counter() - began, 1)}
    (OUT / "log-cost.json").write_text(json.dumps(result, indent=2) + "\n")
    figure = go.Figure()
    for s in SERVERS:
        figure.add_scatter(x=list(range(1, args.pairs + 1)), y=rates[s], name=s,
                           mode="lines+markers")
    figure.update_layout(title=f"req/s per pair, monitoring on vs off: median ratio "
                         f"{median:.3f} [{low:.3f}, {high:.3f}]", xaxis_title="pair",
                         yaxis_title="requests/s")
    figure.write_html(OUT / "log-cost.html", include_plotlyjs="cdn")
    console.print(f"wrote {OUT / 'log-cost.json'} and .html")


def _bootstrap_median(values: list[float], draws: int = 10_000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    sample = rng.choice(np.asarray(values), size=(draws, len(values)), replace=True)
    medians = np.median(sample, axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def _logged(tmp: Path) -> int:
    """Predictions in the store: the log did keep up (a drop-everything log is not cheap)."""
    code = ("from mlcanary.store.database import Store; from mlcanary.config import Settings; "
            f"s = Store.from_settings(Settings(home='{tmp / 'home'}')).open(); "
            "print(s.count('bench'))")
    return int(run([str(BIN / "python"), "-c", code]).strip())


if __name__ == "__main__":
    main()
