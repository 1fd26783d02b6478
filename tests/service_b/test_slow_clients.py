"""Clients that stop reading: B gives up on them instead of waiting for ever."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import Message, Scope
from starlette.websockets import WebSocket
from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.server import ServerState
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from service_b import Settings, create_app
from service_b.websocket_errors import TryAgainLater, close_websocket
from service_b.ws_api import Peer
from service_b.ws_protocol import delivery_checked_protocol
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
LIVE_SEND_TIMEOUT = "4"
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
                assert close is not None
                assert (1013, NOT_READING) == (close.code, close.reason)
                data = await anyio.to_thread.run_sync(_read_to_end, raw)
            finally:
                raw.close()
    reason = NOT_READING.encode()
    close_frame = bytes([0x88, 2 + len(reason)]) + (1013).to_bytes(2, "big") + reason
    assert data.endswith(close_frame)


class _Transport(asyncio.Transport):
    """A socket whose peer is in the test: what B writes is kept until the test passes it on."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = asyncio.Event()

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed.set()

    def abort(self) -> None:
        self.closed.set()

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def get_write_buffer_size(self) -> int:
        """Nothing stays buffered: the test holds what was written."""
        return 0

    def pause_reading(self) -> None:
        """Nothing to pause: the test feeds the protocol itself."""

    def resume_reading(self) -> None:
        """Nothing to resume."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)


class _Connection:
    """B's WebSocket protocol on a fake socket, with a websockets client on the other end.

    Its app sends what the test puts in `to_send` and records what it receives.
    """

    def __init__(self) -> None:
        self.to_send: asyncio.Queue[str] = asyncio.Queue()
        self.received: list[Message] = []
        self.send_failed = asyncio.Event()
        config = Config(
            app=self._app,
            interface="asgi3",
            ws_ping_interval=1000,  # the tests send keep-alive pings themselves
            ws_ping_timeout=5,
            log_config=None,
        )
        config.load()
        self.server = delivery_checked_protocol(SHORT)(
            config=config, server_state=ServerState(), app_state={}
        )
        self.transport = _Transport()
        self.server.connection_made(self.transport)
        self.client = ClientProtocol(parse_uri("ws://127.0.0.1/ws/echo"))
        self.client.send_request(self.client.connect())
        self.client_to_server()

    async def _app(self, _scope: Scope, receive: Any, send: Any) -> None:
        assert "websocket.connect" == (await receive())["type"]
        await send({"type": "websocket.accept"})

        async def read() -> None:
            while True:
                self.received.append(await receive())

        task = asyncio.ensure_future(read())
        try:
            while True:
                text = await self.to_send.get()
                try:
                    await send({"type": "websocket.send", "text": text})
                except ClientDisconnected:
                    self.send_failed.set()
                    return
        finally:
            task.cancel()

    async def open(self) -> None:
        """Wait for the app to accept, and let the client read B's answer to its handshake."""
        while self.client.state is not State.OPEN:
            await asyncio.sleep(0)
            self.server_to_client()

    def client_to_server(self) -> None:
        """Pass what the client wrote (its handshake, its pongs) to B."""
        self.server.data_received(b"".join(self.client.data_to_send()))

    def server_to_client(self) -> list[Frame]:
        """Let the client read what B wrote; give the frames it read."""
        self.client.receive_data(b"".join(self.transport.written))
        self.transport.written.clear()
        return [e for e in self.client.events_received() if isinstance(e, Frame)]

    async def send(self, text: str) -> list[Frame]:
        """Have the app send `text`; give the frames B wrote, up to the ping after it."""
        self.to_send.put_nowait(text)
        frames: list[Frame] = []
        while not frames or frames[-1].opcode is not Opcode.PING:  # data, then B's ping
            await asyncio.sleep(0)
            frames += self.server_to_client()
        return frames


def _awaiting_acknowledgement(connection: _Connection) -> bool:
    """Tell whether B has sent data that the client has not acknowledged."""
    return connection.server.unacknowledged_since() is not None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # uvicorn's protocol is asyncio's
@pytest.mark.anyio
async def test_data_not_acknowledged_within_the_send_timeout_closes_with_1013() -> None:
    """B pings after data; a client that does not answer is closed with 1013 and a reason."""
    connection = _Connection()
    with anyio.fail_after(5):
        await connection.open()  # the client reads that much, and no more
        connection.to_send.put_nowait("hello")
        await connection.transport.closed.wait()
        frames = connection.server_to_client()
        connection.to_send.put_nowait("after the close")
        await connection.send_failed.wait()
    assert [Opcode.TEXT, Opcode.PING, Opcode.CLOSE] == [frame.opcode for frame in frames]
    assert Close(1013, NOT_READING) == Close.parse(frames[-1].data)
    assert {"type": "websocket.disconnect", "code": 1013, "reason": NOT_READING} in (
        connection.received
    )


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_client_that_answers_the_ping_is_not_due_to_be_closed() -> None:
    """The pong to B's ping acknowledges the data before it: nothing is left to time out."""
    connection = _Connection()
    with anyio.fail_after(5):
        await connection.open()
        frames = await connection.send("hello")
    assert [Opcode.TEXT, Opcode.PING] == [frame.opcode for frame in frames]
    assert _awaiting_acknowledgement(connection)
    connection.client_to_server()  # the client's pong
    assert not _awaiting_acknowledgement(connection)
    assert not connection.transport.is_closing()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_pong_answers_every_ping_before_it() -> None:
    """A client may answer only the latest of two pings (RFC 6455 5.5.3): B takes it for both.

    A pong to B's delivery ping answers uvicorn's keep-alive ping sent before it, and a pong
    to a keep-alive ping acknowledges the data sent before it.
    """
    connection = _Connection()
    server = connection.server
    with anyio.fail_after(5):
        await connection.open()
        server.send_keepalive_ping()
        frames = await connection.send("one")
        assert [Opcode.PING, Opcode.TEXT, Opcode.PING] == [frame.opcode for frame in frames]
        connection.client.data_to_send()  # drop the answers to both pings...
        connection.client.send_pong(frames[-1].data)  # ...and answer only the latest
        connection.client_to_server()
        assert server.pong_timer is None
        assert not _awaiting_acknowledgement(connection)

        frames = await connection.send("two")
        server.send_keepalive_ping()
        frames += connection.server_to_client()
        assert [Opcode.TEXT, Opcode.PING, Opcode.PING] == [frame.opcode for frame in frames]
        connection.client.data_to_send()
        connection.client.send_pong(frames[-1].data)
        connection.client_to_server()
        assert server.pong_timer is None
        assert not _awaiting_acknowledgement(connection)
    assert not connection.transport.is_closing()
