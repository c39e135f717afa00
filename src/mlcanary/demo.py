"""``mlcanary demo``: the story told on a generated customer-churn table.

The table has every kind of column the trainer handles (numbers with gaps, a
boolean, low- and high-cardinality categories, a sign-up date, an ID and a
constant), and a churn label that depends on them through a known formula.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.rule import Rule

from mlcanary.config import Settings

DEMO_ROWS = 20_000
DEMO_NAME = "churn"


def make_churn(rows: int = DEMO_ROWS, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """A synthetic telecom-churn table.

    The label follows a fixed formula with thresholds and an interaction. ``drift``
    (0 to 1) is a price rise reaching new customers: shorter tenures, more premium plans,
    higher charges, and churn that reacts more to the charges; at 0 the table is the one
    the champion learns from.
    """
    rng = np.random.default_rng(seed)
    mix = np.array([0.5, 0.3, 0.2]) * (1 - drift) + np.array([0.2, 0.3, 0.5]) * drift
    plan = rng.choice(["basic", "plus", "premium"], rows, p=mix)
    city = rng.choice([f"city-{i:02d}" for i in range(40)], rows)
    tenure = rng.gamma(2.0, 12.0 - 6.0 * drift, rows).astype(int)
    charges = rng.normal(50 + 20 * drift, 15, rows) + np.select(
        [plan == "plus", plan == "premium"], [15, 35], 0
    )
    calls = rng.poisson(1.5, rows)
    autopay = rng.random(rows) < 0.6
    usage = rng.lognormal(2.0, 0.6, rows)
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, rows), unit="D")
    city_effect = 0.9 * np.sin(np.arange(40) * 1.7)[np.array([int(c[-2:]) for c in city])]
    # Thresholds and an interaction: a linear model can only approximate these.
    logit = (
        -2.2
        + 1.6 * (tenure < 6)
        - 0.015 * tenure
        + (0.06 + 0.04 * drift) * np.maximum(charges - 70, 0)
        + 1.1 * (calls >= 3)
        - 0.8 * autopay
        + 1.2 * ((plan == "premium") & ~autopay)
        + city_effect
        - 0.2 * np.log(usage)
        + 0.5 * signup.month.isin([11, 12])
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    usage[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "customer_id": [f"C{100000 + i}" for i in range(rows)],
            "signup_date": signup.strftime("%Y-%m-%d"),
            "plan": plan,
            "city": city,
            "tenure_months": tenure,
            "monthly_charges": charges.round(2),
            "support_calls": calls,
            "autopay": np.where(autopay, "yes", "no"),
            "data_usage_gb": usage.round(2),
            "country": "NL",
            "churned": churned.astype(int),
        }
    )


POLICY = """\
# The demo's policy: drift in 2 of the last 3 windows -> alert and retrain.
[[policy]]
name = "drift-retrain"
model = "churn"
when = "drift"
at_least = 2
of_last = 3
actions = ["alert", "retrain"]

[retrain.churn]
data = "churn.csv"          # the data source the champion was trained on
target = "churned"
source_rows = 10000         # its most recent 10,000 rows ...
log = "fired"               # ... plus the labelled log since the first drifted window
train = { folds = 3 }
rollout = { strategy = "canary", steps = [10, 50, 100], interval_seconds = 4, max_failures = 2 }
"""

SERVER_ENV = {
    "MLCANARY_MONITOR_SECONDS": "1",
    "MLCANARY_POLL_SECONDS": "1",
    "MLCANARY_LOG_FLUSH_SECONDS": "0.5",
    "MLCANARY_WINDOW_ROWS": "1000",
}
"""Faster than the defaults so the story fits in a minute or two."""

PACE = 400
"""Rows per second the demo's client sends."""


