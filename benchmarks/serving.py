"""Serving throughput and latency of ``mlcanary serve`` against plain FastAPI and Seldon MLServer.

All three serve the very same fitted pipeline (trained once with ``mlcanary train``), each as
one process pinned to core 0 with ``wrk`` pinned to core 1; the same V2 JSON request bodies
(one ``input-0`` [n, 30] FP64 tensor); runs interleaved within each repeat, so the ratios
compare servers on the same machine state.

    .venv/bin/python benchmarks/serving.py                                      # full run
    .venv/bin/python benchmarks/serving.py --rows 20000 --duration 3 --repeats 1  # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from rich.console import Console
from rich.table import Table
from sklearn.datasets import make_classification
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlcanary.config import Settings
from mlcanary.registry.versions import ModelRegistry

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
VENV = OUT / "venvs" / "mlserver"
BIN = Path(sys.executable).parent
COLUMNS = [f"f{i}" for i in range(30)]
SERVERS = ("mlcanary", "mlcanary-nolog", "fastapi", "mlserver")
"""``mlcanary`` logs every prediction and runs the monitor (the default); ``mlcanary-nolog``
runs with both off, to measure what monitoring costs."""
OUTPUT_NAME = {"mlcanary": "probabilities", "mlcanary-nolog": "probabilities",
               "fastapi": "probabilities", "mlserver": "predict_proba"}
WORKLOADS = {"1 row x 1 conn": (1, 1), "1 row x 16 conn": (1, 16), "1 row x 64 conn": (1, 64),
             "64 rows x 64 conn": (64, 64)}  # rows per request, connections
TARGET = "1 row x 64 conn"
console = Console(highlight=False, width=132)

FASTAPI_APP = '''"""Plain FastAPI anchor: parse the JSON, build a DataFrame, predict_proba."""
import sys
import joblib, numpy as np, pandas as pd, uvicorn
from fastapi import FastAPI, Request

COLUMNS = [f"f{i}" for i in range(30)]
pipeline = joblib.load(sys.argv[1])
app = FastAPI()

@app.get("/v2/health/ready")
async def ready():
    return {"ready": True}

@app.post("/v2/models/bench/infer")
async def infer(request: Request):
    body = await request.json()
    tensor = next(t for t in body["inputs"] if t["name"] == "input-0")
    rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    proba = pipeline.predict_proba(pd.DataFrame(rows, columns=COLUMNS))
    output = {"name": "probabilities", "datatype": "FP64", "shape": list(proba.shape),
              "data": proba.ravel().tolist()}
    return {"model_name": "bench", "id": body.get("id", ""), "outputs": [output]}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
            workers=1, log_level="warning", access_log=False)
'''

WRK_LUA = """local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "status": %d, "p50_us": %d, "p99_us": %d}\\n',
    s.requests, s.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run(cmd: list[str], **kwargs: Any) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:5])} ... failed ({done.returncode}):\n"
                 f"{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def mlserver_venv(release: str) -> str:
    """MLServer in its own venv with the project's exact model libraries; reused when pinned."""
    pins = [f"mlserver=={release}", f"mlserver-sklearn=={release}"] + [
        f"{p}=={version(p)}" for p in ("scikit-learn", "lightgbm", "pandas", "numpy", "httptools")
    ]
    stamp, py = VENV / ".bench-pins", VENV / "bin" / "python"
    if not stamp.exists() or stamp.read_text() != " ".join(pins):
        console.print(f"installing {' '.join(pins)} into {VENV} ...")
        if not py.exists():
            run(["python3", "-m", "venv", str(VENV)])
        run([str(py), "-m", "pip", "install", "-q", *pins])
        run([str(py), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)])
        stamp.write_text(" ".join(pins))
    code = "import importlib.metadata as m; print(m.version('mlserver'))"
    return run([str(py), "-c", code]).strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(name: str, cmd: list[str], port: int, log: Path, live: list[Any], **kwargs: Any
          ) -> dict[str, Any]:
    """Start a server pinned to core 0; return when /v2/health/ready answers 200."""
    began = time.perf_counter()
    with log.open("wb") as sink:
        proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=sink,
                                stderr=subprocess.STDOUT, **kwargs)
    live.append(proc)
    server = {"name": name, "proc": proc, "port": port}
    while time.perf_counter() - began < 180:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    server["cold_s"] = time.perf_counter() - began
                    return server
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{name} not ready after 180 s; see {log}")


