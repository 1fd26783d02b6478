"""Fixtures: anyio backends, real uvicorn upstreams, a scripted raw TCP server."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from tests.live import refused_port, run_service
from tests.raw_server import RawServer, Script, send, send_close


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Run every async test on asyncio, asyncio+uvloop and trio."""
    return request.param  # type: ignore[no-any-return]


#: How soon the `closing_upstream` closes an idle connection: short, so tests wait little.
QUICK_KEEP_ALIVE = 0.05


@pytest.fixture(scope="session")
def upstream() -> Iterator[str]:
    """Serve tests/transport/upstream_app.py (uvicorn's keep-alive timeout: 5 s)."""
    with run_service("tests.transport.upstream_app", health_path="/echo") as server:
        yield server.base_url


@pytest.fixture(scope="session")
def closing_upstream() -> Iterator[str]:
    """Serve the same upstream, closing a connection idle for `QUICK_KEEP_ALIVE` seconds."""
    args = ["--timeout-keep-alive", str(QUICK_KEEP_ALIVE)]
    with run_service("tests.transport.upstream_app", args=args, health_path="/echo") as server:
        yield server.base_url


# --------------------------------------------------------------------------- #
# Scripted raw server: exact bytes on the wire, for parser / framing edge cases.
# --------------------------------------------------------------------------- #
def _dribble(data: bytes) -> Script:
    """Script: send data one byte at a time."""

    def script(conn: socket.socket) -> bool:
        """Write the canned response."""
        for i in range(len(data)):
            conn.sendall(data[i : i + 1])
            time.sleep(0.001)
        return True

    return script


def _reset(conn: socket.socket) -> bool:
    """Script: close with SO_LINGER 0 so the peer sees a reset."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def _stall_body(conn: socket.socket) -> bool:
    """Script: send the head and part of the body, then stall."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    time.sleep(2)
    return False


def _no_read(_conn: socket.socket) -> bool:
    """Script: stop reading (the client's write blocks), then close."""
    time.sleep(2)
    return False


def _slow_answer(conn: socket.socket) -> bool:
    """Script: answer after 0.6 s."""
    time.sleep(0.6)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
    return True


SCRIPTS: dict[str, Script] = {
    "/ok": send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "/close-delimited": send_close(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world"),
    "/http10": send_close(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "/interim": send(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
    ),
    "/chunked-ext": send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-A: x\r\n\r\n"
    ),
    "/dribble": _dribble(
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    ),
    "/te-and-cl": send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    ),
    "/extra-bytes": send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokXYZ"),
    "/empty-reason": send(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"),
    "/conn-close": send_close(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    ),
    "/bad-status": send_close(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"),
    "/bad-cl": send_close(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"),
    "/conflicting-cl": send_close(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    ),
    "/obs-fold": send_close(
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\nContent-Length: 0\r\n\r\n"
    ),
    "/lf-in-value": send_close(
        b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: pwn=1\r\nContent-Length: 0\r\n\r\n"
    ),
    "/nul-in-value": send_close(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n"),
    "/space-in-name": send_close(b"HTTP/1.1 200 OK\r\nX A: 1\r\nContent-Length: 0\r\n\r\n"),
    "/slow-answer": _slow_answer,
    "/bad-chunk": send_close(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    "/truncated": send_close(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
    "/truncated-head": send_close(b"HTTP/1.1 200 OK\r\nContent-Le"),
    "/no-response": send_close(b""),
    "/reset": _reset,
    "/no-read": _no_read,
    "/stall-body": _stall_body,
    "/huge-head": send_close(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n"),
    "/extra-after-204": send(b"HTTP/1.1 204 No Content\r\n\r\nXYZ"),
    "/head": send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
    "/not-modified": send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n"),
    "/switching": send_close(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
    # Issue 10, finding 6: what the hand-written parser let through.
    "/http10-chunked": send(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    ),
    "/bad-version": send(b"HTTP/1.a 200 OK\r\nContent-Length: 0\r\n\r\n"),
    "/status-000": send(b"HTTP/1.1 000 OK\r\nContent-Length: 0\r\n\r\n"),
    "/lf-in-reason": send(b"HTTP/1.1 200 O\nK\r\nContent-Length: 0\r\n\r\n"),
    "/nul-in-reason": send(b"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n"),
    "/gzip-chunked": send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    ),
    "/chunked-chunked": send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    ),
    "/space-in-chunk-size": send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 2 \r\nok\r\n0\r\n\r\n"
    ),
    "/lf-in-chunk-ext": send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a\nb\r\nok\r\n0\r\n\r\n"
    ),
    "/bare-lf-head": send(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
}


@pytest.fixture(scope="session")
def raw_server() -> Iterator[RawServer]:
    """One scripted raw server for the session."""
    server = RawServer(SCRIPTS, unread_bodies={"/no-read"})
    yield server
    server.close()


@pytest.fixture
def unused_port() -> Iterator[int]:
    """Give a port that refuses connections (held, so no one else takes it meanwhile)."""
    with refused_port() as port:
        yield port
