"""The admin API: rollouts over HTTP, behind a bearer token.

``/admin/...`` exists only when ``MLCANARY_ADMIN_TOKEN`` is set (404 otherwise: a server
nobody configured for administration offers none), and answers 401 to a request without
that token. The same actions as the CLI (``control.actions``), so the same checks, the
same events (the actor is ``admin-api``).

    POST /admin/models/{name}/deploy     {"challenger": 2, "strategy": "canary", ...}
    POST /admin/models/{name}/promote | rollback | pause | resume
    GET  /admin/models/{name}/deployment
    GET  /admin/models/{name}/events?last=50
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pydantic import field_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcanary.bodies import Body, Field, checked
from mlcanary.config import Settings
from mlcanary.control import actions
from mlcanary.control.strategies import STRATEGIES
from mlcanary.errors import InvalidInput, NotFound, Unauthorized, Unavailable
from mlcanary.registry.versions import ModelRegistry
from mlcanary.serve.query import positive_int
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog

Handler = Callable[[Request], Awaitable[Response]]
Respond = Callable[..., Response]
ACTOR = "admin-api"


class DeployBody(Body):
    """``POST /admin/models/{name}/deploy``: the rollout to start (``mlcanary deploy``)."""

    challenger: int = Field(description="the version to roll out, an integer")
    strategy: str = Field("canary", description=f"one of {', '.join(STRATEGIES)}",
                          json_schema_extra={"enum": list(STRATEGIES)})
    steps: list[float] | None = Field(
        None, description="a list of traffic percentages, one per canary step")
    interval_seconds: float = Field(60.0, description="a number of seconds per step")
    max_failures: int = Field(2, description="an integer: failed checks before rollback")
    weights: list[float] | None = Field(
        None, description="a list of numbers: the A/B split, champion first")
    mirror_percent: float = Field(100.0, description="a number: the percent of traffic shadowed")
    key_column: str | None = Field(
        None, description="a string: the input column that keeps a user on one variant")

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        if name not in STRATEGIES:
            raise ValueError(f"expected one of {', '.join(STRATEGIES)}, got {name!r}")
        return name


def check_token(request: Request, token: str | None) -> None:
    """401 unless the request carries ``Authorization: Bearer <token>``."""
    if token is None:
        return
    sent = request.headers.get("authorization", "")
    scheme, _, value = sent.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token.encode()):
        raise Unauthorized("authorization: expected 'Bearer <token>' with the server's token")


def admin_routes(settings: Settings, store: Store | None, respond: Respond) -> list[Route]:
    """The admin routes, or none when no admin token is configured."""
    token = settings.admin_token
    if token is None:
        return []
    registry = ModelRegistry(settings)

    def guarded(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            check_token(request, token)
            if store is None:
                raise Unavailable("admin: this server has no store for rollout state")
            return await handler(request)

        return wrapped

    def log() -> DeploymentLog:
        assert store is not None
        return DeploymentLog(store)

    async def deploy(request: Request) -> Response:
        name = request.path_params["name"]
        options = _deploy_options(await request.body())
        deployment = await asyncio.to_thread(
            actions.deploy, registry, log(), name, actor=ACTOR, **options
        )
        return respond(deployment.as_dict())

    async def act(request: Request) -> Response:
        name, verb = request.path_params["name"], request.path_params["action"]

        def run() -> Any:
            if verb == "promote":
                return actions.promote(registry, log(), name, actor=ACTOR)
            if verb == "rollback":
                return actions.rollback(registry, log(), name, actor=ACTOR)
            if verb == "pause":
                return actions.pause(log(), name, actor=ACTOR)
            if verb == "resume":
                return actions.resume(log(), name, actor=ACTOR)
            raise NotFound(
                f"admin action '{verb}': expected promote, rollback, pause or resume"
            )

        return respond((await asyncio.to_thread(run)).as_dict())

    async def deployment(request: Request) -> Response:
        name = request.path_params["name"]
        found = await asyncio.to_thread(log().get, name)
        if found is None:
            raise NotFound(f"model '{name}': no rollout has been deployed")
        return respond(found.as_dict())

    async def events(request: Request) -> Response:
        name = request.path_params["name"]
        last = positive_int(request.query_params.get("last", "50"), "last")
        found = await asyncio.to_thread(log().events, name, last=last)
        return respond([e.as_dict() for e in found])

    return [
        Route("/admin/models/{name}/deploy", guarded(deploy), methods=["POST"]),
        Route("/admin/models/{name}/deployment", guarded(deployment)),
        Route("/admin/models/{name}/events", guarded(events)),
        Route("/admin/models/{name}/{action}", guarded(act), methods=["POST"]),
    ]


def _deploy_options(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body: not valid JSON ({exc})") from exc
    return checked(DeployBody, document, "request body").model_dump(exclude_unset=True)
