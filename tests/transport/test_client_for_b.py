"""A's client for B: no cookie jar, and B's `Set-Cookie` still reaches A's caller."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import anyio
import anyio.to_thread
import httpx
import pytest

from service_a import Settings as ASettings
from service_a.b_client import build_client
from tests.inprocess import a_reaching
from tests.raw_server import RawServer, Script, send
from tests.ws import connect_ws

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run A's client on asyncio and trio (in-process: not on uvloop as well).

    How A queues is the same on uvloop; uvloop's own I/O is what test_fast_transport.py
    runs on all three.
    """
    backend: str = request.param
    return backend


_ITEM = b'{"item_id": 1, "name": "With cookie"}'
ANSWERS = {
    "/items/1": send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Set-Cookie: session=b-says; Path=/\r\nSet-Cookie: other=2; Path=/\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(_ITEM), _ITEM)
    ),
}


SLOW_SECONDS = 0.3  # each answer of the slow B; 5 rounds of them outlast the old 1 s pool wait


def _slow(seconds: float) -> Script:
    def script(conn: socket.socket) -> bool:
        time.sleep(seconds)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + _ITEM_HEAD + _ITEM)
        return True

    return script


_ITEM_HEAD = b"Content-Length: %d\r\n\r\n" % len(_ITEM)
SLOW = {"/items/1": _slow(SLOW_SECONDS)}


@pytest.fixture
def slow_b() -> Iterator[RawServer]:
    """Give a B that takes its time over each answer (a fresh one: the test counts requests)."""
    server = RawServer(SLOW)
    yield server
    server.close()


@pytest.fixture(scope="module")
def b_with_cookies() -> Iterator[RawServer]:
    """Give a B whose answer sets cookies."""
    server = RawServer(ANSWERS)
    yield server
    server.close()


@pytest.mark.parametrize("transport", ["fast", "httpx"])
async def test_client_keeps_no_cookies(b_with_cookies: RawServer, transport: str) -> None:
    """B's Set-Cookie is in the answer, and never in the client's jar nor in the next request."""
    settings = ASettings(service_b_url=b_with_cookies.url, transport=transport)
    async with build_client(settings) as client:
        first = await client.get("/items/1")
        assert first.headers.get_list("set-cookie") == [
            "session=b-says; Path=/",
            "other=2; Path=/",
        ]
        assert len(client.cookies.jar) == 0
        assert list(client.cookies.items()) == []
        await client.get("/items/1")
    assert b"cookie:" not in b"".join(b_with_cookies.requests).lower()
    with pytest.raises(AttributeError):
        client.cookies = {"x": "1"}


async def test_set_cookie_is_relayed_to_the_caller(b_with_cookies: RawServer) -> None:
    """A's caller gets B's Set-Cookie headers unchanged."""
    async with a_reaching(b_with_cookies.url) as a:
        answer = await a.get("/items/1")
    assert answer.status_code == 200
    assert answer.headers.get_list("set-cookie") == ["session=b-says; Path=/", "other=2; Path=/"]


@pytest.mark.parametrize("transport", ["fast", "httpx"])
async def test_burst_queues_within_the_deadline(slow_b: RawServer, transport: str) -> None:
    """10 requests at once through 2 connections to a slow B all get B's answer, in turn."""
    statuses: list[int] = []
    async with a_reaching(slow_b.url, max_connections=2, transport=transport) as a:

        async def one() -> None:
            statuses.append((await a.get("/items/1")).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(one)
    assert statuses == [200] * 10
    assert len(slow_b.requests) == 10


@pytest.mark.parametrize("transport", ["fast", "httpx"])
async def test_queued_past_the_deadline_is_503_and_never_sent(transport: str) -> None:
    """Past the deadline a request under way is 504; one still queued is 503 and never sent."""
    server = RawServer({"/items/2": _slow(1.0)})
    answers: list[httpx.Response] = []
    a_for_the_test = a_reaching(
        server.url, max_connections=1, transport=transport, request_timeout=0.5, read_timeout=5.0
    )
    try:
        async with a_for_the_test as a:

            async def one() -> None:
                answers.append(await a.get("/items/2"))

            # Started together, their deadlines are microseconds apart: one takes the only
            # connection, the other queues. (Waiting in a thread for the first to reach the
            # server put them further apart, on a loaded machine, than the 50 ms by which A
            # lets a queued request's 503 come before the one under way is cut: both 504.)
            async with anyio.create_task_group() as group:
                group.start_soon(one)
                group.start_soon(one)
    finally:
        server.close()
    under_way, queued = sorted(answers, key=lambda answer: answer.status_code, reverse=True)
    assert under_way.status_code == 504
    assert queued.status_code == 503
    assert queued.headers["retry-after"] == "1"
    assert queued.json()["detail"].startswith("service B unavailable: no free connection")
    assert len(server.requests) == 1


@pytest.mark.parametrize("transport", ["fast", "httpx"])
async def test_http_never_holds_up_a_websocket(upstream: str, transport: str) -> None:
    """With the one HTTP connection held by a response, a WebSocket upgrade still goes."""
    settings = ASettings(service_b_url=upstream, max_connections=1, transport=transport)
    async with (
        build_client(settings) as client,
        client.stream("GET", "/chunked", params={"n": 200, "size": 65536}) as held,
    ):
        assert held.status_code == 200  # its connection stays taken until the block ends
        async with connect_ws("/ws", client) as ws:
            await ws.send_text("through")
            assert await ws.receive_text() == "echo:through"
