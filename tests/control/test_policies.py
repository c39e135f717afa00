"""Policies: champion signals -> signed alerts to a real HTTP endpoint, with events."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mlcanary.control.policies import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AlertSink,
    PolicyRunner,
    load_policies,
)
from mlcanary.control.status import status_document, status_renderable
from mlcanary.errors import InvalidInput
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog
from mlcanary.store.signals import Signal, SignalLog
from tests.monitor.databases import DATABASES, store_url

SECRET = "hook-secret"
RULES = """
[[policy]]
name = "drifting"
model = "churn"
when = "drift"
at_least = 3
of_last = 5
cooldown_seconds = 600
"""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real webhook on 127.0.0.1 that keeps what it receives."""
    received: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": body, "headers": dict(self.headers)})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def window(k: int, flagged: bool, variant: str = "champion") -> Signal:
    """A champion drift window as the monitor records it (the payload status reads)."""
    return Signal("churn", variant, 1, "drift", 100.0 * k, 100.0 * k + 50, f"id-{k}", 1000,
                  flagged, {"dataset_drift": flagged, "drift_share": 0.6 if flagged else 0.0,
                            "drifted_columns": ["plan"] if flagged else [],
                            "prediction_drift": None, "multivariate": None, "tests": []})


def test_three_drifted_windows_of_five_send_one_signed_alert(
    tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = receiver
    path = tmp_path / "policies.toml"
    path.write_text(RULES)
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        signals, events = SignalLog(store), DeploymentLog(store)
        runner = PolicyRunner(load_policies(path), signals, events, AlertSink(url, SECRET))
        for k, flagged in enumerate([True, False, True, False]):
            signals.add(window(k, flagged))
            assert runner.tick(now=1000.0 + k) == []  # two of four: not yet
        signals.add(window(10, True, variant="challenger"))  # not the champion's
        assert runner.tick(now=1010.0) == []
        signals.add(window(4, True))
        (event,) = runner.tick(now=1020.0)
        assert event.actor == "policy:drifting" and "delivered (204)" in event.cause["delivery"]
        signals.add(window(5, True))
        assert runner.tick(now=1030.0) == []  # cooldown: one alert per 600 s
        assert [e.kind for e in events.events("churn")] == ["alert"]
    (alert,) = received
    timestamp = alert["headers"][TIMESTAMP_HEADER]
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + alert["body"], hashlib.sha256)
    assert alert["headers"][SIGNATURE_HEADER] == "sha256=" + mac.hexdigest()
    document = json.loads(alert["body"])
    assert document["event"]["cause"]["rule"] == "drift in 3 of the last 5 windows"
    assert len(document["event"]["cause"]["signals"]) == 5


def test_an_unreachable_hook_is_an_event_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(RULES.replace("at_least = 3", "at_least = 1"))
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        signals = SignalLog(store)
        runner = PolicyRunner(load_policies(path), signals, DeploymentLog(store),
                              AlertSink("http://127.0.0.1:9/none", SECRET, timeout=1))
        signals.add(window(0, True))
        (event,) = runner.tick(now=0.0)
        assert event.cause["delivery"].startswith("failed")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[policy]]\nname = "a"\nmodel = "m"\nwhen = "sunny"\n',
         "'when': expected 'drift' or 'degraded', got 'sunny'"),
        ('[[policy]]\nname = "a"\nmodel = "m"\nwhen = "drift"\nat_least = 6\nof_last = 5\n',
         "1 <= at_least <= of_last"),
        ('[[policy]]\nname = "a"\nwhen = "drift"\n', "missing 'model'"),
        ('[[policy]]\nname = "a"\nmodel = "m"\nwhen = "drift"\nactions = ["page"]\n',
         "'actions': expected a list of 'alert', 'retrain', got"),
        ('[[policy]]\nname = "a"\nmodel = "m"\nwhen = "drift"\nlevel = 2\n', "unknown fields"),
        ("[[policy]\n", "cannot be read"),
        # the retrain plans in the same file
        ('[[policy]]\nname = "a"\nmodel = "m"\nwhen = "drift"\nactions = ["retrain"]\n',
         r"needs a \[retrain.m\] table"),
        ('[retrain.m]\ntarget = "y"\n', "missing 'data'"),
        ('[retrain.m]\ndata = "d.csv"\ntarget = "y"\nlog = "some"\n',
         "'log': expected 'fired', 'all' or 'none', got 'some'"),
        ('[retrain.m]\ndata = "d.csv"\ntarget = "y"\nreference = "old"\n',
         "'reference': expected 'log' or 'all', got 'old'"),
        ('[retrain.m]\ndata = "d.csv"\ntarget = "y"\ntrain = { epochs = 3 }\n',
         r"'train': has unknown options \['epochs'\]"),
        ('[retrain.m]\ndata = "d.csv"\ntarget = "y"\nrollout = { speed = 3 }\n',
         r"'rollout': has unknown options \['speed'\]"),
        ('[retrain.m]\ndata = "d.csv"\ntarget = "y"\nmax_log_rows = -1\n',
         "'max_log_rows': expected a whole number >= 0, got -1"),
        ('[retrian.m]\ndata = "d.csv"\n', r"unknown tables \['retrian'\]"),
    ],
)
def test_bad_policy_files_are_refused_by_rule_table_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        load_policies(path)


