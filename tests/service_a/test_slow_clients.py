"""Clients of A that stop reading: A closes them with 1013 itself, through real processes.

B checks that its own clients read what it sends, but through A that check never reaches
A's clients: A reads B's messages as they come and writes them into its client's socket
buffers, so B sees a reader that keeps up. A's own WebSocket protocol
(`service_a/ws_protocol.py`) checks its clients in the same way.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from tests.live import ServiceProcess, run_service

#: A's send timeout in the test below: far below uvicorn's 20 s keep-alive ping towards A's
#: clients, and below B's send timeout (its default, 10 s).
LIVE_SEND_TIMEOUT = "2"
#: When the test gives up waiting for A's closes: past A's bound (twice its send timeout,
#: with room for a busy machine), before uvicorn's keep-alive ping would close (1011, 40 s).
GIVE_UP_SECONDS = 20
#: At most 2,000 x 200 bytes (400 KB) for each stalled reader: far below what the kernel's
#: socket buffers take on loopback (about 4 MB), so none of A's sends ever blocks.
LIVE_MAX_MESSAGES = 2000
NOT_READING = "the client is not reading; reconnect"
_CLOSED_1013 = re.compile(r"service_a\.\w+: closing WebSocket /ws/broadcast with 1013")


@contextlib.contextmanager
def _a_before_b() -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Run B, and A in front of it with a short send timeout; give (A, B)."""
    with run_service("service_b", env={"SERVICE_B_DATABASE_PATH": ":memory:"}) as b:
        env = {
            "SERVICE_A_SERVICE_B_URL": b.base_url,
            "SERVICE_A_WS_SEND_TIMEOUT": LIVE_SEND_TIMEOUT,
        }
        with run_service("service_a", env=env) as a:
            yield a, b


def _raw_websocket(port: int) -> socket.socket:
    """Open /ws/broadcast on a plain socket, which then never reads (nor answers a ping)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    request = [
        "GET /ws/broadcast HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):  # one byte at a time: nothing after the head
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 ")
    return sock


async def _read_until_closed(ws: ClientConnection) -> tuple[list[str | bytes], Close | None]:
    """Read every message left for `ws`, then give them and the close frame A sent."""
    messages: list[str | bytes] = []
    try:
        while True:
            messages.append(await ws.recv())
    except ConnectionClosed as closed:
        return messages, closed.rcvd


def _read_to_end(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.live
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_live_client_of_a_that_stops_reading_small_messages_is_closed_with_1013() -> None:
    """A stalled reader of 200-byte broadcasts through A is closed by A with 1013.

    The kernel's socket buffers absorb every message, so no send of A's ever blocks and A
    goes on reading B: only A's check that its client read what it was sent can find it.
    Two stalled readers: a websockets client that never calls `recv` (its library stops
    reading the socket once its queue is full), and a socket that never reads. A listener
    that reads is paced with the sender, and must get every message and stay open.
    (Fails without A's protocol: 0 of 2 closed in 20 s.)
    """
    payload = "x" * 200  # A does not deflate: 200 bytes on the wire
    with _a_before_b() as (a, _b):
        url = a.base_url.replace("http", "ws", 1) + "/ws/broadcast"
        async with (
            connect(url, ping_interval=None) as listener,
            connect(url, ping_interval=None) as stalled,
        ):
            raw = _raw_websocket(a.port)
            try:
                async with connect(url, ping_interval=None) as sender:
                    sent = 0
                    # Until A closed both, and no more than the buffers take without blocking.
                    with anyio.move_on_after(GIVE_UP_SECONDS):
                        while len(_CLOSED_1013.findall(a.log())) < 2:
                            if sent == LIVE_MAX_MESSAGES:
                                await anyio.sleep(0.05)  # polling A's log for the closes
                                continue
                            await sender.send(f"{sent}:{payload}")
                            assert f"New message: {sent}:{payload}" == await listener.recv()
                            sent += 1
                    closes = len(_CLOSED_1013.findall(a.log()))
                    assert 2 == closes, f"{closes} of 2 stalled readers closed; A:\n{a.log()}"
                    await sender.send("still here")
                    assert "New message: still here" == await listener.recv()
                read, close = await _read_until_closed(stalled)
                # It may have had every message in its buffers before A's close: their order.
                assert [f"New message: {n}:{payload}" for n in range(len(read))] == read
                assert close is not None
                assert (1013, NOT_READING) == (close.code, close.reason)
                data = await anyio.to_thread.run_sync(_read_to_end, raw)
            finally:
                raw.close()
            assert listener.close_code is None  # the reader is still open
    reason = NOT_READING.encode()
    close_frame = bytes([0x88, 2 + len(reason)]) + (1013).to_bytes(2, "big") + reason
    assert data.endswith(close_frame)
