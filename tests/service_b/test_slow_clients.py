"""Clients that stop reading: B gives up on them instead of waiting for ever."""

from __future__ import annotations

import json
from types import SimpleNamespace

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.types import Message, Scope
from starlette.websockets import WebSocket

from service_b import Settings, create_app
from service_b.websocket_errors import TryAgainLater, close_websocket
from service_b.ws_api import Peer
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