def rss_mb(pid: int) -> float:
    """VmRSS of the server process (one process each: no workers, no children), MB."""
    status = Path(f"/proc/{pid}/status").read_text().split()
    return int(status[status.index("VmRSS:") + 1]) / 1024


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(port: int, body: Path, lua: Path, conns: int, seconds: int,
        env: dict[str, str] | None = None, model: str = "bench") -> dict[str, float]:
    """``wrk`` on core 1 against the model's infer endpoint; ``env`` is for the Lua script."""
    out = run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout",
               "10s", "--latency", "-s", str(lua),
               f"http://127.0.0.1:{port}/v2/models/{model}/infer"],
              env={**os.environ, **(env or {}), "BODY_FILE": str(body)}, timeout=seconds + 60)
    r = json.loads(next(line for line in out.splitlines() if line.startswith("WRKJSON"))[8:])
    ok = r["requests"] - r["status"]
    return {"rps": ok / (r["duration_us"] / 1e6), "p50_ms": r["p50_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000, "non_2xx": r["status"],
            "socket_errors": r["connect"] + r["read"] + r["write"] + r["timeout"]}


def machine() -> dict[str, Any]:
    cpu = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
           if ln.startswith("model name")]
    mem = Path("/proc/meminfo").read_text().split()
    libs = "mlcanary lightgbm scikit-learn pandas numpy uvicorn starlette fastapi uvloop httptools"
    return {"date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "cpu": cpu[0] if cpu else "?", "cores": os.cpu_count(),
            "memory_gib": round(int(mem[mem.index("MemTotal:") + 1]) / 2**20, 1),
            "os": platform.platform(), "python": platform.python_version(),
            "commit": run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip(),
            "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True,
                                  check=False).stdout.split("[")[0].strip(),
            **{lib: version(lib) for lib in libs.split()}}


def prepare(tmp: Path, rows: int) -> tuple[Any, dict[str, str], np.ndarray]:
    """Train with the CLI, save the champion for the anchors, write request bodies."""
    X, y = make_classification(n_samples=rows, n_features=30, n_informative=12, random_state=0)
    frame = pd.DataFrame(X, columns=COLUMNS).assign(target=y)
    frame.to_csv(tmp / "data.csv", index=False)
    env = {**os.environ, "MLCANARY_HOME": str(tmp / "home")}
    console.print(f"training on {rows:,} rows with mlcanary train ...")
    run([str(BIN / "mlcanary"), "train", "data.csv", "--target", "target", "--name", "bench"],
        env=env, cwd=tmp)
    pipeline = ModelRegistry(Settings(home=tmp / "home")).load("bench", "champion")
    joblib.dump(pipeline, tmp / "model.joblib")
    # MLServer's sklearn runtime hands the model a NumPy array: name its columns first.
    frame_step = FunctionTransformer(pd.DataFrame, kw_args={"columns": COLUMNS})
    (tmp / "mlserver" / "bench").mkdir(parents=True)
    joblib.dump(Pipeline([("frame", frame_step), ("model", pipeline)]),
                tmp / "mlserver" / "bench" / "model.joblib")
    (tmp / "anchor_fastapi.py").write_text(FASTAPI_APP)
    (tmp / "body.lua").write_text(WRK_LUA)
    sample = frame[COLUMNS].iloc[1000:1064].to_numpy()
    for server in SERVERS:
        for n in (1, 64):
            tensor = {"name": "input-0", "datatype": "FP64", "shape": [n, 30],
                      "data": sample[:n].ravel().tolist()}
            doc = {"inputs": [tensor], "outputs": [{"name": OUTPUT_NAME[server]}]}
            (tmp / f"body-{server}-{n}.json").write_text(json.dumps(doc))
    return pipeline, env, sample


