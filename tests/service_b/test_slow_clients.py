"""Clients that stop reading: B gives up on them instead of waiting for ever."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
from types import SimpleNamespace

import anyio
import anyio.to_thread
import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import Message, Scope
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from service_b import Settings, create_app
from service_b.websocket_errors import TryAgainLater, close_websocket
from service_b.ws_api import Peer
from tests.live import run_service
from tests.service_b.ws_scripts import SUBSCRIBE, SendLogin
from tests.ws import InProcessWebSocketTransport, connect_ws

SHORT = 0.05


def stalled_websocket(sent: list[Message]) -> WebSocket:
    """Give an accepted WebSocket whose client never reads: every send waits for ever."""

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] in {"websocket.send", "websocket.close"}:
            await anyio.sleep_forever()

    resources = SimpleNamespace(settings=Settings(ws_send_timeout_seconds=SHORT))
    scope = {
        "type": "websocket",
        "path": "/ws/echo",
        "headers": [],
        "state": {"resources": resources},
    }
    websocket = WebSocket(scope, receive, send)
    websocket.client_state = websocket.application_state = websocket.application_state.CONNECTED
    return websocket


@pytest.mark.anyio
async def test_send_to_a_client_that_does_not_read_ends_with_1013() -> None:
    """A message the client does not take within the send timeout ends its session with 1013."""
    sent: list[Message] = []
    peer = Peer(stalled_websocket(sent), Settings(ws_send_timeout_seconds=SHORT))
    with anyio.fail_after(5), pytest.raises(TryAgainLater) as error:
        await peer.send_text("hello")
    assert 1013 == error.value.code
    assert [{"type": "websocket.send", "text": "hello"}] == sent


@pytest.mark.anyio
async def test_close_is_given_up_on_a_client_that_does_not_read() -> None:
    """The close frame too is given up on after the send timeout: the handler returns."""
    sent: list[Message] = []
    with anyio.fail_after(5):
        await close_websocket(stalled_websocket(sent), TryAgainLater("not reading"))
    assert [{"type": "websocket.close", "code": 1013, "reason": "not reading"}] == sent


@pytest.mark.anyio
async def test_items_subscriber_that_falls_behind_is_closed_and_others_go_on() -> None:
    """A subscriber whose pushes overflow its queue is closed with 1013; the others get all."""
    settings = Settings(database_path=":memory:", ws_queue_size=2, ws_send_timeout_seconds=30)
    app = create_app(settings)
    sent: list[Message] = []
    subscribed, closed = anyio.Event(), anyio.Event()
    incoming = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": SendLogin().text()},
        {"type": "websocket.receive", "text": SUBSCRIBE},
    ]

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await closed.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)
        text = message.get("text", "")
        if message["type"] == "websocket.close":
            closed.set()
        elif text.startswith('{"event":"subscribe"'):
            subscribed.set()
        elif text.startswith('{"arg"'):
            await anyio.sleep_forever()  # a client that stopped reading at the first push

    async with LifespanManager(app) as manager:
        scope: Scope = {
            "type": "websocket",
            "path": "/ws/v5/private",
            "raw_path": b"/ws/v5/private",
            "query_string": b"",
            "headers": [],
            "subprotocols": [],
            "scheme": "ws",
            "root_path": "",
            "app": manager.app,
        }

        async def serve_stalled_client() -> None:
            await manager.app(scope, receive, send)

        transport = InProcessWebSocketTransport(manager.app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://b") as client,
            connect_ws("/ws/v5/private", client) as healthy,
            anyio.create_task_group() as group,
        ):
            await healthy.send_text(SendLogin().text())
            await healthy.receive_text(5)
            await healthy.send_text(SUBSCRIBE)
            await healthy.receive_text(5)
            group.start_soon(serve_stalled_client)
            with anyio.fail_after(5):
                await subscribed.wait()
                for number in range(5):
                    await client.post("/items", json={"name": f"n{number}"})
                await closed.wait()
            pushes = [json.loads(await healthy.receive_text(5)) for _ in range(5)]
    assert {"type": "websocket.close", "code": 1013} == {
        key: sent[-1][key] for key in ("type", "code")
    }
    assert [f"n{number}" for number in range(5)] == [push["data"][0]["name"] for push in pushes]


#: A live B's send timeout in the test below: far below uvicorn's 20 s keep-alive ping.
LIVE_SEND_TIMEOUT = "1"
#: At most 2,000 x 200 bytes (400 KB) for each stalled reader: far below what the kernel's
#: socket buffers take on loopback (about 4 MB), so none of B's sends ever blocks.
LIVE_MAX_MESSAGES = 2000
NOT_READING = "the client is not reading; reconnect"
_CLOSED_1013 = re.compile(r"closing WebSocket /ws/broadcast with 1013")


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
    """Read every message left for `ws`, then give them and the close frame B sent."""
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
async def test_live_reader_that_stops_reading_small_messages_is_closed_with_1013() -> None:
    """A stalled reader of 200-byte messages is closed with 1013, not by a ping timeout.

    The kernel's socket buffers absorb every message, so no send of B ever blocks: only a
    check that the client read what it was sent can find it. Two stalled readers: a
    websockets client that never calls `recv` (its library stops reading the socket once its
    queue is full), and a socket that never reads. A listener that reads is paced with
    the sender, and must get every message and stay open.
    """
    env = {
        "SERVICE_B_DATABASE_PATH": ":memory:",
        "SERVICE_B_WS_SEND_TIMEOUT_SECONDS": LIVE_SEND_TIMEOUT,
    }
    payload = "x" * 200
    with run_service("service_b", env=env) as b:
        url = b.base_url.replace("http", "ws", 1) + "/ws/broadcast"
        async with (
            connect(url, ping_interval=None) as listener,
            connect(url, ping_interval=None) as stalled,
        ):
            raw = _raw_websocket(b.port)
            try:
                async with connect(url, ping_interval=None) as sender:
                    sent = 0
                    # Until B closed both (the keep-alive ping would close them with 1011
                    # at 40 s), and no more than the socket buffers take without blocking.
                    with anyio.move_on_after(30):
                        while len(_CLOSED_1013.findall(b.log())) < 2:
                            if sent == LIVE_MAX_MESSAGES:
                                await anyio.sleep(0.05)  # polling B's log for the closes
                                continue
                            await sender.send(f"{sent}:{payload}")
                            assert f"New message: {sent}:{payload}" == await listener.recv()
                            sent += 1
                    closes = len(_CLOSED_1013.findall(b.log()))
                    assert 2 == closes, f"{closes} of 2 stalled readers closed; B:\n{b.log()}"
                    await sender.send("still here")
                    assert "New message: still here" == await listener.recv()
                read, close = await _read_until_closed(stalled)
                assert [f"New message: {n}:{payload}" for n in range(len(read))] == read
                assert len(read) < sent
                assert close is not None
                assert (1013, NOT_READING) == (close.code, close.reason)
                data = await anyio.to_thread.run_sync(_read_to_end, raw)
            finally:
                raw.close()
    reason = NOT_READING.encode()
    close_frame = bytes([0x88, 2 + len(reason)]) + (1013).to_bytes(2, "big") + reason
    assert data.endswith(close_frame)
