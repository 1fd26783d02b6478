"""A's WebSocket protocol towards its clients: data a client does not read closes it, 1013.

The twin of B's tests of `service_b/ws_protocol.py` (in tests/service_b/test_slow_clients.py):
uvicorn's protocol on a fake socket, with a websockets client (sans-I/O) on the other end
that reads, or answers pings, only when the test says so.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from starlette.types import Message, Scope
from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from service_a.ws_protocol import delivery_checked_protocol

SHORT = 0.05
NOT_READING = "the client is not reading; reconnect"


class _Transport(asyncio.Transport):
    """A socket whose peer is in the test: what A writes is kept until the test passes it on."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.wrote = asyncio.Event()
        self.closed = asyncio.Event()
        self.aborted = False
        #: What the test says stays in A's buffer, not yet taken by the client's kernel.
        self.buffered = 0

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))
        self.wrote.set()

    def close(self) -> None:
        self.closed.set()

    def abort(self) -> None:
        self.aborted = True
        self.closed.set()

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def get_write_buffer_size(self) -> int:
        """Give what the test says is buffered (the test holds what was written)."""
        return self.buffered

    def pause_reading(self) -> None:
        """Nothing to pause: the test feeds the protocol itself."""

    def resume_reading(self) -> None:
        """Nothing to resume."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)


class _Connection:
    """A's WebSocket protocol on a fake socket, with a websockets client on the other end.

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
        self.client = ClientProtocol(parse_uri("ws://127.0.0.1/ws/broadcast"))
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
        """Wait for the app to accept, and let the client read A's answer to its handshake."""
        while self.client.state is not State.OPEN:
            await asyncio.sleep(0)
            self.server_to_client()

    def client_to_server(self) -> None:
        """Pass what the client wrote (its handshake, its pongs) to A."""
        self.server.data_received(b"".join(self.client.data_to_send()))

    def server_to_client(self) -> list[Frame]:
        """Let the client read what A wrote; give the frames it read."""
        self.client.receive_data(b"".join(self.transport.written))
        self.transport.written.clear()
        return [e for e in self.client.events_received() if isinstance(e, Frame)]

    async def until_closed_by_a(self) -> list[Frame]:
        """Give the frames A wrote, up to its close frame."""
        frames: list[Frame] = []
        while not frames or frames[-1].opcode is not Opcode.CLOSE:
            await self.transport.wrote.wait()
            self.transport.wrote.clear()
            frames += self.server_to_client()
        return frames

    async def send(self, text: str) -> list[Frame]:
        """Have the app send `text`; give the frames A wrote, up to the ping after it."""
        self.to_send.put_nowait(text)
        frames: list[Frame] = []
        while not frames or frames[-1].opcode is not Opcode.PING:  # data, then A's ping
            await asyncio.sleep(0)
            frames += self.server_to_client()
        return frames


def _awaiting_acknowledgement(connection: _Connection) -> bool:
    """Tell whether A has sent data that the client has not acknowledged."""
    return connection.server.unacknowledged_since() is not None


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # uvicorn's protocol is asyncio's
@pytest.mark.anyio
async def test_data_not_acknowledged_within_the_send_timeout_closes_with_1013() -> None:
    """A pings after data; a client that does not answer is closed with 1013 and a reason."""
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
    """The pong to A's ping acknowledges the data before it: nothing is left to time out."""
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
    """A client may answer only the latest of two pings (RFC 6455 5.5.3): A takes it for both.

    A pong to A's delivery ping answers uvicorn's keep-alive ping sent before it, and a pong
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


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_after_its_close_a_reads_until_the_client_answers() -> None:
    """A goes on reading after its 1013: a late pong and the client's close end it cleanly.

    Closing the socket with the pong unread would reset the connection, and the client
    would lose what the kernel still held for it (seen through A: 1006 after 5,756 of
    9,900 messages).
    """
    connection = _Connection()
    with anyio.fail_after(5):
        await connection.open()
        connection.to_send.put_nowait("hello")
        frames = await connection.until_closed_by_a()
        assert [Opcode.TEXT, Opcode.PING, Opcode.CLOSE] == [frame.opcode for frame in frames]
        assert not connection.transport.is_closing()  # still reading
        connection.client_to_server()  # the client read it all: its pong and its close
        assert connection.transport.is_closing()
        assert connection.server.close_timer is None
    assert not connection.transport.aborted
    assert Close(1013, NOT_READING) == connection.client.close_rcvd


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_client_that_takes_nothing_after_the_close_is_cut_off() -> None:
    """With A's buffer not shrinking for a send timeout after its close, A aborts."""
    connection = _Connection()
    with anyio.fail_after(5):
        await connection.open()
        connection.transport.buffered = 1000
        connection.to_send.put_nowait("hello")
        await connection.until_closed_by_a()
        await connection.transport.closed.wait()
    assert connection.transport.aborted


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_a_client_that_took_its_buffer_after_the_close_is_closed_not_cut_off() -> None:
    """A's buffer empty a send timeout after its close: the socket is closed, not reset."""
    connection = _Connection()
    with anyio.fail_after(5):
        await connection.open()
        connection.transport.buffered = 1000
        connection.to_send.put_nowait("hello")
        await connection.until_closed_by_a()
        connection.transport.buffered = 0  # the client's kernel took it all
        await connection.transport.closed.wait()
    assert not connection.transport.aborted
