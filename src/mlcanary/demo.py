"""``mlcanary demo``: the story told on a generated customer-churn table.

The table has every kind of column the trainer handles (numbers with gaps, a
boolean, low- and high-cardinality categories, a sign-up date, an ID and a
constant), and a churn label that depends on them through a known formula.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rich.console import Console
from rich.rule import Rule

from mlcanary.config import Settings

DEMO_ROWS = 20_000
DEMO_NAME = "churn"


def make_churn(rows: int = DEMO_ROWS, seed: int = 0) -> pd.DataFrame:
    """A synthetic telecom-churn table.

    The label follows a fixed formula with thresholds and an interaction.
    """
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "premium"], rows, p=[0.5, 0.3, 0.2])
    city = rng.choice([f"city-{i:02d}" for i in range(40)], rows)
    tenure = rng.gamma(2.0, 12.0, rows).astype(int)
    charges = rng.normal(50, 15, rows) + np.select([plan == "plus", plan == "premium"], [15, 35], 0)
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
        + 0.06 * np.maximum(charges - 70, 0)
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


def run_demo(settings: Settings, out: Console, err: Console) -> None:
    """Generate the data, train a champion, and show where everything went."""
    from mlcanary.progress import Steps
    from mlcanary.tables import metrics_table
    from mlcanary.train.publish import train_and_register
    from mlcanary.train.spec import TrainSpec

    data_dir = settings.home / "demo"
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "churn.csv"
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
        f"load it with mlflow.sklearn.load_model('models:/{DEMO_NAME}@champion')\n"
        f"list versions with: mlcanary models {DEMO_NAME}\n"
        f"report: {report}"
    )
