"""Build service B: `create_app(settings)` wires the lifespan, the routes and the error handlers."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from service_b import http_api, pact_states, ws_api
from service_b.body_limit import BodySizeLimit
from service_b.docs import ASYNCAPI_URL, install_docs
from service_b.http_api import DATA_FILE_NAME, DATA_TEXT, STORE_UNAVAILABLE_DETAIL
from service_b.http_errors import install_http_error_handlers
from service_b.login_guard import Clock, LoginGuard
from service_b.models import Detail
from service_b.resources import Resources, State, open_store, open_topics
from service_b.settings import Settings
from service_b.store import StoreUnavailable
from service_b.version import VERSION
from service_b.websocket_errors import install_websocket_error_handlers

logger = logging.getLogger(__name__)

#: What B's HTTP edge (service_b.protocol) may answer to any request, before a route sees it.
EDGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Detail, "description": "The request head is malformed"},
    408: {
        "model": Detail,
        "description": "The request head did not arrive within SERVICE_B_HEADER_TIMEOUT_SECONDS",
    },
    414: {
        "model": Detail,
        "description": "The request target is longer than SERVICE_B_MAX_HEADER_LINE_BYTES",
    },
    431: {
        "model": Detail,
        "description": "The request head has too many fields, a line "
        "or the whole head too long (SERVICE_B_MAX_HEADER_*, SERVICE_B_MAX_HEAD_BYTES)",
    },
    503: {
        "model": Detail,
        "description": "Too many client connections "
        "(SERVICE_B_MAX_CLIENT_CONNECTIONS); see Retry-After",
    },
}


def _operation_id(route: APIRoute) -> str:
    # Stable, readable operation ids (`get_item`): OpenAPI links and contract messages use them.
    return route.name


async def _store_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # The database is down or out of connections: the client may try again; never a 500.
    logger.warning("answering 503: %s", exc)
    return JSONResponse(
        {"detail": STORE_UNAVAILABLE_DETAIL}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE
    )


def create_app(settings: Settings | None = None, *, clock: Clock = time.time) -> FastAPI:
    """Build B for `settings` (by default, from the environment).

    `clock` gives the Unix time that logins are checked against (tests inject their own).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        if settings.uses_demo_credentials():
            logger.warning(
                "the demo API key 'abc' with secret 'def' is accepted on /ws/v5/private; "
                "set SERVICE_B_API_KEYS to replace it"
            )
        if settings.enable_pact_provider_states:
            logger.warning(
                "POST /_pact/provider_states is on: it changes data; never in production"
            )
        with tempfile.TemporaryDirectory(prefix="service_b-") as static_dir:
            await anyio.Path(static_dir, DATA_FILE_NAME).write_text(DATA_TEXT)
            async with (
                open_topics(settings, ws_api.render_change) as topics,
                open_store(settings, topics.changes) as store,
            ):
                resources = Resources(
                    settings=settings,
                    store=store,
                    broadcast=topics.broadcast,
                    static_dir=Path(static_dir),
                    login_guard=LoginGuard(settings, clock),
                    redis=topics.redis,
                )
                fanout = "in-process" if topics.redis is None else "through Redis"
                logger.info("service B ready, items in %s, fan-out %s", store.kind, fanout)
                yield State(resources=resources)

    app = FastAPIOffline(
        title="Service B",
        version=VERSION,
        description="The provider: an items API persisted in SQLite or PostgreSQL, and "
        f"WebSocket endpoints described at [{ASYNCAPI_URL}]({ASYNCAPI_URL}) "
        "(contracts/service_b.asyncapi.json).",
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        responses=EDGE_RESPONSES,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_http_error_handlers(app)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    install_websocket_error_handlers(app)
    app.include_router(http_api.router)
    app.include_router(ws_api.router)
    install_docs(app)
    if settings.enable_pact_provider_states:
        app.include_router(pact_states.router)
    return app
