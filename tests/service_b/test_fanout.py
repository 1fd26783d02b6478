"""B's fan-out: every reader that keeps up gets every message; only a stalled one is closed.

Every scenario runs on both fan-outs (`fanout`): in-process, and through a real
redis-server (tests/redis_server.py), where B's own messages come back to it from Redis.

The sender and the stalled listener are driven at the ASGI level, so that the burst and the
stall are exact: the sender's `receive` hands B its whole burst without yielding (as uvicorn
does with the frames of one read), and the stalled listener's `send` never returns. The
reading listeners are ordinary httpx-ws clients in-process.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx_ws import AsyncWebSocketSession
from starlette.types import ASGIApp, Message, Scope

from service_b import Settings, create_app
from service_b.topics import Queued, Topic
from tests.service_b.ws_scripts import LOGGED_IN, SUBSCRIBE, SUBSCRIBED, SendLogin
from tests.ws import InProcessWebSocketTransport, connect_ws

READERS = 3


@pytest.fixture(params=["in-process", "redis"])
def fanout(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Give the settings of each fan-out: none (in-process), or through a real Redis."""
    if request.param == "in-process":
        return {}
    settings: dict[str, Any] = request.getfixturevalue("redis_fanout")
    return settings


def _scope(path: str) -> Scope:
    return {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "subprotocols": [],
        "scheme": "ws",
        "root_path": "",
    }


class RawClient:
    """One WebSocket session driven at the ASGI level: scripted input, and sends recorded.

    `incoming` is handed to B without yielding, as a server hands it the frames of one read;
    then `receive` waits until `leave` is set. The session has `joined` once it listens: at
    the handshake on /ws/broadcast, at the subscribe answer on /ws/v5/private. From then on,
    a `stalled` client never returns from a `websocket.send`, as a client that stopped
    reading (its buffers full) looks to B, and each send to a slow one takes `delay` s.
    """

    def texts(self) -> list[str]:
        """Give the texts B sent, in order."""
        return [m["text"] for m in self.sent if m["type"] == "websocket.send"]

    def __init__(
        self, app: ASGIApp, path: str, incoming: list[str], *, stalled: bool, delay: float = 0
    ) -> None:
        self._app = app
        self._delay = delay
        self._path = path
        self._incoming: list[Message] = [{"type": "websocket.connect"}]
        self._incoming += [{"type": "websocket.receive", "text": text} for text in incoming]
        self._stalled = stalled
        self.sent: list[Message] = []
        self.joined = anyio.Event()
        self.closed = anyio.Event()
        self.leave = anyio.Event()

    @property
    def close(self) -> Message:
        """Give the close message B sent."""
        assert self.closed.is_set()
        return self.sent[-1]

    async def _receive(self) -> Message:
        if self._incoming:
            return self._incoming.pop(0)
        await self.leave.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def _send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "websocket.close":
            self.closed.set()
            return
        joined = self.joined.is_set()
        accepted = message["type"] == "websocket.accept" and self._path == "/ws/broadcast"
        if accepted or message.get("text", "").startswith('{"event":"subscribe"'):
            self.joined.set()
        elif joined and self._stalled:
            await anyio.sleep_forever()
        elif joined and self._delay:
            await anyio.sleep(self._delay)  # the fault injected: a send that takes this long

    async def run(self) -> None:
        """Run the session until B ends it."""
        await self._app(_scope(self._path), self._receive, self._send)


def _joining(path: str) -> list[str]:
    return [] if path == "/ws/broadcast" else [SendLogin().text(), SUBSCRIBE]


async def _listen_broadcast(_: AsyncWebSocketSession) -> None:
    """Listen from the handshake on: that is all a broadcast client does."""


async def _subscribe_items(ws: AsyncWebSocketSession) -> None:
    await ws.send_text(SendLogin().text())
    assert LOGGED_IN == json.loads(await ws.receive_text(5))
    await ws.send_text(SUBSCRIBE)
    assert SUBSCRIBED == json.loads(await ws.receive_text(5))


def _burst(texts: list[str]) -> Callable[[ASGIApp, httpx.AsyncClient], Awaitable[None]]:
    """Publish `texts` on /ws/broadcast from one sender, in one burst."""

    async def publish(app: ASGIApp, _: httpx.AsyncClient) -> None:
        sender = RawClient(app, "/ws/broadcast", texts, stalled=False)
        sender.leave.set()  # it leaves right after its burst
        await sender.run()

    return publish


