"""A's answers when B fails on the wire, through the client A's own lifespan opens.

The respx tests (test_faults.py) raise httpx's errors directly; these make the real
transport under A's client meet a real socket that misbehaves, so the mapping from what
happens on the wire to 502, 503 and 504 is tested end to end.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import anyio
import pytest

from tests.inprocess import a_reaching
from tests.live import refused_port
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
    async with a_reaching(misbehaving_b.url, read_timeout=0.3, connect_timeout=0.3) as a:
        response = await a.get(f"/items/{item}")
        assert (status, True) == (
            response.status_code,
            response.json()["detail"].startswith(detail),
        ), response.text
        good = await a.get("/items/1")  # A goes on serving
    assert (200, {"item_id": 1, "name": "From wire"}) == (good.status_code, good.json())


@pytest.mark.anyio
async def test_b_not_listening_gives_503_at_once() -> None:
    """Nobody listening where B should be: 503 at once, after one retry, not after a timeout.

    A's timeouts are 30 s here, so an A that waited for one would run into the 10 s bound.
    """
    with refused_port() as port:
        async with a_reaching(f"http://127.0.0.1:{port}", read_timeout=30, connect_timeout=30) as a:
            with anyio.fail_after(10):
                response = await a.get("/items/1")
    assert (503, {"detail": "service B unavailable"}) == (response.status_code, response.json())
