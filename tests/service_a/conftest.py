"""Fixtures for A: built in-process, with its client for B swapped through a dependency override."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.dependencies import get_service_b_client
from tests.ws import InProcessWebSocketTransport

B_URL = "http://service-b"


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
async def b_for_a(b_running: LifespanManager) -> AsyncIterator[httpx.AsyncClient]:
    """Give a client that reaches the running B in-process, over HTTP and WebSockets."""
    transport = InProcessWebSocketTransport(b_running.app)
    async with httpx.AsyncClient(transport=transport, base_url=B_URL) as client:
        yield client


def use_service_b(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Make A reach B through `client` (the fixture that owns `app` clears it afterwards)."""
    app.dependency_overrides[get_service_b_client] = lambda: client


@pytest.fixture
async def a_client(a_app: FastAPI, b_for_a: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """Give a client on A, with A's dependency pointed at B in-process, lifespans running."""
    use_service_b(a_app, b_for_a)
    async with (
        LifespanManager(a_app) as manager,
        httpx.AsyncClient(
            transport=InProcessWebSocketTransport(manager.app), base_url="http://service-a"
        ) as client,
    ):
        yield client