def launch(tmp: Path, env: dict[str, str], rep: int, logs: Path, live: list[Any]) -> dict[str, Any]:
    """Start the three servers one after the other (each timed from spawn to ready)."""
    ports = {s: free_port() for s in SERVERS}
    (tmp / "mlserver" / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": ports["mlserver"], "grpc_port": free_port(),
        "metrics_port": free_port(), "parallel_workers": 0, "debug": False}))
    (tmp / "mlserver" / "bench" / "model-settings.json").write_text(json.dumps({
        "name": "bench", "implementation": "mlserver_sklearn.SKLearnModel",
        "max_batch_size": 64, "max_batch_time": 0.01, "parameters": {"uri": "./model.joblib"}}))
    commands = {
        "mlcanary": ([str(BIN / "mlcanary"), "serve", "bench", "--port", str(ports["mlcanary"])],
                     {**env, "MLCANARY_ACCESS_LOG": "false"}, tmp),
        "mlcanary-nolog": ([str(BIN / "mlcanary"), "serve", "bench", "--port",
                            str(ports["mlcanary-nolog"])],
                           {**env, "MLCANARY_ACCESS_LOG": "false", "MLCANARY_LOG_SAMPLE_RATE": "0",
                            "MLCANARY_MONITOR": "false"}, tmp),
        "fastapi": ([sys.executable, "anchor_fastapi.py", "model.joblib", str(ports["fastapi"])],
                    None, tmp),
        "mlserver": ([str(VENV / "bin" / "mlserver"), "start", "."], None, tmp / "mlserver"),
    }
    servers = {}
    for s, (cmd, senv, cwd) in commands.items():
        servers[s] = start(s, cmd, ports[s], logs / f"{s}-{rep}.log", env=senv, cwd=cwd, live=live)
    return servers


def verify(server: dict[str, Any], tmp: Path, expected: np.ndarray, rep: int) -> None:
    s = server["name"]
    for n in (1, 64):
        request = urllib.request.Request(
            f"http://127.0.0.1:{server['port']}/v2/models/bench/infer",
            (tmp / f"body-{s}-{n}.json").read_bytes(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        out = next(o for o in answer["outputs"] if o["name"] == OUTPUT_NAME[s])
        diff = float(np.abs(np.reshape(out["data"], (-1, 2)) - expected[:n]).max())
        console.print(f"rep {rep} {s:<9}: ready in {server['cold_s']:.2f} s; {n}-row answer vs "
                      f"in-process predict_proba: max abs diff {diff:.1e}")
        if diff > 1e-6:
            raise RuntimeError(f"{s}: answers differ from the in-process pipeline")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="training rows")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mlserver", default="1.7.1", help="MLServer release to install")
    args = parser.parse_args()
    began = time.perf_counter()
    info = {**machine(), "mlserver": mlserver_venv(args.mlserver)}
    console.rule("mlcanary serve benchmark")
    for key, value in info.items():
        console.print(f"{key:>13}: {value}")
    logs = OUT / "serving-logs"
    logs.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    starts: list[dict[str, Any]] = []
    live: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="mlcanary-serve-bench-") as name:
        tmp = Path(name)
        pipeline, env, sample = prepare(tmp, args.rows)
        info["prepare_s"] = round(time.perf_counter() - began, 1)  # data, training, models
        expected = pipeline.predict_proba(pd.DataFrame(sample, columns=COLUMNS))
        os.sched_setaffinity(0, {1})  # the driver stays off the servers' core
        signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
        try:
            for rep in range(1, args.repeats + 1):
                servers = launch(tmp, env, rep, logs, live)
                for server in servers.values():
                    verify(server, tmp, expected, rep)
                    wrk(server["port"], tmp / f"body-{server['name']}-1.json", tmp / "body.lua",
                        16, min(2, args.duration))  # warm-up
                for w, (workload, (n, conns)) in enumerate(WORKLOADS.items()):
                    k = (rep + w) % len(SERVERS)  # rotate who runs first
                    for s in SERVERS[k:] + SERVERS[:k]:
                        r = wrk(servers[s]["port"], tmp / f"body-{s}-{n}.json", tmp / "body.lua",
                                conns, args.duration)
                        r |= {"repeat": rep, "workload": workload, "server": s,
                              "rows_s": r["rps"] * n}
                        runs.append(r)
                        console.print(f"rep {rep} {r['workload']:<16} {s:<9} {r['rps']:>7,.0f} "
                                      f"req/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:7.1f} ms"
                                      f"  non-2xx {r['non_2xx']}  socket errors "
                                      f"{r['socket_errors']}")
                        time.sleep(1)
                for s, server in servers.items():
                    starts.append({"repeat": rep, "server": s, "cold_s": server["cold_s"],
                                   "rss_mb": rss_mb(server["proc"].pid)})
                    stop(server["proc"])
        finally:
            for proc in live:
                stop(proc)
    report(info, runs, starts, args, time.perf_counter() - began)


