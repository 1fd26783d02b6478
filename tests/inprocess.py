"""Run the services in-process for a test: the one way to put a client on an app, or A before B.

`serve_in_process(app)` runs the app's lifespan and gives an httpx client that reaches it
in-process, over HTTP and WebSockets; `a_in_front_of_b(a_app, b)` does the same for A with
its dependency on B pointed at the client `b`; `a_reaching(url)` runs A with the client its
own lifespan opens to the B at `url` (a real server). The fixtures in `tests/conftest.py`
are built on these; a test that needs other settings or another B calls them directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.dependencies import get_service_b_client
from tests.ws import InProcessWebSocketTransport

#: The anyio backends an in-process test runs on.
Backend = Literal["asyncio", "trio"]
#: Where an in-process B is reached (only respx routes and Host headers see it).
B_URL = "http://service-b"
#: Where an in-process A is reached.
A_URL = "http://service-a"
#: How long a lifespan may take to start or stop before the test fails: a bound for a hang
#: only (asgi-lifespan's own 5 s ran out for B's PostgreSQL migrations on a loaded machine).
LIFESPAN_SECONDS = 60.0


def lifespan(app: ASGIApp) -> LifespanManager:
    """Give a manager that runs `app`'s lifespan, with `LIFESPAN_SECONDS` to start and stop."""
    return LifespanManager(app, startup_timeout=LIFESPAN_SECONDS, shutdown_timeout=LIFESPAN_SECONDS)


def use_service_b(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Make A reach B through `client` (the fixture that owns `app` clears it afterwards)."""
    app.dependency_overrides[get_service_b_client] = lambda: client


@asynccontextmanager
async def serve_in_process(
    app: ASGIApp,
    *,
    base_url: str,
    transport_class: type[InProcessWebSocketTransport] = InProcessWebSocketTransport,
    **transport_options: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan; give a client that reaches it in-process (HTTP and WebSockets).

    `transport_options` go to the transport (`client=("203.0.113.7", 50000)`: the caller's
    address the app sees).
    """
    async with (
        lifespan(app) as manager,
        httpx.AsyncClient(
            transport=transport_class(manager.app, **transport_options), base_url=base_url
        ) as client,
    ):
        yield client


def a_in_front_of_b(
    a_app: FastAPI, b: httpx.AsyncClient, *, base_url: str = A_URL, **transport_options: Any
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """Run A with `b` as its client for B; give a client on A (see `serve_in_process`)."""
    use_service_b(a_app, b)
    return serve_in_process(a_app, base_url=base_url, **transport_options)


def a_reaching(url: str, **settings: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """Run an A made with `settings` whose own client reaches the B at `url`; give a client."""
    return serve_in_process(create_a(ASettings(service_b_url=url, **settings)), base_url=A_URL)