def _item_changes(names: list[str]) -> Callable[[ASGIApp, httpx.AsyncClient], Awaitable[None]]:
    """Create an item for each of `names`, over HTTP."""

    async def publish(_: ASGIApp, client: httpx.AsyncClient) -> None:
        for name in names:
            assert 201 == (await client.post("/items", json={"name": name})).status_code

    return publish


async def _fan_out(  # noqa: PLR0913 - each is one knob of the scenario
    settings: Settings,
    path: str,
    join: Callable[[AsyncWebSocketSession], Awaitable[None]],
    publish: Callable[[ASGIApp, httpx.AsyncClient], Awaitable[None]],
    count: int,
    *,
    stalled: bool,
) -> tuple[list[list[str]], RawClient]:
    """Run B with READERS reading listeners and one other listener on `path`, then `publish`.

    `join` makes a new session a listener. Give the `count` texts each reader received, and
    the other listener (stalled or not) once B closed it, or once the readers had all.
    """
    app = create_app(settings)
    with anyio.fail_after(10):
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=InProcessWebSocketTransport(manager.app), base_url="http://b"
            ) as client,
            anyio.create_task_group() as group,
            AsyncExitStack() as sessions,
        ):
            other = RawClient(manager.app, path, _joining(path), stalled=stalled)
            group.start_soon(other.run)
            await other.joined.wait()
            readers = []
            for _ in range(READERS):
                ws = await sessions.enter_async_context(connect_ws(path, client))
                await join(ws)
                readers.append(ws)
            await publish(manager.app, client)
            received = [[await ws.receive_text(5) for _ in range(count)] for ws in readers]
            if stalled:
                await other.closed.wait()
            other.leave.set()
    return received, other


BURST = 1000


@pytest.mark.anyio
async def test_a_burst_reaches_every_reader_complete_and_in_order(fanout: dict[str, Any]) -> None:
    """A sender's burst of 1,000 messages reaches every reading listener, all and in order.

    B used to publish a whole burst without yielding, so every queue overflowed before any
    reader ran: a burst of 80 closed every listener with 1013.
    """
    texts = [f"m{number}" for number in range(BURST)]
    settings = Settings(database_path=":memory:", **fanout)
    received, other = await _fan_out(
        settings, "/ws/broadcast", _listen_broadcast, _burst(texts), BURST, stalled=False
    )
    expected = [f"New message: {text}" for text in texts]
    assert [expected] * READERS == received
    assert expected == other.texts()
    assert not other.closed.is_set()


@pytest.mark.anyio
async def test_a_listener_that_never_reads_is_closed_1013_and_the_others_get_all(
    fanout: dict[str, Any],
) -> None:
    """Only the stalled listener overflows its queue (messages); it is closed with a reason."""
    texts = [f"m{number}" for number in range(BURST)]
    settings = Settings(
        database_path=":memory:", **fanout, ws_queue_size=64, ws_send_timeout_seconds=60
    )
    received, stalled = await _fan_out(
        settings, "/ws/broadcast", _listen_broadcast, _burst(texts), BURST, stalled=True
    )
    assert [[f"New message: {text}" for text in texts]] * READERS == received
    assert {"type": "websocket.close", "code": 1013} == _code(stalled.close)
    assert "more than 64 messages queued" in stalled.close["reason"]


@pytest.mark.anyio
async def test_a_stalled_listener_with_big_messages_hits_the_byte_bound(
    fanout: dict[str, Any],
) -> None:
    """Big messages overflow the queue's bytes long before its message count."""
    texts = [f"{number}:" + "x" * 8192 for number in range(40)]
    settings = Settings(
        **fanout,
        database_path=":memory:",
        ws_queue_size=10_000,
        ws_queue_bytes=64 * 1024,
        ws_send_timeout_seconds=60,
    )
    received, stalled = await _fan_out(
        settings, "/ws/broadcast", _listen_broadcast, _burst(texts), len(texts), stalled=True
    )
    assert [[f"New message: {text}" for text in texts]] * READERS == received
    assert {"type": "websocket.close", "code": 1013} == _code(stalled.close)
    assert f"more than {64 * 1024} bytes queued" in stalled.close["reason"]