def report(info: dict[str, Any], runs: list[dict[str, Any]], starts: list[dict[str, Any]],
           args: argparse.Namespace, total_s: float) -> None:
    """Medians over repeats; ratios mlcanary / anchor within each repeat, then their median."""
    def cell(wl: str, s: str, rep: int) -> dict[str, Any]:
        return next(r for r in runs if (r["workload"], r["server"], r["repeat"]) == (wl, s, rep))

    def ratio(wl: str, anchor: str, key: str) -> float:
        return statistics.median(cell(wl, "mlcanary", i)[key] / cell(wl, anchor, i)[key]
                                 for i in range(1, args.repeats + 1))

    table = Table(title=f"V2 inference, medians of {args.repeats} x {args.duration:g} s runs")
    for col in ("workload", "server", "req/s", "rows/s", "p50 ms", "p99 ms", "non-2xx",
                "sock err", "x FastAPI", "x MLServer", "p99 / MLServer's", "x log off"):
        table.add_column(col, justify="left" if col in ("workload", "server") else "right")
    summary: dict[str, dict[str, float]] = {}
    for wl in WORKLOADS:
        for s in SERVERS:
            rs = [r for r in runs if (r["workload"], r["server"]) == (wl, s)]
            row = {k: statistics.median(r[k] for r in rs) for k in ("rps", "rows_s", "p50_ms",
                                                                   "p99_ms")}
            row |= {k: sum(r[k] for r in rs) for k in ("non_2xx", "socket_errors")}
            if s == "mlcanary":
                row |= {"x_fastapi": ratio(wl, "fastapi", "rps"),
                        "x_mlserver": ratio(wl, "mlserver", "rps"),
                        "p99_vs_mlserver": ratio(wl, "mlserver", "p99_ms"),
                        "x_nolog": ratio(wl, "mlcanary-nolog", "rps")}
            summary[f"{wl} | {s}"] = row
            table.add_row(wl, s, *(f"{row[k]:,.0f}" for k in ("rps", "rows_s")),
                          *(f"{row[k]:.1f}" for k in ("p50_ms", "p99_ms")),
                          *(f"{row[k]:.0f}" for k in ("non_2xx", "socket_errors")),
                          *(f"{row[k]:.2f}" if k in row else "" for k in
                            ("x_fastapi", "x_mlserver", "p99_vs_mlserver", "x_nolog")),
                          style="bold" if s == "mlcanary" else None)
        table.add_section()
    console.print(table)
    for s in SERVERS:
        mine = [b for b in starts if b["server"] == s]
        console.print(f"{s:<9} cold start (spawn to ready) "
                      f"{statistics.median(b['cold_s'] for b in mine):.2f} s, resident memory "
                      f"after the runs {statistics.median(b['rss_mb'] for b in mine):.0f} MB")
    head = summary[f"{TARGET} | mlcanary"]
    targets = {">= 2x FastAPI req/s": head["x_fastapi"] >= 2,
               ">= 1.5x MLServer req/s": head["x_mlserver"] >= 1.5,
               "p99 <= MLServer's": head["p99_vs_mlserver"] <= 1,
               "monitoring on >= 90% of off": head["x_nolog"] >= 0.9}
    for goal, met in targets.items():
        console.print(f"target at {TARGET}: {goal}: {'met' if met else 'NOT met'}")
    result = {**info, "args": vars(args), "runs": runs, "starts": starts, "summary": summary,
              "targets": targets, "total_benchmark_s": round(total_s, 1)}
    stem = OUT / f"serving-{args.rows}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("rows/s (median)", "p99 latency, ms"))
    names = list(WORKLOADS)
    for s in SERVERS:
        for col, key in ((1, "rows_s"), (2, "p99_ms")):
            fig.add_trace(go.Bar(name=s, x=names, y=[summary[f"{w} | {s}"][key] for w in names],
                                 legendgroup=s, showlegend=col == 1), row=1, col=col)
    fig.update_layout(barmode="group", title=f"mlcanary serve vs plain FastAPI vs MLServer "
                      f"{info['mlserver']}, one core each, {info['date']}")
    fig.update_yaxes(type="log")
    fig.write_html(stem.with_suffix(".html"), include_plotlyjs=True)
    console.print(f"total {total_s:.0f} s; wrote {stem}.json and .html")


if __name__ == "__main__":
    main()
