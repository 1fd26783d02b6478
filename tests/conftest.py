"""Fixtures shared by every test: the async backends, and B and A built in-process.

The helpers these are built on are in `tests.inprocess`; import them from there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_b import Settings as BSettings
from service_b import create_app as create_b
from tests.inprocess import B_URL, Backend, a_in_front_of_b, lifespan, use_service_b
from tests.ws import InProcessWebSocketTransport

#: `postgres_server` and `postgres_url`: a throwaway PostgreSQL for the store tests;
#: `redis_server`, `redis_fanout` and `own_redis_server`: a redis-server for the fan-out tests.
pytest_plugins = ["tests.postgres", "tests.redis_server"]

# Helpers are in modules of their own (tests.inprocess, tests.live, tests.ws), not here.
# These names stay importable from here only for tests/contracts, until it imports them
# from tests.inprocess too.
__all__ = ["B_URL", "Backend", "use_service_b"]


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Backend:
    """Run every anyio test, and every TestClient, on asyncio and on trio."""
    backend: Backend = request.param
    return backend


@pytest.fixture
def b_settings() -> BSettings:
    """Give B's settings for in-process tests: an in-memory store, quick to make."""
    return BSettings(database_path=":memory:")


@pytest.fixture
def b_app(b_settings: BSettings) -> FastAPI:
    """Give a fresh B, its lifespan not yet started."""
    return create_b(b_settings)


@pytest.fixture
async def b_running(b_app: FastAPI) -> AsyncIterator[LifespanManager]:
    """Run B's lifespan for the test; `.app` is B with its lifespan state in place."""
    async with lifespan(b_app) as manager:
        yield manager


@pytest.fixture
async def b_client(b_running: LifespanManager) -> AsyncIterator[httpx.AsyncClient]:
    """Give an httpx client that reaches the running B in-process, over HTTP and WebSockets.

    It is also the client A is given for B (`a_client`).
    """
    transport = InProcessWebSocketTransport(b_running.app)
    async with httpx.AsyncClient(transport=transport, base_url=B_URL) as client:
        yield client


@pytest.fixture
def b_testclient(b_app: FastAPI, anyio_backend: Backend) -> Iterator[TestClient]:
    """Give Starlette's TestClient on B, as a context manager so the lifespan runs."""
    with TestClient(b_app, backend=anyio_backend) as client:
        yield client


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Give a path for an SQLite file that lives as long as the test."""
    return tmp_path / "items.sqlite3"


@pytest.fixture
def a_settings() -> ASettings:
    """Give A's settings for in-process tests (B's URL matters only to respx routes)."""
    return ASettings(service_b_url=B_URL)


@pytest.fixture
def a_app(a_settings: ASettings) -> Iterator[FastAPI]:
    """Give a fresh A; whatever a test overrides on it is cleared afterwards."""
    app = create_a(a_settings)
    yield app
    app.dependency_overrides.clear()


@pytest.fixture
async def a_client(a_app: FastAPI, b_client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """Give a client on A, with A's dependency pointed at B in-process, lifespans running."""
    async with a_in_front_of_b(a_app, b_client) as client:
        yield client
