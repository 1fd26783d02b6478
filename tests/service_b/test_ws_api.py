"""B's WebSocket API in-process, through httpx-ws's ASGI transport and Starlette's TestClient."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi.testclient import TestClient
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect
from starlette.testclient import WebSocketDenialResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_b.topics import Topic
from tests.service_b.ws_scripts import (
    LOGGED_IN,
    SUBSCRIBE,
    SUBSCRIBED,
    Script,
    SendLogin,
    by_script,
    run_with_httpx_ws,
    run_with_testclient,
)
from tests.ws import InProcessWebSocketTransport, connect_ws


@pytest.mark.anyio
@by_script
async def test_script_through_httpx_ws(script: Script, b_client: httpx.AsyncClient) -> None:
    """Each conversation gets the documented answers and close codes through httpx-ws."""
    await run_with_httpx_ws(script, b_client)


@by_script
def test_script_through_testclient(script: Script, b_testclient: TestClient) -> None:
    """Each conversation gets the documented answers and close codes through TestClient."""
    run_with_testclient(script, b_testclient)


async def _login(ws: AsyncWebSocketSession) -> None:
    await ws.send_text(SendLogin().text())
    assert LOGGED_IN == json.loads(await ws.receive_text(5))
    await ws.send_text(SUBSCRIBE)
    assert SUBSCRIBED == json.loads(await ws.receive_text(5))


@pytest.mark.anyio
async def test_item_changes_are_pushed(b_client: httpx.AsyncClient) -> None:
    """After subscribe, each HTTP create, update and delete is pushed with the item."""
    async with connect_ws("/ws/v5/private", b_client) as ws:
        await _login(ws)
        created = await b_client.post("/items", json={"name": "Pushed", "is_offer": True})
        item = created.json()["item_data"]
        await b_client.put(f"/items/{item['item_id']}", json={"name": "Renamed"})
        await b_client.delete(f"/items/{item['item_id']}")
        await b_client.delete("/items/999")  # not a change: nothing is pushed for it
        # The sentinel: pushed after anything the failed delete could have pushed.
        sentinel = (await b_client.post("/items", json={"name": "Last"})).json()["item_data"]

        pushes = [json.loads(await ws.receive_text(5)) for _ in range(4)]
        channel = {"channel": "items"}
        renamed = {"item_id": item["item_id"], "name": "Renamed"}
        assert [
            {"arg": channel, "action": "created", "data": [item]},
            {"arg": channel, "action": "updated", "data": [renamed]},
            {"arg": channel, "action": "deleted", "data": [renamed]},
            {"arg": channel, "action": "created", "data": [sentinel]},
        ] == pushes


@pytest.mark.anyio
async def test_no_push_without_subscribe(b_client: httpx.AsyncClient) -> None:
    """A logged-in client that has not subscribed is not sent item changes.

    Once it subscribes, the next change is the first push it gets: a push of the change made
    before would have come first.
    """
    async with connect_ws("/ws/v5/private", b_client) as ws:
        await ws.send_text(SendLogin().text())
        assert LOGGED_IN == json.loads(await ws.receive_text(5))
        await b_client.post("/items", json={"name": "Quiet"})
        await ws.send_text(SUBSCRIBE)
        assert SUBSCRIBED == json.loads(await ws.receive_text(5))
        await b_client.post("/items", json={"name": "Heard"})
        push = json.loads(await ws.receive_text(5))
    assert ("created", "Heard") == (push["action"], push["data"][0]["name"])


@pytest.mark.anyio
async def test_every_subscriber_gets_the_push(b_client: httpx.AsyncClient) -> None:
    """Two subscribed clients both receive the same change."""
    async with (
        connect_ws("/ws/v5/private", b_client) as first,
        connect_ws("/ws/v5/private", b_client) as second,
    ):
        await _login(first)
        await _login(second)
        await b_client.post("/items", json={"name": "Twice"})
        for ws in (first, second):
            assert "created" == json.loads(await ws.receive_text(5))["action"]


@pytest.mark.anyio
async def test_broadcast_reaches_others_not_sender(b_client: httpx.AsyncClient) -> None:
    """A broadcast message reaches every other client, and not the one that sent it."""
    async with (
        connect_ws("/ws/broadcast", b_client) as alice,
        connect_ws("/ws/broadcast", b_client) as bob,
        connect_ws("/ws/broadcast", b_client) as carol,
    ):
        await alice.send_text("hi all")
        assert "New message: hi all" == await bob.receive_text(5)
        assert "New message: hi all" == await carol.receive_text(5)
        await bob.send_text("hi alice")
        # Alice's next message is Bob's: her own would have been queued for her before it.
        assert "New message: hi alice" == await alice.receive_text(5)
        assert "New message: hi alice" == await carol.receive_text(5)
        await carol.send_text("and bob")  # the sentinel for Bob, after his own message
        assert "New message: and bob" == await bob.receive_text(5)


@pytest.mark.anyio
async def test_broadcast_binary_closes_1003(b_client: httpx.AsyncClient) -> None:
    """A binary frame on the broadcast endpoint closes that client with 1003."""
    async with connect_ws("/ws/broadcast", b_client) as ws:
        await ws.send_bytes(b"\x00")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text(5)
        assert 1003 == closed.value.code


@pytest.mark.anyio
async def test_overflowing_subscriber_is_closed_and_others_go_on() -> None:
    """A subscriber whose queue overflows is flagged at once; the others keep every message."""
    topic = Topic[str](max_messages=2)
    with topic.subscribe() as slow, topic.subscribe() as fast:
        for number in range(3):
            await topic.publish(f"m{number}")
            assert f"m{number}" == (await fast.next()).text
        assert slow.overflowed.is_set()
        assert "more than 2 messages queued for this client; reconnect" == slow.overflow_reason
        assert not fast.overflowed.is_set()
    assert 0 == len(topic)


@pytest.mark.anyio
async def test_queue_bytes_overflow_but_one_message_always_fits() -> None:
    """A queue holds up to its bytes; a message bigger than that still fits an empty queue."""
    topic = Topic[str](max_messages=100, max_bytes=10)
    with topic.subscribe() as big, topic.subscribe() as small:
        await topic.publish("x" * 50, exclude=small)
        assert not big.overflowed.is_set()
        await topic.publish("é" * 5, exclude=big)
        await topic.publish("y", exclude=big)
        assert "more than 10 bytes queued for this client; reconnect" == small.overflow_reason
        assert 50 == (await big.next()).size
        assert [10] == [(await small.next()).size]


@pytest.mark.anyio
async def test_publisher_is_not_offered_its_own_message() -> None:
    """`exclude` leaves the sender out of the fan-out."""
    topic = Topic[str](max_messages=4)
    with topic.subscribe() as sender, topic.subscribe() as other:
        await topic.publish("x", exclude=sender)
        queued = other.next_nowait()
        assert queued is not None
        assert "x" == queued.text
        assert sender.next_nowait() is None


@pytest.mark.anyio
@pytest.mark.parametrize("origin", ["http://evil.example", "null"])
async def test_foreign_origin_is_refused(origin: str, b_client: httpx.AsyncClient) -> None:
    """A handshake from an origin that is not allowed is refused before it opens.

    httpx-ws's ASGI transport has no denial-response extension, so B refuses by closing
    before accepting, which the transport reports as a 1008 close; a real server answers 403
    (see the live tests).
    """
    with pytest.raises(WebSocketDisconnect) as refused:
        async with connect_ws("/ws/echo", b_client, headers={"origin": origin}):
            pass  # pragma: no cover - the handshake fails
    assert 1008 == refused.value.code
    assert f"origin {origin} is not allowed" == refused.value.reason


@pytest.mark.anyio
@pytest.mark.parametrize("origin", ["http://localhost:8001", "http://127.0.0.1:8000"])
async def test_allowed_origin_is_accepted(origin: str, b_client: httpx.AsyncClient) -> None:
    """A handshake from an allowed origin opens the session."""
    async with connect_ws("/ws/echo", b_client, headers={"origin": origin}) as ws:
        await ws.send_text("ok")
        assert "Echo: ok" == await ws.receive_text(5)


def test_foreign_origin_is_refused_through_testclient(b_testclient: TestClient) -> None:
    """TestClient sees the refused handshake as a 403 JSON answer that says why."""
    connect = b_testclient.websocket_connect
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        connect("/ws/json", headers={"origin": "http://evil.example"}),
    ):
        pass  # pragma: no cover - the handshake fails
    assert 403 == refused.value.status_code
    assert {"detail": "origin http://evil.example is not allowed"} == refused.value.json()


@pytest.mark.anyio
async def test_stream_keeps_its_interval(b_client: httpx.AsyncClient) -> None:
    """Updates at interval 0.05 s arrive about 0.05 s apart, not faster."""
    async with connect_ws("/ws/stream?interval=0.05", b_client) as ws:
        await ws.receive_text(5)
        started = anyio.current_time()
        for _ in range(4):
            await ws.receive_text(5)
        elapsed = anyio.current_time() - started
    assert elapsed >= 4 * 0.05 * 0.9


def _late_sender(app: ASGIApp, delay: float) -> ASGIApp:
    """Wrap `app` so that each WebSocket message it sends reaches the client `delay` s late."""

    async def late(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_late(message: Message) -> None:
            if message["type"] == "websocket.send":
                await anyio.sleep(delay)  # the fault injected: a send that takes this long
            await send(message)

        await app(scope, receive, send_late)

    return late


@pytest.mark.anyio
async def test_stream_goes_on_when_it_runs_late(b_running: LifespanManager) -> None:
    """A stream whose sends take longer than its interval keeps sending, without catching up.

    Each send here takes 0.03 s against an interval of 0.01 s, so every step finds the next
    update overdue: the case where B used to ask anyio for a (slightly) negative sleep and
    the endpoint died with `ValueError`.
    """
    transport = InProcessWebSocketTransport(_late_sender(b_running.app, 0.03))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://service-b") as client,
        connect_ws("/ws/stream?interval=0.01", client) as ws,
    ):
        updates = [json.loads(await ws.receive_text(5)) for _ in range(5)]
    assert all(set(update) == {"timestamp", "message"} for update in updates)
