"""Retraining: a policy fires, a challenger is trained on source + labelled log, rolled out."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcanary.config import Settings
from mlcanary.control.policies import AlertSink, PolicyRunner, load_policy_file
from mlcanary.control.retrain import RetrainWorker
from mlcanary.demo import make_churn
from mlcanary.registry.versions import BUNDLE_DIR, ModelRegistry
from mlcanary.serve.validation import columns_from_frame
from mlcanary.signature import Signature
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog
from mlcanary.store.records import PredictionRecord
from mlcanary.store.signals import Signal, SignalLog
from mlcanary.train.fit import train
from mlcanary.train.publish import publish
from mlcanary.train.schema import is_identifier
from mlcanary.train.spec import TrainSpec
from tests.conftest import cli_runner, with_registry

SOURCE_ROWS = 1200
POLICY = """
[[policy]]
name = "drifting"
model = "churn"
when = "drift"
at_least = 2
of_last = 3
actions = ["retrain"]

[retrain.churn]
data = "{data}"
target = "churned"
train = {{ model = "logistic", folds = 3 }}
rollout = {{ strategy = "canary", steps = [10, 50, 100], interval_seconds = 30 }}
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("retrain")
    path = root / "churn.csv"
    make_churn(SOURCE_ROWS, seed=41).to_csv(path, index=False)
    settings = Settings(home=with_registry(root / "home"))
    spec = TrainSpec.parse(data=path, target="churned", name="churn", model="logistic",
                           folds=3, promote=True)
    publish(train(spec, settings), ModelRegistry(settings), "<html></html>")
    return root


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "root")
    return tmp_path / "root"


def log_labelled(store: Store, settings: Settings, frame: pd.DataFrame, ts: float,
                 labelled: bool = True, variant: str = "champion") -> None:
    """Log ``frame``'s rows as the server would (validated columns), 50 rows a request."""
    signature = Signature.from_dict(ModelRegistry(settings).bundle("churn", 1, "signature.json"))
    records, feedback = [], []
    for start in range(0, len(frame), 50):
        part = frame.iloc[start:start + 50]
        rows = len(part)
        id_ = f"{variant}-{ts}-{start:06d}"  # read back in id order
        records.append(PredictionRecord(
            id_, ts, "churn", 1, columns_from_frame(part.drop(columns="churned"), signature),
            np.zeros(rows, dtype=np.int64), np.full((rows, 2), 0.5), [0, 1], 1.0, variant,
        ))
        feedback.append((id_, part["churned"].tolist()))
    store.write_predictions(records)
    if labelled:
        store.add_feedback("churn", feedback)


def drift_signal(k: int, start: float, flagged: bool) -> Signal:
    return Signal("churn", "champion", 1, "drift", start, start + 10, f"last-{k}", 200,
                  flagged, {"drift_share": 0.5 if flagged else 0.0, "drifted_columns": []})


