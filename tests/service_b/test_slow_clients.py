"""Clients that stop reading: B gives up on them instead of waiting for ever."""

from __future__ import annotations

from types import SimpleNamespace

import anyio
import pytest
from starlette.types import Message
from starlette.websockets import WebSocket

from service_b import Settings
from service_b.websocket_errors import TryAgainLater, close_websocket
from service_b.ws_api import Peer

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