def run_demo(settings: Settings, out: Console, err: Console) -> None:
    """The whole loop on generated data, told as a timeline (see the README)."""
    import shutil

    from mlcanary.control.policies import policy_rules
    from mlcanary.control.status import status_document, status_renderable
    from mlcanary.demo_traffic import Client, Timeline, server
    from mlcanary.monitor.report import render_drift_report
    from mlcanary.registry.versions import ModelRegistry

    home = settings.home / "demo"
    if home.exists():
        shutil.rmtree(home)  # every run tells the story from the start
    home.mkdir(parents=True)
    demo = settings.model_copy(update={"home": home, "policy_file": home / "policies.toml"})
    started = time.monotonic()

    _train_champion(demo, out, err)
    (home / "policies.toml").write_text(POLICY, encoding="utf-8")

    out.print(Rule("4. serve: champion v1 behind Open Inference Protocol v2, monitor and policy"))
    env = {**SERVER_ENV, "MLCANARY_POLICY_FILE": str(home / "policies.toml")}
    with server(demo, DEMO_NAME, env, home / "server.log") as url:
        out.print(f"serving at {url} (log: {home / 'server.log'}); policy {home / 'policies.toml'}")
        timeline = Timeline(demo, DEMO_NAME, out)
        client = Client(url, DEMO_NAME, "customer_id", "churned")

        def until(label: str, frame: pd.DataFrame, event: Callable[[], bool],
                  limit_seconds: float) -> None:
            """Replay ``frame`` until ``event``; if it is late, say where things stand."""
            if not _replay(client, frame, timeline, label, out, until=event,
                           limit_seconds=limit_seconds):
                _explain(demo, out)

        try:
            out.print(Rule("5. traffic like the training data; labels arrive as it goes"))
            _replay(client, make_churn(3000, seed=101), timeline, "normal traffic", out)
            out.print(Rule("6. drift arrives: a price rise brings shorter tenures, pricier plans"))
            until("drifted traffic", make_churn(60_000, seed=102, drift=0.6),
                  lambda: timeline.happened("deploy"), 240)
            out.print(Rule("7. the retrained challenger goes through the canary"))
            until("canary", make_churn(60_000, seed=103, drift=0.6),
                  lambda: _finished(timeline), 180)
            out.print(Rule("8. a broken challenger: labels inverted by a bad join"))
            broken = _train_broken(demo, err)
            _deploy(demo, broken)
            until("canary", make_churn(60_000, seed=104, drift=0.6),
                  lambda: timeline.happened("rollback"), 180)
            time.sleep(1.0)
            timeline.poll()
        finally:
            timeline.close()
        failed = client.failed

    out.print(Rule("9. where things stand"))
    from mlcanary.store.database import Store

    registry = ModelRegistry(demo)
    with Store.from_settings(demo) as store:
        document = status_document(store, DEMO_NAME, last=3, policies=policy_rules(demo))
        out.print(status_renderable(document))
        report = demo.reports_dir / f"{DEMO_NAME}-drift.html"
        report.write_text(render_drift_report(store, registry, DEMO_NAME), encoding="utf-8")
    champion = registry.alias_version(DEMO_NAME, "champion")
    out.print(
        f"{client.sent:,} rows answered, {failed} requests failed; champion is now "
        f"version {champion}; {time.monotonic() - started:.0f} s in all\n"
        f"reports: {demo.reports_dir} (training reports per version, drift report {report})\n"
        f"look around: MLCANARY_HOME={home} mlcanary status {DEMO_NAME} | events "
        f"{DEMO_NAME} | models {DEMO_NAME} | report {DEMO_NAME}"
    )