def performance(k: int, ci_high: float, flagged: bool, metric: str = "roc_auc") -> Signal:
    value = ci_high - 0.02
    return Signal("churn", "champion", 1, "performance", 100.0 * k, 100.0 * k + 50,
                  f"p-{k}", 500, flagged,
                  {"performance": {"metric": metric, "value": value, "ci_low": value - 0.02,
                                   "ci_high": ci_high, "baseline": 0.85, "n": 500,
                                   "degraded": flagged}})


@pytest.mark.parametrize(("margin", "fires"), [(0.0, True), (0.02, True), (0.1, False)])
def test_a_degraded_rule_fires_only_beyond_its_margin(
    tmp_path: Path, margin: float, fires: bool
) -> None:
    path = tmp_path / "policies.toml"
    path.write_text('[[policy]]\nname = "decay"\nmodel = "churn"\nwhen = "degraded"\n'
                    f"at_least = 1\nof_last = 1\nmargin = {margin}\n")
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        signals = SignalLog(store)
        runner = PolicyRunner(load_policies(path), signals, DeploymentLog(store), AlertSink())
        signals.add(performance(0, ci_high=0.80, flagged=True))  # whole interval <= 0.80
        events = runner.tick(now=0.0)
    assert bool(events) is fires
    if fires:
        rule = events[0].cause["rule"]
        assert rule.startswith("degraded by more than 0.02" if margin else "degraded in")


def two_metrics(auc_degraded: bool) -> Signal:
    """Accuracy (the default metric) holds; ROC-AUC degraded or not."""
    accuracy = {"metric": "accuracy", "value": 0.86, "ci_low": 0.84, "ci_high": 0.88,
                "baseline": 0.85, "n": 500, "degraded": False}
    auc = {"metric": "roc_auc", "value": 0.70, "ci_low": 0.66, "ci_high": 0.74,
           "baseline": 0.90, "n": 500, "degraded": auc_degraded}
    return Signal("churn", "champion", 1, "performance", 0.0, 50.0, "p-0", 500, False,
                  {"performance": accuracy, "metrics": {"accuracy": accuracy, "roc_auc": auc}})


@pytest.mark.parametrize(("metric", "margin", "auc_degraded", "fires"), [
    (None, 0.0, True, False),       # the default metric (accuracy) holds
    ("roc_auc", 0.0, True, True),   # the named one degraded
    ("roc_auc", 0.0, False, False),
    ("roc_auc", 0.1, True, True),   # 0.74 < 0.90 - 0.1
    ("roc_auc", 0.2, True, False),  # 0.74 >= 0.90 - 0.2
    ("accuracy", 0.0, True, False),
])
def test_a_degraded_rule_judges_the_metric_it_names(
    tmp_path: Path, metric: str | None, margin: float, auc_degraded: bool, fires: bool
) -> None:
    path = tmp_path / "policies.toml"
    named = f'metric = "{metric}"\n' if metric else ""
    path.write_text('[[policy]]\nname = "decay"\nmodel = "churn"\nwhen = "degraded"\n'
                    f"at_least = 1\nof_last = 1\nmargin = {margin}\n{named}")
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        signals = SignalLog(store)
        runner = PolicyRunner(load_policies(path), signals, DeploymentLog(store), AlertSink())
        signals.add(two_metrics(auc_degraded))
        events = runner.tick(now=0.0)
    assert bool(events) is fires
    if fires:
        assert "(roc_auc)" in events[0].cause["rule"]


