"""Routing a request to a variant: the rollout state from the store, a sticky hash.

The router holds the latest snapshot of each model's active deployment (refreshed by the
server's poll, so every replica follows within one poll interval) and answers, per
request, which variant serves it and whether a shadow copy goes to the challenger. The
same key always maps to the same variant for a given rollout (``control.assignment``):
a caller that sends ``X-Mlcanary-Key`` (or the deployment's key column) sees one model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlcanary.control.assignment import assign, shadow_selected
from mlcanary.control.strategies import strategy_named
from mlcanary.serve.tensors import Tensor
from mlcanary.store.database import Store
from mlcanary.store.deployments import Deployment, DeploymentLog

KEY_HEADER = "x-mlcanary-key"
VARIANT_HEADER = "x-mlcanary-variant"


class Router:
    """Which variant answers; shadow copies."""

    def __init__(self, store: Store | None) -> None:
        self.log = DeploymentLog(store) if store is not None else None
        self.deployments: dict[str, Deployment] = {}

    def read(self) -> dict[str, Deployment]:
        """Each model's last deployment, running or ended (blocking: call it from a worker
        thread); ``follow`` applies it."""
        return {d.model: d for d in self.log.latest()} if self.log is not None else {}

    def follow(self, name: str, latest: Deployment | None, champion_version: int) -> None:
        """Route ``name`` by its last deployment, read by ``read``, once this server can.

        A promotion is saved before the champion alias moves (``control.actions``): until
        this server serves the promoted version as champion, it keeps the rollout's last
        split (the challenger, still loaded, keeps its share), never falls back to the old
        champion alone.
        """
        if latest is not None and latest.active:
            self.deployments[name] = latest
        elif (latest is not None and latest.status == "promoted"
              and champion_version != latest.challenger and name in self.deployments):
            return
        else:
            self.deployments.pop(name, None)

    def deployment(self, name: str) -> Deployment | None:
        return self.deployments.get(name)

    def key(self, name: str, header: str | None, inputs: Sequence[Tensor], fallback: str) -> str:
        """The request's assignment key: header, else the key column's first value, else
        ``fallback`` (the request id: random, so the split still holds on average)."""
        if header:
            return header
        deployment = self.deployments.get(name)
        column = deployment.key_column if deployment is not None else None
        if column is not None:
            for tensor in inputs:
                if tensor.name == column and len(tensor.data):
                    value = np.asarray(tensor.data, dtype=object).reshape(-1)[0]
                    return value.decode() if isinstance(value, bytes) else str(value)
        return fallback

    def epoch(self, name: str, champion_version: int, challenger_version: int | None) -> int:
        """The rollout epoch this server routes ``name`` by, 0 while it does not serve the
        two versions the rollout names: until its challenger is loaded here, and until its
        champion is the rollout's (a rollout started just after a promotion, before this
        server swapped to the promoted champion). In epoch 0 everything goes to the champion
        this server has, and the controller counts none of it: counts of a version the
        rollout does not name would read as a broken split."""
        deployment = self.deployments.get(name)
        if (deployment is None or deployment.challenger != challenger_version
                or deployment.champion != champion_version):
            return 0
        return deployment.epoch

    def choose(self, name: str, key: str) -> str:
        deployment = self.deployments.get(name)
        if deployment is None or not strategy_named(deployment.strategy).answers_clients:
            return "champion"
        return assign(key, deployment.weights, deployment.salt)

    def shadow(self, name: str, key: str) -> bool:
        deployment = self.deployments.get(name)
        return (
            deployment is not None
            and not strategy_named(deployment.strategy).answers_clients
            and deployment.status == "running"
            and shadow_selected(key, deployment.mirror_percent, deployment.salt)
        )
