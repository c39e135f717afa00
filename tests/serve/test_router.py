"""The router follows the store's rollout state; a promotion never sends traffic back."""

from __future__ import annotations

from pathlib import Path

from mlcanary.serve.router import Router
from mlcanary.store.database import Store
from mlcanary.store.deployments import Deployment, DeploymentLog, Event


def saved(log: DeploymentLog, deployment: Deployment, kind: str) -> Deployment:
    before = log.get(deployment.model)
    return log.save(deployment, Event(deployment.model, kind, "test", {},
                                      None if before is None else before.as_dict(),
                                      deployment.as_dict()))


def test_a_promotion_keeps_the_split_until_the_promoted_version_is_champion(
    tmp_path: Path,
) -> None:
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        log = DeploymentLog(store)
        router = Router(store)
        running = saved(log, Deployment("m", "canary", 1, 2, {"champion": 0.0,
                                                              "challenger": 100.0}), "deploy")
        router.follow("m", router.read().get("m"), champion_version=1)
        assert router.choose("m", "k") == "challenger"
        promoted = running.evolve(status="promoted", weights={"champion": 100.0,
                                                              "challenger": 0.0})
        saved(log, promoted, "promote")
        # Saved as promoted, but the champion alias has not reached this server: keep it.
        router.follow("m", router.read().get("m"), champion_version=1)
        assert router.choose("m", "k") == "challenger"
        # The promoted version is champion here now: the rollout is over.
        router.follow("m", router.read().get("m"), champion_version=2)
        assert router.deployment("m") is None and router.choose("m", "k") == "champion"


def test_a_rollback_sends_everything_to_the_champion_at_once(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        log = DeploymentLog(store)
        router = Router(store)
        running = saved(log, Deployment("m", "canary", 1, 2, {"champion": 0.0,
                                                              "challenger": 100.0}), "deploy")
        router.follow("m", router.read().get("m"), champion_version=1)
        saved(log, running.evolve(status="rolled_back", weights={"champion": 100.0,
                                                                 "challenger": 0.0}), "rollback")
        router.follow("m", router.read().get("m"), champion_version=1)
        assert router.deployment("m") is None and router.choose("m", "k") == "champion"


def test_a_promotion_seen_by_a_server_that_never_routed_it_changes_nothing(
    tmp_path: Path,
) -> None:
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        log = DeploymentLog(store)
        router = Router(store)
        saved(log, Deployment("m", "canary", 1, 2, {"champion": 100.0, "challenger": 0.0},
                              status="promoted"), "promote")
        router.follow("m", router.read().get("m"), champion_version=1)
        assert router.deployment("m") is None


def test_epoch_is_zero_until_this_server_serves_both_versions_the_rollout_names(
    tmp_path: Path,
) -> None:
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        router = Router(store)
        d = saved(DeploymentLog(store), Deployment("m", "canary", 2, 3, {"champion": 90.0,
                                                                         "challenger": 10.0},
                                                   epoch=4), "deploy")
        router.follow("m", router.read().get("m"), champion_version=1)
        assert router.epoch("m", 1, None) == 0  # neither loaded
        assert router.epoch("m", 1, 3) == 0  # the champion is still the one before
        assert router.epoch("m", 2, None) == 0  # the challenger is still loading
        assert router.epoch("m", 2, 3) == d.epoch == 4