@pytest.mark.anyio
async def test_a_listener_that_stops_reading_is_closed_after_the_send_timeout(
    fanout: dict[str, Any],
) -> None:
    """With room left in its queue, a stalled listener is closed when the send timeout ends."""
    texts = ["one", "two"]
    settings = Settings(database_path=":memory:", **fanout, ws_send_timeout_seconds=0.05)
    received, stalled = await _fan_out(
        settings, "/ws/broadcast", _listen_broadcast, _burst(texts), len(texts), stalled=True
    )
    assert [["New message: one", "New message: two"]] * READERS == received
    assert {"type": "websocket.close", "code": 1013} == _code(stalled.close)
    assert "not reading" in stalled.close["reason"]


@pytest.mark.anyio
async def test_a_stalled_items_subscriber_hits_the_byte_bound_and_the_others_get_all(
    fanout: dict[str, Any],
) -> None:
    """On /ws/v5/private, a subscriber that stopped reading big pushes is closed with 1013."""
    names = [f"{number}:".ljust(200, "x") for number in range(40)]
    settings = Settings(
        **fanout,
        database_path=":memory:",
        ws_queue_size=10_000,
        ws_queue_bytes=2048,
        ws_send_timeout_seconds=60,
    )
    received, stalled = await _fan_out(
        settings, "/ws/v5/private", _subscribe_items, _item_changes(names), len(names), stalled=True
    )
    for pushes in received:
        assert names == [json.loads(push)["data"][0]["name"] for push in pushes]
    assert {"type": "websocket.close", "code": 1013} == _code(stalled.close)
    assert "more than 2048 bytes queued" in stalled.close["reason"]


@pytest.mark.anyio
async def test_items_pushes_reach_every_reading_subscriber_in_order(fanout: dict[str, Any]) -> None:
    """Every subscriber that reads gets every change, in order; none is closed."""
    names = [f"n{number}" for number in range(200)]
    settings = Settings(database_path=":memory:", **fanout, ws_queue_size=4)
    received, other = await _fan_out(
        settings,
        "/ws/v5/private",
        _subscribe_items,
        _item_changes(names),
        len(names),
        stalled=False,
    )
    for pushes in received:
        assert names == [json.loads(push)["data"][0]["name"] for push in pushes]
    assert not other.closed.is_set()


def _code(message: Message) -> dict[str, object]:
    return {key: message[key] for key in ("type", "code")}


@pytest.mark.anyio
async def test_publish_lets_subscribers_drain_between_messages() -> None:
    """A publisher that publishes without pause never overflows a reader that drains its queue.

    The reader drains as B's writers do: it waits for a message, then takes all queued.
    """
    topic = Topic[str](max_messages=4)
    got: list[str] = []
    with topic.subscribe() as reader, anyio.fail_after(10):

        async def read() -> None:
            while len(got) < BURST and not reader.overflowed.is_set():
                queued: Queued | None = await reader.next()
                while queued is not None:
                    got.append(queued.text)
                    queued = reader.next_nowait()

        async with anyio.create_task_group() as group:
            group.start_soon(read)
            for number in range(BURST):
                await topic.publish(f"m{number}")
            if reader.overflowed.is_set():
                group.cancel_scope.cancel()
        assert "" == reader.overflow_reason
    assert [f"m{number}" for number in range(BURST)] == got


@pytest.mark.anyio
async def test_the_send_timeout_counts_from_when_a_message_was_queued(
    fanout: dict[str, Any],
) -> None:
    """A listener slower than a burst is closed once a message waited too long in its queue.

    Each send to it takes 0.15 s, under the 0.2 s send timeout, but the second message of
    a burst waits 0.15 s in the queue first: it cannot be taken within 0.2 s of being
    queued. B used to time each send alone, so such a listener fell ever further behind.
    """
    settings = Settings(database_path=":memory:", **fanout, ws_send_timeout_seconds=0.2)
    app = create_app(settings)
    with anyio.fail_after(10):
        async with LifespanManager(app) as manager, anyio.create_task_group() as group:
            slow = RawClient(manager.app, "/ws/broadcast", [], stalled=False, delay=0.15)
            group.start_soon(slow.run)
            await slow.joined.wait()
            await _burst(["one", "two", "three"])(manager.app, None)  # type: ignore[arg-type]
            await slow.closed.wait()
            slow.leave.set()
    assert {"type": "websocket.close", "code": 1013} == _code(slow.close)
    assert "not reading" in slow.close["reason"]
    assert "New message: one" == slow.texts()[0]
    assert "New message: three" not in slow.texts()
