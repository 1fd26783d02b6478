"""A's consumer contract with B over WebSockets: the messages A relays, as Pact messages.

Each message interaction names the provider state that makes B send it (its inputs are the
state's parameters) and the message itself. Pact hands each message to the handler, which
plays it through A's real relay: a stand-in for B sends it, a client of A must receive it
unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, WebSocket
from pact import Pact, match

from service_a import Settings as ASettings
from service_a import create_app as create_a
from tests.conftest import Backend, use_service_b
from tests.ws import InProcessWebSocketTransport, connect_ws

ISO_8601 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"


@dataclass(frozen=True)
class MessageCase:
    """One message A relays: what B sends on which channel, in which state."""

    description: str
    channel: str
    state: str
    params: dict[str, Any]
    content_type: str
    body: Any


MESSAGES = [
    MessageCase(
        "an echo of a text",
        "/ws/echo",
        "a client sent a text on /ws/echo",
        {"text": "hello"},
        "text/plain",
        "Echo: hello",
    ),
    MessageCase(
        "a JSON text parsed",
        "/ws/json",
        "a client sent JSON on /ws/json",
        {"text": '{"a": [1, 2]}'},
        "application/json",
        {"message": "Received JSON data", "data": {"a": [1, 2]}},
    ),
    MessageCase(
        "a broadcast from another client",
        "/ws/broadcast",
        "another client sent a text on /ws/broadcast",
        {"text": "hi all"},
        "text/plain",
        "New message: hi all",
    ),
    MessageCase(
        "a periodic update",
        "/ws/stream",
        "a client opened /ws/stream",
        {"interval": 0.05},
        "application/json",
        {
            "timestamp": match.regex("2026-11-22T08:00:00.000000+00:00", regex=ISO_8601),
            # A relays updates as they come: it needs their shape, not their wording.
            "message": match.str("This is a periodic update from the server."),
        },
    ),
    MessageCase(
        "a successful login",
        "/ws/v5/private",
        "a client logged in on /ws/v5/private with valid credentials",
        {},
        "application/json",
        {"event": "login", "success": True},
    ),
    MessageCase(
        "a failed login",
        "/ws/v5/private",
        "a client logged in on /ws/v5/private with a wrong signature",
        {},
        "application/json",
        {"event": "login", "success": False, "message": "Authentication failed"},
    ),
    MessageCase(
        "a subscription to items",
        "/ws/v5/private",
        "a logged-in client subscribed to items on /ws/v5/private",
        {},
        "application/json",
        {"event": "subscribe", "arg": {"channel": "items"}},
    ),
    MessageCase(
        "an item pushed after subscribe",
        "/ws/v5/private",
        "a subscribed client on /ws/v5/private saw an item created",
        {"name": "Pushed"},
        "application/json",
        {
            "arg": {"channel": "items"},
            "action": "created",
            "data": match.each_like({"item_id": match.int(2), "name": match.str("Pushed")}),
        },
    ),
]


@pytest.fixture
def pact(pact_dir: Path) -> Iterator[Pact]:
    """Give a fresh Pact between A and B; its messages are merged into the pact file."""
    pact = Pact("service-a", "service-b").with_specification("V4")
    yield pact
    pact.write_file(pact_dir, overwrite=False)


async def relayed_by_a(channel: str, text: str) -> str:
    """Have a stand-in for B send `text` on `channel`; give what A's client receives."""
    b_app = FastAPI()

    @b_app.websocket(channel)
    async def send_once(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(text)
        await websocket.receive()  # until A closes

    a_app = create_a(ASettings())
    async with httpx.AsyncClient(
        transport=InProcessWebSocketTransport(b_app), base_url="http://b"
    ) as b_client:
        use_service_b(a_app, b_client)
        async with (
            LifespanManager(a_app) as manager,
            httpx.AsyncClient(
                transport=InProcessWebSocketTransport(manager.app), base_url="http://a"
            ) as client,
            connect_ws(channel, client) as ws,
        ):
            return await ws.receive_text(5)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.description) for case in MESSAGES])
def test_message_is_relayed_unchanged(
    case: MessageCase, pact: Pact, anyio_backend: Backend
) -> None:
    """Each message B sends on a channel reaches A's client exactly as B sent it."""
    (
        pact.upon_receiving(case.description, "Async")
        .given(case.state, case.params)
        .with_body(case.body, content_type=case.content_type)
        .with_metadata({"channel": case.channel})
    )
    channel = case.channel
    received: list[tuple[str, str]] = []

    def handle(message: str | bytes | None, metadata: dict[str, Any]) -> None:
        assert isinstance(message, str)
        assert channel == metadata["channel"]
        relayed = anyio.run(relayed_by_a, channel, message, backend=anyio_backend)
        received.append((message, relayed))

    pact.verify(handle, "Async")
    [(sent, relayed)] = received
    assert sent == relayed
    if case.content_type == "application/json":
        json.loads(relayed)
