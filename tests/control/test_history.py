"""Which version served at time T: the audit trail read back, over a real registry and store."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlcanary.config import Settings
from mlcanary.control import actions
from mlcanary.control.history import serving_at
from mlcanary.registry.versions import ModelRegistry
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog
from tests.conftest import cli_runner
from tests.serve.conftest import registered_churn


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """v1 champion; canary of v2 (step to 50%), promoted; shadow of v3, rolled back."""
    home = registered_churn(tmp_path_factory.mktemp("history"), 800, seed=4, versions=3)
    settings = Settings(home=home)
    registry = ModelRegistry(settings)
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        time.sleep(0.05)
        marks[name] = time.time()
        time.sleep(0.05)

    with Store.from_settings(settings) as store:
        log = DeploymentLog(store)
        mark("before")
        deployment = actions.deploy(registry, log, "churn", challenger=2, steps=[10, 50, 100])
        mark("canary 10")
        actions.step(log, deployment, {"gates": []})
        mark("canary 50")
        actions.promote(registry, log, "churn")
        mark("promoted")
        actions.deploy(registry, log, "churn", challenger=3, strategy="shadow")
        mark("shadow")
        actions.rollback(registry, log, "churn")
        mark("rolled back")
    return home, marks


def test_the_split_at_each_moment_follows_the_events(trail: tuple[Path, dict[str, float]]) -> None:
    home, marks = trail
    with Store.from_settings(Settings(home=home)) as store:
        events = DeploymentLog(store).events("churn", last=100)
    at = {name: serving_at(events, ts, champion_now=2) for name, ts in marks.items()}
    assert at["before"] is not None and at["before"].versions == {1: 100.0}
    assert at["before"].event is None
    assert at["canary 10"].versions == {1: 90.0, 2: 10.0}  # type: ignore[union-attr]
    assert at["canary 50"].versions == {1: 50.0, 2: 50.0}  # type: ignore[union-attr]
    assert at["promoted"].versions == {2: 100.0}  # type: ignore[union-attr]
    shadow = at["shadow"]
    assert shadow is not None and shadow.versions == {2: 100.0} and shadow.shadow == 3
    assert at["rolled back"].versions == {2: 100.0}  # type: ignore[union-attr]
    assert at["rolled back"].event.kind == "rollback"  # type: ignore[union-attr]


def test_no_rollout_on_record_is_the_champion_now() -> None:
    assert serving_at([], 0.0, champion_now=4).versions == {4: 100.0}  # type: ignore[union-attr]
    assert serving_at([], 0.0, champion_now=None) is None


@pytest.mark.slow
def test_mlcanary_events_at_says_who_served(trail: tuple[Path, dict[str, float]]) -> None:
    home, marks = trail
    cli = cli_runner(home)
    iso = datetime.fromtimestamp(marks["canary 50"], UTC).isoformat()
    text = cli("events", "churn", "--at", iso)
    assert text.code == 0, text.stderr
    assert "version 1 50%, version 2 50%" in text.stdout and "step by policy:canary" in text.stdout
    promoted = cli("events", "churn", "--at", str(marks["promoted"]), "--json")
    assert json.loads(promoted.stdout)["versions"] == {"2": 100.0}
    bad = cli("events", "churn", "--at", "yesterday")
    assert bad.code == 2 and "--at: expected a time like" in bad.stderr
    unknown = cli("events", "nope", "--at", iso)
    assert unknown.code == 2 and "not in the registry" in unknown.stderr
