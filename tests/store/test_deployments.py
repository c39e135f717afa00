"""Rollout actions over a real registry and a real store: state, aliases, events, refusals."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcanary.config import Settings
from mlcanary.control import actions
from mlcanary.control.status import status_document
from mlcanary.errors import Conflict, InvalidInput, NotFound
from mlcanary.registry.versions import ModelRegistry
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog
from tests.monitor.databases import DATABASES, store_url
from tests.serve.conftest import registered_churn


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_churn(tmp_path_factory.mktemp("deploy"), 800, seed=3, versions=3)


@pytest.fixture(params=DATABASES)
def setup(
    request: pytest.FixtureRequest, template: Path, tmp_path: Path
) -> Iterator[tuple[ModelRegistry, DeploymentLog]]:
    home = tmp_path / "home"
    shutil.copytree(template, home)  # each test moves aliases in its own registry
    with store_url(request.param, tmp_path) as url, Store(url) as store:
        yield ModelRegistry(Settings(home=home)), DeploymentLog(store)


def test_deploy_sets_the_challenger_alias_and_records_an_event(
    setup: tuple[ModelRegistry, DeploymentLog],
) -> None:
    registry, log = setup
    deployment = actions.deploy(registry, log, "churn", challenger=2, strategy="canary")
    assert deployment.weights == {"champion": 99.0, "challenger": 1.0} and deployment.revision == 1
    assert registry.alias_version("churn", "challenger") == 2
    assert log.get("churn") == deployment
    (event,) = log.events("churn")
    assert event.kind == "deploy" and event.actor == "user" and event.after is not None


def test_promote_moves_both_aliases_and_rollback_removes_the_challenger(
    setup: tuple[ModelRegistry, DeploymentLog],
) -> None:
    registry, log = setup
    actions.deploy(registry, log, "churn", challenger=2, strategy="ab", weights=[50, 50])
    promoted = actions.promote(registry, log, "churn", cause={"reason": "test"})
    assert promoted.status == "promoted"
    assert registry.alias_version("churn", "champion") == 2
    assert registry.alias_version("churn", "challenger") is None
    actions.deploy(registry, log, "churn", challenger=3, strategy="shadow", mirror_percent=20)
    rolled = actions.rollback(registry, log, "churn", actor="policy:test")
    assert rolled.status == "rolled_back" and rolled.weights["challenger"] == 0
    assert registry.alias_version("churn", "champion") == 2
    assert registry.alias_version("churn", "challenger") is None
    kinds = [(e.kind, e.actor) for e in log.events("churn")]
    assert kinds == [("deploy", "user"), ("promote", "user"), ("deploy", "user"),
                     ("rollback", "policy:test")]


def test_a_stale_writer_loses_and_nothing_is_written(
    setup: tuple[ModelRegistry, DeploymentLog],
) -> None:
    registry, log = setup
    first = actions.deploy(registry, log, "churn", challenger=2)
    actions.step(log, first, {"gates": "passed"})
    with pytest.raises(Conflict, match="changed meanwhile"):
        actions.step(log, first, {"gates": "passed"})  # the same step, from an old read
    current = log.get("churn")
    assert current is not None and current.step == 1 and current.weights["challenger"] == 5
    assert [e.kind for e in log.events("churn")] == ["deploy", "step"]


def test_pause_and_resume(setup: tuple[ModelRegistry, DeploymentLog]) -> None:
    registry, log = setup
    actions.deploy(registry, log, "churn", challenger=2)
    assert actions.pause(log, "churn").status == "paused"
    with pytest.raises(InvalidInput, match="already paused"):
        actions.pause(log, "churn")
    assert actions.resume(log, "churn").status == "running"
    with pytest.raises(InvalidInput, match="not paused"):
        actions.resume(log, "churn")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"challenger": 9}, "challenger: version 9 of 'churn' does not exist"),
        ({"challenger": 1}, "already the champion"),
        ({"challenger": 2, "strategy": "blue-green"}, "strategy: expected one of canary, ab"),
        ({"challenger": 2, "strategy": "ab", "weights": [60, 30]}, "summing to 100"),
        ({"challenger": 2, "strategy": "ab", "weights": [100]}, "weights: expected two"),
        ({"challenger": 2, "steps": [5, 1, 100]}, "steps: expected increasing"),
        ({"challenger": 2, "steps": [1, 50]}, "last step to be 100"),
        ({"challenger": 2, "interval_seconds": 0}, "interval: expected a positive"),
        ({"challenger": 2, "max_failures": 0}, "max_failures: expected at least 1"),
        ({"challenger": 2, "strategy": "shadow", "mirror_percent": 0}, "mirror_percent"),
    ],
)
def test_bad_deploy_requests_are_refused_and_change_nothing(
    setup: tuple[ModelRegistry, DeploymentLog], kwargs: dict[str, object], message: str
) -> None:
    registry, log = setup
    before = registry.alias_version("churn", "challenger")
    with pytest.raises(InvalidInput, match=message):
        actions.deploy(registry, log, "churn", **kwargs)  # type: ignore[arg-type]
    assert log.get("churn") is None and log.events("churn") == []
    assert registry.alias_version("churn", "challenger") == before


def test_a_second_rollout_waits_for_the_first(setup: tuple[ModelRegistry, DeploymentLog]) -> None:
    registry, log = setup
    actions.deploy(registry, log, "churn", challenger=2)
    with pytest.raises(Conflict, match="promote or roll it back first"):
        actions.deploy(registry, log, "churn", challenger=3)
    with pytest.raises(NotFound, match="no champion"):
        actions.deploy(registry, log, "other", challenger=1)


def test_status_shows_the_rollout_its_traffic_last_gates_and_events(
    setup: tuple[ModelRegistry, DeploymentLog],
) -> None:
    registry, log = setup
    assert status_document(log.store, "churn")["rollout"] is None
    first = actions.deploy(registry, log, "churn", challenger=2, steps=[10, 100])
    gates = [{"gate": "fast", "passed": True, "reason": "errors and latency within limits"}]
    actions.step(log, first, {"gates": gates})
    rollout = status_document(log.store, "churn")["rollout"]
    assert rollout["traffic"] == {"champion": 0.0, "challenger": 100.0}
    assert rollout["status"] == "running" and rollout["step"] == 1 and rollout["steps"] == [10, 100]
    assert rollout["last_gates"] == gates
    assert [e["kind"] for e in rollout["events"]] == ["deploy", "step"]