def _train_champion(settings: Settings, out: Console, err: Console) -> None:
    from mlcanary.progress import Steps
    from mlcanary.tables import metrics_table
    from mlcanary.train.publish import train_and_register
    from mlcanary.train.spec import TrainSpec

    path = settings.home / "churn.csv"
    out.print(Rule("1. data"))
    frame = make_churn()
    frame.to_csv(path, index=False)
    out.print(
        f"generated {len(frame):,} customers x {frame.shape[1]} columns -> {path}\n"
        f"churn rate {frame['churned'].mean():.1%}; columns: {', '.join(frame.columns)}"
    )
    out.print(Rule("2. train: LightGBM, 5-fold CV, beside a majority baseline and a linear model"))
    spec = TrainSpec.parse(data=path, target="churned", name=DEMO_NAME, seed=settings.seed)
    result, version, report = train_and_register(spec, settings, Steps(err))
    out.print(metrics_table(result))
    out.print(f"[bold]{result.diagnosis.verdict}[/]: {result.diagnosis.reason}")
    top = sorted(result.importance.items(), key=lambda kv: -kv[1])[:4]
    out.print("what the model uses most: " + ", ".join(f"{c} {s:.0%}" for c, s in top))
    out.print(Rule("3. registry"))
    aliases = ", ".join(version.aliases)
    out.print(
        f"registered [bold]{DEMO_NAME}[/] version {version.version} ({aliases}) "
        f"in {settings.registry_uri}\n"
        f"load it with mlflow.sklearn.load_model('models:/{DEMO_NAME}@champion'); "
        f"training report: {report}"
    )


def _replay(client: Any, frame: pd.DataFrame, timeline: Any, label: str, out: Console, *,
            until: Callable[[], bool] | None = None, limit_seconds: float = 60.0) -> bool:
    """Send ``frame`` in 5-row requests at ``PACE`` rows/s, labels every 100 rows.

    Returns whether ``until`` came true (always True without one)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    batch = 5
    start = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} rows"),
               TimeElapsedColumn())
    with Progress(*columns, console=out, transient=True) as progress:
        task = progress.add_task(label, total=len(frame) if until is None else None)
        for i in range(0, len(frame), batch):
            client.send(frame.iloc[i:i + batch])
            progress.update(task, completed=i + batch)
            if (i // batch) % 20 == 19:
                client.flush_labels()
                timeline.poll()
                if until is not None and until():
                    break
                if time.monotonic() - start > limit_seconds:
                    out.print(f"[yellow]{label}: stopped after {limit_seconds:.0f} s[/]")
                    break
            pause = start + (i + batch) / PACE - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        client.flush_labels()
        timeline.poll()
    return until is None or until()


def _explain(settings: Settings, out: Console) -> None:
    """What the monitor and the rollout say when a step of the story did not come."""
    from mlcanary.control.policies import policy_rules
    from mlcanary.control.status import status_document, status_renderable
    from mlcanary.store.database import Store

    with Store.from_settings(settings) as store:
        document = status_document(store, DEMO_NAME, last=3, policies=policy_rules(settings))
    out.print("[yellow]the story is late; where things stand now:[/]")
    out.print(status_renderable(document))


def _finished(timeline: Any) -> bool:
    return bool(timeline.happened("promote") or timeline.happened("rollback"))


def _train_broken(settings: Settings, err: Console) -> int:
    """A version trained on recent data whose labels a bad join inverted."""
    from mlcanary.progress import Steps
    from mlcanary.train.publish import train_and_register
    from mlcanary.train.spec import TrainSpec

    frame = make_churn(3000, seed=105, drift=0.6)
    path = settings.home / "churn-bad-join.csv"
    frame.assign(churned=1 - frame["churned"]).to_csv(path, index=False)
    spec = TrainSpec.parse(data=path, target="churned", name=DEMO_NAME, model="logistic",
                           folds=3, seed=settings.seed)
    _, version, _ = train_and_register(spec, settings, Steps(err))
    return version.version


def _deploy(settings: Settings, version: int) -> None:
    from mlcanary.control import actions
    from mlcanary.registry.versions import ModelRegistry
    from mlcanary.store.database import Store
    from mlcanary.store.deployments import DeploymentLog

    with Store.from_settings(settings) as store:
        actions.deploy(ModelRegistry(settings), DeploymentLog(store), DEMO_NAME,
                       challenger=version, strategy="canary", steps=[10, 50, 100],
                       interval_seconds=4, max_failures=2, actor="user")
