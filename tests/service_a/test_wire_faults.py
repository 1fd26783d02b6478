"""A's answers when B fails on the wire, through the client A's own lifespan opens.

The respx tests (test_faults.py) raise httpx's errors directly; these make the real
transport under A's client meet a real socket that misbehaves, so the mapping from what
happens on the wire to 502, 503 and 504 is tested end to end.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service_a import Settings as ASettings
from service_a import create_app as create_a
from tests.live import free_port
from tests.raw_server import RawServer, Script, send, send_close


def _silence(conn: socket.socket) -> bool:
    time.sleep(2)  # longer than A's read timeout
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    return True


# B's misbehaviours, by the item A asks for.
ANSWERS: dict[str, Script] = {
    "/items/1": send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 35\r\n\r\n"
        b'{"item_id": 1, "name": "From wire"}'
    ),
    "/items/2": _silence,
    "/items/3": send(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"),
    "/items/4": send_close(b'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"it'),
    "/items/5": send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"),
    "/items/6": send(b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: x=1\r\nContent-Length: 0\r\n\r\n"),
    "/items/7": send(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"),
}


@pytest.fixture(scope="module")
def misbehaving_b() -> Iterator[RawServer]:
    """Give one misbehaving B for the module."""
    server = RawServer(ANSWERS)
    yield server
    server.close()


@contextlib.asynccontextmanager
async def a_in_front_of(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Run A, with the client its lifespan opens, in front of the B at `url`."""
    app = create_a(ASettings(service_b_url=url, read_timeout=0.3, connect_timeout=0.3))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(manager.app), base_url="http://a") as a,
    ):
        yield a


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("item", "status", "detail"),
    [
        (2, 504, "service B timed out"),
        (3, 502, "service B broke the connection"),
        (4, 502, "service B broke the connection"),
        (5, 502, "service B's answer to GET /items/5 (200) does not match what A expects"),
        (6, 502, "service B broke the connection"),
        (7, 502, "service B's answer to GET /items/7 is an error: 500"),
    ],
    ids=["silent", "bad status line", "cut short", "wrong shape", "bad header", "5xx"],
)
async def test_b_misbehaving_on_the_wire(
    item: int, status: int, detail: str, misbehaving_b: RawServer
) -> None:
    """Each way B can fail on the wire gets its gateway status and a detail naming it."""
    async with a_in_front_of(misbehaving_b.url) as a:
        response = await a.get(f"/items/{item}")
        assert (status, True) == (
            response.status_code,
            response.json()["detail"].startswith(detail),
        ), response.text
        good = await a.get("/items/1")  # A goes on serving
    assert (200, {"item_id": 1, "name": "From wire"}) == (good.status_code, good.json())


@pytest.mark.anyio
async def test_b_not_listening_gives_503_within_a_second() -> None:
    """Nobody listening where B should be: 503 at once, after one retry."""
    async with a_in_front_of(f"http://127.0.0.1:{free_port()}") as a:
        started = time.perf_counter()
        response = await a.get("/items/1")
        elapsed = time.perf_counter() - started
    assert (503, {"detail": "service B unavailable"}) == (response.status_code, response.json())
    assert elapsed < 1.0
