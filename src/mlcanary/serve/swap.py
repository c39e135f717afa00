"""Hot swap: follow a registry alias and replace the served version without dropping a request.

Every ``poll_seconds`` the watcher asks the registry where each alias points. When it
moved, the new version is loaded and checked in a worker thread (the server keeps
answering meanwhile), its batcher is started, and the repository entry is replaced in
one step on the event loop. Requests that already hold the old version finish on it;
once none does, its batcher drains and stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mlcanary.serve.batcher import Batcher
from mlcanary.serve.repository import ModelRepository, ServedModel
from mlcanary.serve.router import Router
from mlcanary.store.deployments import Deployment

log = logging.getLogger(__name__)

RETIRE_TIMEOUT = 120.0


class AliasWatcher:
    """Poll the registry and swap models whose alias moved."""

    def __init__(
        self,
        repository: ModelRepository,
        make_batcher: Callable[[ServedModel], Batcher],
        poll_seconds: float,
        on_swap: Callable[[ServedModel], None] | None = None,
        router: Router | None = None,
    ) -> None:
        self.repository = repository
        self.make_batcher = make_batcher
        self.poll_seconds = poll_seconds
        self.on_swap = on_swap
        self.router = router

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            await self.poll()

    async def poll(self) -> None:
        """One round: read the rollout state; per model, the champion alias first (so a
        promotion finds its challenger still loaded), then the rollout state, then the
        challenger it needs."""
        latest: dict[str, Deployment] | None = None
        if self.router is not None:
            try:
                latest = await asyncio.get_running_loop().run_in_executor(None, self.router.read)
            except Exception:
                log.exception("could not read the rollout state; keeping the last one")
        for name in list(self.repository.models):
            try:
                await self.check(name)
            except Exception:  # a bad new version must not take the server down
                log.exception("could not swap model %s; still serving the old version", name)
            if self.router is not None and latest is not None:
                self.router.follow(name, latest.get(name), self.repository.models[name].version)
            if self.router is not None:
                try:
                    await self.sync_challenger(name)
                except Exception:
                    log.exception("could not load the challenger of %s", name)

    async def sync_challenger(self, name: str) -> None:
        """Load the active rollout's challenger, or retire one no rollout needs."""
        assert self.router is not None
        deployment = self.router.deployment(name)
        wanted = deployment.challenger if deployment is not None else None
        current = self.repository.challengers.get(name)
        if current is not None and current.version == wanted:
            return
        if current is not None:
            del self.repository.challengers[name]
            if current is not self.repository.models.get(name):  # promoted: it serves on
                await self.retire(current)
        if wanted is None:
            return
        loop = asyncio.get_running_loop()
        fresh = await loop.run_in_executor(None, self.repository.load_version, name, wanted)
        fresh.batcher = self.make_batcher(fresh)
        fresh.batcher.start()
        self.repository.challengers[name] = fresh
        log.info("loaded challenger %s version %s", name, wanted)

    async def check(self, name: str) -> bool:
        """Swap ``name`` if its alias moved; True when it did."""
        loop = asyncio.get_running_loop()
        current = self.repository.models[name]
        wanted = await loop.run_in_executor(None, self.repository.aliased_version, name)
        if wanted == current.version:
            return False
        challenger = self.repository.challengers.get(name)
        if challenger is not None and challenger.version == wanted:
            fresh = challenger  # a promotion: the loaded, already serving challenger
        else:
            fresh = await loop.run_in_executor(None, self.repository.load_version, name, wanted)
            fresh.batcher = self.make_batcher(fresh)
            fresh.batcher.start()
        self.repository.models[name] = fresh
        log.info("swapped %s: version %s -> %s", name, current.version, fresh.version)
        if self.on_swap is not None:
            self.on_swap(fresh)
        await self.retire(current)
        return True

    async def retire(self, old: ServedModel) -> None:
        """Wait for requests still holding ``old`` to finish, then stop its batcher."""
        deadline = asyncio.get_running_loop().time() + RETIRE_TIMEOUT
        while old.active and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if old.batcher is not None:
            await old.batcher.stop()
