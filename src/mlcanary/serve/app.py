"""The HTTP server: REST adapters over one inference service, the admin API, the OpenAPI
document and docs page, Prometheus metrics, and the watch child.

``create_app`` assembles the app from its parts: ``serve/service.py`` answers (routing,
validation, batching, prediction, logging), ``serve/rest.py`` decodes and encodes V2 and
V1, ``serve/edge.py`` maps the core's errors to status codes, ``serve/admin.py`` and
``serve/openapi.py`` add their routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcanary.config import Settings
from mlcanary.registry.mirror import MirroredRegistry
from mlcanary.registry.versions import ModelRegistry
from mlcanary.serve.admin import admin_routes
from mlcanary.serve.edge import EXCEPTION_HANDLERS, json_response
from mlcanary.serve.metrics import ServerMetrics
from mlcanary.serve.openapi import docs_routes
from mlcanary.serve.repository import ModelRepository
from mlcanary.serve.rest import rest_routes
from mlcanary.serve.service import InferenceService
from mlcanary.store.database import Store

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    repository: ModelRepository,
    metrics: ServerMetrics | None = None,
    store: Store | None = None,
    *,
    children: Companions | None = None,
) -> Starlette:
    """The app over a loaded ``repository``; the service runs for the app's lifetime.

    With a ``store``, answered requests are logged (unless ``log_sample_rate`` is 0) and
    feedback is accepted; without one, the feedback route answers 503. ``children``, the
    watch child ``build`` started before loading (it mirrors the registry), stop with the
    app.
    """
    service = InferenceService(settings, repository, metrics, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()
            if children is not None:
                await children.stop()

    async def prometheus(request: Request) -> Response:
        # In a thread: the signal gauges read the store (every few seconds), and a slow
        # or unreachable database must not hold the event loop that answers requests.
        body = await asyncio.to_thread(service.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4")

    routes = [
        *rest_routes(service, settings),
        Route("/metrics", prometheus),
        *admin_routes(settings, store, json_response),
        *docs_routes(admin=settings.admin_token is not None,
                     inference_token=settings.inference_token is not None),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=EXCEPTION_HANDLERS)
    app.state.service = service
    return app


@dataclass
class Companions:
    """The watch child(ren) of a server, and the folder of its registry mirror."""

    processes: list[subprocess.Popen[bytes]]
    mirror: Path | None

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    async def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            await asyncio.to_thread(process.wait, 30)
        if self.mirror is not None:
            shutil.rmtree(self.mirror, ignore_errors=True)


@contextlib.contextmanager
def stopped_on_failure(children: Companions | None) -> Iterator[None]:
    """Stop ``children`` if what the block does fails (the server will not start)."""
    try:
        yield
    except BaseException:
        if children is not None:
            asyncio.run(children.stop())
        raise


def mirrored(settings: Settings, names: list[str]) -> tuple[ModelRegistry, Companions | None]:
    """The registry a server reads, and the watch child it starts first (when it watches).

    A watching server leaves MLflow to its child: the child mirrors the aliases and keeps
    local copies of the versions (``registry/mirror.py``), the server reads those."""
    if not watches(settings):
        return ModelRegistry(settings), None
    folder = Path(tempfile.mkdtemp(prefix="mlcanary-mirror-"))
    children = Companions(start_watchers(names, folder), folder)
    registry = MirroredRegistry(settings, folder, stale_after=stale_after(settings),
                                alive=children.alive)
    return registry, children


def stale_after(settings: Settings) -> float:
    """How old a mirror file may be before a server reads the registry itself."""
    return max(30.0, 6 * settings.monitor_seconds)


def watches(settings: Settings) -> bool:
    """Whether serving runs the monitor and controller: on, and with predictions logged."""
    return settings.monitor and settings.log_sample_rate > 0


def start_watchers(names: list[str], mirror: Path | None = None) -> list[subprocess.Popen[bytes]]:
    """``mlcanary watch`` as one child process (see ``control.loop``).

    Its monitor thread runs at nice 19, so that under load serving gets the CPU first; its
    rollout controller at the server's priority, so that a rollback is not late on a busy
    machine. It inherits the environment (so the same settings) and stops with the server;
    the kernel ends it should the server die first (Linux: parent-death signal).
    """

    def die_with_parent() -> None:
        with contextlib.suppress(Exception):
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    command = [sys.executable, "-m", "mlcanary", "watch", "--quiet", "--monitor-nice", "19",
               *(["--mirror", str(mirror)] if mirror is not None else []), *names]
    return [subprocess.Popen(command, preexec_fn=die_with_parent)]


def build(settings: Settings, names: list[str], mirror: Path | None = None) -> Starlette:
    """Load every named champion and return the app (the server's one wiring point).

    A watching server starts its watch child first and reads the registry through the
    child's mirror; ``mirror`` names the folder of one a supervisor's child keeps (the
    workers of ``mlcanary serve --workers N``)."""
    start = time.perf_counter()
    children = None
    if mirror is not None:
        registry: ModelRegistry = MirroredRegistry(settings, mirror,
                                                   stale_after=stale_after(settings))
    else:
        registry, children = mirrored(settings, names)
    repository = ModelRepository(registry, names)
    with stopped_on_failure(children):
        repository.load()
    log.info("loaded %d model(s) in %.2f s", len(names), time.perf_counter() - start)
    return create_app(settings, repository, ServerMetrics(), Store.from_settings(settings),
                      children=children)


WORKER_SETTINGS = "MLCANARY_WORKER_SETTINGS"
"""The variable through which ``mlcanary serve --workers N`` hands its resolved settings
(flags, environment and TOML) and model names to the workers uvicorn spawns."""


def worker_settings(settings: Settings, names: list[str], mirror: Path | None = None) -> str:
    """What ``from_environment`` reads in each worker."""
    return orjson.dumps({"names": names, "settings": settings.model_dump(mode="json"),
                         "mirror": str(mirror) if mirror is not None else None}).decode()


def from_environment() -> Starlette:
    """App factory for uvicorn workers: the supervisor's settings, model names and mirror."""
    document = orjson.loads(os.environ[WORKER_SETTINGS])
    mirror = document.get("mirror")
    return build(Settings(**document["settings"]), document["names"],
                 Path(mirror) if mirror else None)
