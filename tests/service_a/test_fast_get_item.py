"""A plain `GET /items/{id}` skips FastAPI's router (README, Speed) and answers the same.

A runs in-process with its own lifespan and its client for B; B is a real process. Each
request goes once past the router (no dependency overridden) and once through FastAPI's
route (the client dependency overridden by one that gives the same client), and the two
answers must be the same: status, headers, body.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.requests import HTTPConnection

from service_a import edge
from service_a.app import create_app
from service_a.dependencies import get_service_b_client
from service_a.settings import Settings
from tests.live import ServiceProcess, run_service

pytestmark = pytest.mark.live

PATHS = [
    "/items/1",
    "/items/2?ignored=yes",
    "/items/424242",
    "/items/999999999999999999",
    "/items/0",
    "/items/01",
    "/items/-1",
    "/items/abc",
    "/items/1.0",
    "/items/9223372036854775807",
    "/items/9223372036854775808",
    "/items/1/",
    "/items/%31",
]
FAST = {
    "/items/1",
    "/items/%31",
    "/items/2?ignored=yes",
    "/items/424242",
    "/items/999999999999999999",
}


@pytest.fixture
def anyio_backend() -> str:
    """Asyncio only: B is a real process."""
    return "asyncio"


@pytest.fixture(scope="module")
def live_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """Run B with two items more than its first."""
    database = tmp_path_factory.mktemp("fast-get") / "items.sqlite3"
    with run_service("service_b", env={"SERVICE_B_DATABASE_PATH": str(database)}) as b:
        for name in ("one", "two"):
            created = httpx.post(f"{b.base_url}/items", json={"name": name, "is_offer": True})
            assert 201 == created.status_code
        yield b


async def _through_a(app: FastAPI, requests: list[tuple[str, str]]) -> list[httpx.Response]:
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(manager.app), base_url="http://a") as a,
    ):
        return [
            await a.request(method, path, headers={"x-request-id": "same-id"})
            for method, path in requests
        ]


async def _both_ways(
    url: str, requests: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[httpx.Response], list[httpx.Response], list[int | None]]:
    taken: list[int | None] = []
    plain = edge.plain_get_item

    def recording(scope: dict[str, object]) -> int | None:
        found = plain(scope)
        taken.append(found)
        return found

    monkeypatch.setattr(edge, "plain_get_item", recording)
    fast = await _through_a(create_app(Settings(service_b_url=url)), requests)
    fast_taken = list(taken)

    async def same_client(connection: HTTPConnection) -> httpx.AsyncClient:
        return await get_service_b_client(connection)

    routed_app = create_app(Settings(service_b_url=url))
    routed_app.dependency_overrides[get_service_b_client] = same_client
    routed = await _through_a(routed_app, requests)
    return fast, routed, fast_taken


def _seen(response: httpx.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(k, v) for k, v in response.headers.raw if k.lower() != b"date"]
    return response.status_code, headers, response.content


@pytest.mark.anyio
async def test_the_same_answers_past_the_router_and_through_it(
    live_b: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found, not found, bad ids and other methods: the same status, headers and body."""
    requests = [("GET", path) for path in PATHS] + [("HEAD", "/items/1"), ("POST", "/items/1")]
    fast, routed, taken = await _both_ways(live_b.base_url, requests, monkeypatch)
    for (method, path), one, other, found in zip(requests, fast, routed, taken, strict=True):
        assert _seen(one) == _seen(other), (method, path)
        assert (found is not None) == (method == "GET" and path in FAST), (method, path)
    assert 200 == fast[0].status_code
    assert 1 == fast[0].json()["item_id"]
    assert {"item_id": 2, "name": "one", "is_offer": True} == fast[1].json()
    assert 404 == fast[2].status_code


@pytest.mark.anyio
async def test_b_down_is_the_same_503(monkeypatch: pytest.MonkeyPatch) -> None:
    """B unreachable: the app's own handler answers, Retry-After and all."""
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    fast, routed, taken = await _both_ways(url, [("GET", "/items/1")], monkeypatch)
    assert [1] == taken
    assert 503 == fast[0].status_code
    assert "1" == fast[0].headers["retry-after"]
    assert _seen(fast[0]) == _seen(routed[0])


def test_no_other_route_takes_the_plain_paths() -> None:
    """The only GET operation whose path matches `/items/{digits}` is `get_item`."""
    app = create_app(Settings(service_b_url="http://b"))
    matching = [
        operations["get"]["operationId"]
        for template, operations in app.openapi()["paths"].items()
        if "get" in operations
        and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), "/items/123") is not None
    ]
    assert ["get_item"] == matching


def test_unused_paths_are_not_plain() -> None:
    """Root paths, overrides and other scopes go to FastAPI."""
    app = create_app(Settings(service_b_url="http://b"))
    base = {"type": "http", "method": "GET", "path": "/items/7", "app": app}
    assert 7 == edge.plain_get_item(base)
    assert edge.plain_get_item({**base, "root_path": "/a"}) is None
    assert edge.plain_get_item({**base, "type": "websocket"}) is None
    app.dependency_overrides[get_service_b_client] = lambda: None
    assert edge.plain_get_item(base) is None