def test_a_firing_policy_retrains_on_source_and_the_fired_log_window_and_starts_a_canary(
    root: Path,
) -> None:
    policy = root / "policies.toml"
    policy.write_text(POLICY.format(data="churn.csv"))
    settings = Settings(home=root / "home", policy_file=policy)
    rules, plans = load_policy_file(policy)
    now = time.time()
    drifted = make_churn(300, seed=42)
    with Store.from_settings(settings) as store:
        log_labelled(store, settings, make_churn(200, seed=43), ts=now - 1000)  # before drift
        log_labelled(store, settings, drifted, ts=now - 50)  # in the flagged windows
        log_labelled(store, settings, make_churn(100, seed=44), ts=now - 40, labelled=False)
        log_labelled(store, settings, make_churn(100, seed=45), ts=now - 30, variant="shadow")
        signals, events = SignalLog(store), DeploymentLog(store)
        worker = RetrainWorker(settings, plans, events)
        runner = PolicyRunner(rules, signals, events, AlertSink(), worker)
        signals.add(drift_signal(0, now - 100, True))
        assert runner.tick() == []  # one of two windows: nothing yet
        signals.add(drift_signal(1, now - 60, True))
        runner.tick()
        worker.join(timeout=300)
        trail = events.events("churn")
        deployment = events.get("churn")
    kinds = [(e.kind, (e.after or {}).get("status")) for e in trail]
    assert kinds[0] == ("retrain", "started"), kinds
    registered = [e for e in trail if e.kind == "retrain" and e.after["status"] == "registered"]
    assert len(registered) == 1, kinds
    lineage = registered[0].after["lineage"]
    # Only labelled, non-shadow rows since the first flagged window: the 300 drifted rows.
    assert (lineage["source_rows"], lineage["log_rows"]) == (SOURCE_ROWS, len(drifted))
    assert lineage["log_since"] == pytest.approx(now - 100)
    assert registered[0].actor == "policy:drifting"
    assert registered[0].cause["signals"][-1]["flagged"] is True
    table = pd.read_parquet(lineage["table"])
    assert len(table) == SOURCE_ROWS + len(drifted)
    assert table["autopay"].dtype == "boolean"  # "yes"/"no" and logged True/False, one type
    assert table["churned"].tolist()[SOURCE_ROWS:] == drifted["churned"].tolist()
    version = ModelRegistry(settings).version("churn", 2)
    assert json.loads(version.tags["mlcanary.retrain"])["log_rows"] == len(drifted)
    # its drift reference is what production looks like now: the logged rows
    assert lineage["reference_last"] == len(drifted)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = ModelRegistry(settings).download("churn", 2, Path(tmp)) / BUNDLE_DIR
        reference = pd.read_parquet(bundle / "reference.parquet")
    assert len(reference) == len(drifted)
    np.testing.assert_allclose(np.sort(reference["monthly_charges"].to_numpy(float)),
                               np.sort(drifted["monthly_charges"].to_numpy(float)))
    assert version.tags["mlcanary.trigger"] == "policy:drifting"
    # The log repeats the source's customer IDs: still the champion's identifier, not a
    # category the new version would refuse new customers by.
    new = Signature.from_dict(ModelRegistry(settings).bundle("churn", 2, "signature.json"))
    assert table["customer_id"].nunique() < 0.95 * len(table)
    assert is_identifier({c.name: c for c in new.columns}["customer_id"])
    assert deployment is not None and deployment.active
    assert (deployment.strategy, deployment.challenger, deployment.champion) == ("canary", 2, 1)
    assert deployment.weights["challenger"] == 10.0
    assert ModelRegistry(settings).alias_version("churn", "challenger") == 2


def test_a_failed_retrain_is_an_event_and_changes_nothing(root: Path) -> None:
    policy = root / "policies.toml"
    policy.write_text(POLICY.format(data="gone.csv"))
    settings = Settings(home=root / "home", policy_file=policy)
    rules, plans = load_policy_file(policy)
    now = time.time()
    with Store.from_settings(settings) as store:
        signals, events = SignalLog(store), DeploymentLog(store)
        worker = RetrainWorker(settings, plans, events)
        runner = PolicyRunner(rules, signals, events, AlertSink(), worker)
        signals.add(drift_signal(0, now - 100, True))
        signals.add(drift_signal(1, now - 60, True))
        runner.tick()
        worker.join(timeout=60)
        trail = events.events("churn")
        deployment = events.get("churn")
    assert [e.kind for e in trail] == ["retrain", "retrain_failed"]
    assert "gone.csv" in trail[-1].cause["reason"] and "does not exist" in trail[-1].cause["reason"]
    assert deployment is None
    assert [v.version for v in ModelRegistry(settings).versions("churn")] == [1]


def test_mlcanary_retrain_runs_the_plan_and_says_what_it_made(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = root / "policies.toml"
    policy.write_text(POLICY.format(data=root / "churn.csv"))
    cli = cli_runner(root / "home")
    missing = cli("retrain", "churn")
    assert missing.code == 2 and "MLCANARY_POLICY_FILE" in missing.stderr
    monkeypatch.setenv("MLCANARY_POLICY_FILE", str(policy))
    made = cli("retrain", "churn")
    unknown = cli("retrain", "other")
    assert made.code == 0, made.stderr
    assert "version 2" in made.stdout and f"{SOURCE_ROWS:,} rows" in made.stdout
    assert "canary" in made.stdout
    assert unknown.code == 2 and "no [retrain.other] table" in unknown.stderr
