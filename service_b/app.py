"""Build service B: `create_app(settings)` wires the lifespan, the routes and the error handlers."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.routing import APIRoute

from service_b import http_api, pact_states, ws_api
from service_b.body_limit import BodySizeLimit
from service_b.http_api import DATA_FILE_NAME, DATA_TEXT
from service_b.http_errors import install_http_error_handlers
from service_b.resources import Resources
from service_b.settings import Settings
from service_b.store import ItemChange, ItemStore
from service_b.topics import Topic
from service_b.websocket_errors import install_websocket_error_handlers

logger = logging.getLogger(__name__)

VERSION = "1.0.0"


def _operation_id(route: APIRoute) -> str:
    # Stable, readable operation ids (`get_item`): OpenAPI links and contract messages use them.
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build B for `settings` (by default, from the environment)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
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
            queue = (settings.ws_queue_size, settings.ws_queue_bytes)
            changes = Topic[ItemChange](*queue, render=ws_api.render_change)
            async with ItemStore.open(settings.database_path, changes) as store:
                resources = Resources(
                    settings=settings,
                    store=store,
                    broadcast=Topic[str](*queue),
                    static_dir=Path(static_dir),
                )
                logger.info("service B ready, items in %s", settings.database_path)
                yield {"resources": resources}

    app = FastAPI(
        title="Service B",
        version=VERSION,
        description="The provider: an items API persisted in SQLite, and WebSocket endpoints "
        "described in contracts/service_b.asyncapi.json.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    install_http_error_handlers(app)
    install_websocket_error_handlers(app)
    app.include_router(http_api.router)
    app.include_router(ws_api.router)
    if settings.enable_pact_provider_states:
        app.include_router(pact_states.router)
    return app
