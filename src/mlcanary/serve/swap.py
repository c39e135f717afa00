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
    ) -> None:
        self.repository = repository
        self.make_batcher = make_batcher
        self.poll_seconds = poll_seconds
        self.on_swap = on_swap

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            for name in list(self.repository.models):
                try:
                    await self.check(name)
                except Exception:  # a bad new version must not take the server down
                    log.exception("could not swap model %s; still serving the old version", name)

    async def check(self, name: str) -> bool:
        """Swap ``name`` if its alias moved; True when it did."""
        loop = asyncio.get_running_loop()
        current = self.repository.models[name]
        wanted = await loop.run_in_executor(None, self.repository.aliased_version, name)
        if wanted == current.version:
            return False
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
