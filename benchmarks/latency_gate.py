"""False failures and power of the fast gate's latency test against the point comparison
it replaced, on simulated intervals (the model of ``tests/control/test_latency_gate.py``:
an overhead and a compute time per request with log-normal noise, and pauses of the
machine that slow the next few requests in flight, of either arm, at once).

    .venv/bin/python benchmarks/latency_gate.py [--trials 1000]

Prints a Markdown table: per case, the share of checks failed on latency by the old rule
(the tail quantiles' point estimates against 2x + 5 ms) and by the test now used, and
the share of checks in which the test waits for more traffic (an estimate beyond the
limit, not yet significant: the rollout's next check reads a longer interval).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.progress import track

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlcanary.control.gates import fast_gate
from tests.control.test_latency_gate import interval, point_comparison_fails

CASES: list[tuple[str, int, float, dict[str, float]]] = [
    ("twin, 3,000 requests at 50%, pauses catch 3", 3000, 0.5, {}),
    ("twin, 3,000 requests at 50%, pauses catch 8", 3000, 0.5, {"in_flight": 8}),
    ("twin, 3,000 requests at 50%, pauses twice as often", 3000, 0.5, {"pause_rate": 0.008}),
    ("twin, 600 requests at 10%, busier machine", 600, 0.1, {"pause_rate": 0.01}),
    ("twin, 400 requests at 50%, busier machine", 400, 0.5, {"pause_rate": 0.01}),
    ("5x slower per call, 1 ms compute (within the margin)", 3000, 0.5, {"slowdown": 5.0}),
    ("6x slower per call, 60 ms compute, 45 requests at 50%", 45, 0.5,
     {"slowdown": 6.0, "compute_ms": 60.0}),
    ("5x slower per call, 5 ms compute, 500 requests at 10%", 500, 0.1,
     {"slowdown": 5.0, "compute_ms": 5.0}),
    ("5x slower per call, 5 ms compute, 3,000 requests at 50%", 3000, 0.5,
     {"slowdown": 5.0, "compute_ms": 5.0}),
    ("5% of challenger calls 100 ms slower, 3,000 at 50%", 3000, 0.5, {"spikes": 0.05}),
    ("2% of challenger calls 100 ms slower, 3,000 at 50%", 3000, 0.5, {"spikes": 0.02}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    rows = [f"| case ({args.trials} checks each) | point comparison fails | test fails "
            "| test waits |", "|---|---|---|---|"]
    for name, requests, share, options in CASES:
        old = new = waits = 0
        for _ in track(range(args.trials), description=name, transient=True):
            champion, challenger = interval(rng, requests, share, **options)  # type: ignore[arg-type]
            old += point_comparison_fails(champion, challenger)
            passed = fast_gate(champion, challenger, champion_share=50.0).passed
            new += passed is False
            waits += passed is None
        rows.append(f"| {name} | {old / args.trials:.1%} | {new / args.trials:.1%} "
                    f"| {waits / args.trials:.1%} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