def test_margin_is_checked() -> None:
    from mlcanary.control.policies import _policy

    base = {"name": "a", "model": "m", "when": "degraded"}
    with pytest.raises(InvalidInput, match="'margin': expected a number >= 0"):
        _policy({**base, "margin": -1}, "rule 1")
    with pytest.raises(InvalidInput, match="applies to when = 'degraded' only"):
        _policy({**base, "when": "drift", "margin": 0.1}, "rule 1")
    with pytest.raises(InvalidInput, match=r"'metric': expected one of .*got 'auc'"):
        _policy({**base, "metric": "auc"}, "rule 1")
    with pytest.raises(InvalidInput, match="'metric' applies to when = 'degraded' only"):
        _policy({**base, "when": "drift", "metric": "f1"}, "rule 1")


@pytest.mark.parametrize("database", DATABASES)
def test_watchers_sharing_a_store_act_once_and_a_restart_does_not_act_again(
    database: str, tmp_path: Path
) -> None:
    """Four runners (replicas or --workers, each with the policy file) tick at once on the
    same signals, from threads: one alert in all. A new runner (a restarted watcher)
    sees the same windows and stays quiet; after the cooldown a new window fires again."""
    path = tmp_path / "policies.toml"
    path.write_text(RULES.replace("at_least = 3", "at_least = 1"))
    with store_url(database, tmp_path) as url, Store(url) as store:
        signals, events = SignalLog(store), DeploymentLog(store)
        sink = AlertSink(None, SECRET)
        runners = [PolicyRunner(load_policies(path), signals, events, sink) for _ in range(4)]
        signals.add(window(0, True))
        fired: list[int] = []
        barrier = threading.Barrier(len(runners))

        def tick(runner: PolicyRunner) -> None:
            barrier.wait()
            fired.append(len(runner.tick(now=1000.0)))

        threads = [threading.Thread(target=tick, args=(r,)) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(fired) == [0, 0, 0, 1]
        restarted = PolicyRunner(load_policies(path), signals, events, sink)
        assert restarted.tick(now=2000.0) == []  # the same window, after the cooldown
        signals.add(window(1, True))
        assert restarted.tick(now=1500.0) == []  # a new window, within the cooldown
        signals.add(window(2, True))
        assert len(restarted.tick(now=2000.0)) == 1
        assert [e.kind for e in events.events("churn")] == ["alert", "alert"]


def test_status_says_where_each_rule_stands(tmp_path: Path) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(RULES)
    rules = load_policies(path)
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        signals, events = SignalLog(store), DeploymentLog(store)
        for k, flagged in enumerate([True, False, True]):
            signals.add(window(k, flagged))
        (quiet,) = status_document(store, "churn", policies=rules)["policies"]
        assert (quiet["counted"], quiet["windows"], quiet["fires_now"]) == (2, 3, False)
        assert quiet["last_acted"] is None and quiet["cooling_down_until"] is None
        assert quiet["rule"] == "drift in 3 of the last 5 windows"
        signals.add(window(3, True))
        now = time.time()
        PolicyRunner(rules, signals, events, AlertSink(None, SECRET)).tick(now=now)
        document = status_document(store, "churn", policies=rules)
        assert status_document(store, "other", policies=rules)["policies"] == []
    (firing,) = document["policies"]
    assert (firing["counted"], firing["windows"], firing["fires_now"]) == (3, 4, True)
    assert firing["last_acted"] == datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
    until = datetime.fromisoformat(firing["cooling_down_until"]).timestamp()
    assert until == pytest.approx(now + 600, abs=1)
    console = Console(record=True, width=200)
    console.print(status_renderable(document))
    text = console.export_text()
    assert "drift in 3 of the last 5 windows -> alert" in text and "FIRES" in text
