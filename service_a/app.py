"""Build service A: `create_app(settings)` wires the lifespan, the routes and the error handlers."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from service_a import http_api, relay
from service_a import status as status_route
from service_a.b_client import ServiceBError, build_client
from service_a.dependencies import State
from service_a.docs import docs_description
from service_a.edge import Edge
from service_a.models import Detail
from service_a.settings import Settings

logger = logging.getLogger(__name__)

#: The package's version (pyproject.toml), published in the service's documents.
VERSION = version("service-pair")


#: What A's HTTP edge (service_a.protocol) may answer to any request, before a route sees it.
EDGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Detail, "description": "The request head is malformed"},
    408: {
        "model": Detail,
        "description": "The request head did not arrive within SERVICE_A_HEADER_TIMEOUT_SECONDS",
    },
    414: {
        "model": Detail,
        "description": "The request target is longer than SERVICE_A_MAX_HEADER_LINE_BYTES",
    },
    431: {
        "model": Detail,
        "description": "The request head has too many fields, a line "
        "or the whole head too long (SERVICE_A_MAX_HEADER_*, SERVICE_A_MAX_HEAD_BYTES)",
    },
    503: {
        "model": Detail,
        "description": "Too many client connections "
        "(SERVICE_A_MAX_CLIENT_CONNECTIONS); see Retry-After",
    },
}


def _operation_id(route: APIRoute) -> str:
    return route.name


async def _service_b_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceBError)  # noqa: S101 - registered for this class
    logger.warning("%s", exc.detail)
    headers = (
        {"Retry-After": "1"} if exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE else None
    )
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


# How a 422 quotes inputs JSON cannot carry as they are: a body that is not JSON is quoted
# as bytes, which need not be UTF-8; Python's lenient JSON parse lets NaN and infinities in.
_QUOTED_INPUT: dict[Any, Callable[[Any], Any]] = {
    bytes: lambda data: data.decode(errors="backslashreplace"),
    float: lambda number: number if math.isfinite(number) else str(number),
}


async def _invalid_request(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this class
    # ASCII JSON: the errors may quote a lone surrogate, which UTF-8 cannot carry.
    errors = jsonable_encoder(exc.errors(), custom_encoder=_QUOTED_INPUT)
    body = json.dumps({"detail": errors}, separators=(",", ":"), allow_nan=False)
    return Response(body, status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's 405 names the methods of the first route matching the path only; each
    # method is a route of its own here, so `Allow` is worked out over all of them.
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this class
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        scope = request.scope
        allowed = [
            method
            for method in _METHODS
            if any(
                route.matches({**scope, "method": method})[0] == Match.FULL
                for route in request.app.router.routes
            )
        ]
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    return await http_exception_handler(request, exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build A for `settings` (by default, from the environment)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        async with build_client(settings) as client:
            logger.info("service A ready, service B at %s", ", ".join(settings.service_b_urls))
            yield State(
                service_b_client=client,
                settings=settings,
                ws_sessions=anyio.CapacityLimiter(settings.max_ws_sessions),
            )

    app = FastAPIOffline(
        title="Service A",
        version=VERSION,
        description=docs_description(settings),
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        responses=EDGE_RESPONSES,
    )
    app.add_middleware(Edge, max_body_bytes=settings.max_body_bytes)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ServiceBError, _service_b_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    if len(settings.service_b_urls) > 1:
        # Several Bs: `/status` reports each (service_a.status), in place of the one-B route.
        app.include_router(status_route.router)
        app.include_router(_without_route(http_api.router, "/status"))
    else:
        app.include_router(http_api.router)
    app.include_router(relay.router)
    return app


def _without_route(router: APIRouter, path: str) -> APIRouter:
    """Give a router with the routes of `router` but the one at `path`."""
    narrowed = APIRouter()
    narrowed.routes.extend(
        route for route in router.routes if not (isinstance(route, APIRoute) and route.path == path)
    )
    return narrowed
