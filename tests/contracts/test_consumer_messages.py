"""A's consumer contract with B over WebSockets: the messages A relays, as Pact messages.

Each interaction names the provider state that makes B send its message (the state's
parameters are its inputs), the message, and the AsyncAPI operation of B's document it is
an instance of (`comments.references.AsyncAPI.operationId`, as PactFlow's comparator reads
it). What B sends by itself (a stream update, a broadcast, an item push) is an asynchronous
message; what B answers to a client's message (an echo, a login's answer) is a synchronous
message: the client's request and B's reply, as AsyncAPI's `reply` describes them.

Each message is played through A's real relay: a stand-in for B sends it (after receiving
the request, for a reply), and a client of A must receive it unchanged.
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
from httpx_ws import WebSocketDisconnect
from pact import Pact, match
from pact_ffi import MessageContents

from service_a import Settings as ASettings
from service_a import create_app as create_a
from tests.conftest import Backend, use_service_b
from tests.ws import InProcessWebSocketTransport, connect_ws

ISO_8601 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"


@dataclass(frozen=True)
class MessageCase:
    """One message A relays: what B sends on which channel, in which state.

    `operation` is the AsyncAPI operation the message belongs to; `request`, for a reply,
    the client's message (content type and body) that B answers; `close`, the close code
    B ends the session with after the message, if it does (in the message's metadata as
    `closeCode`, so that a B that closes otherwise, or not at all, fails verification).
    """

    description: str
    channel: str
    state: str
    params: dict[str, Any]
    content_type: str
    body: Any
    operation: str
    request: tuple[str, Any] | None = None
    close: int | None = None


TEXT, JSON = "text/plain", "application/json"
LOGIN_REQUEST = {
    "op": "login",
    "args": [
        {
            "apiKey": match.str("abc"),
            "passphrase": match.str("pact"),
            "timestamp": match.str("1795000000"),
            "sign": match.str("0Fc1TlrEdyf+Ca0/nqm6NYRv3ImWJqhAJLN0kcb0fPc="),
        }
    ],
}
SUBSCRIBE_REQUEST = {"op": "subscribe", "args": [{"channel": "items"}]}


MESSAGES = [
    MessageCase(
        "an echo of a text",
        "/ws/echo",
        "a client sent a text on /ws/echo",
        {"text": "hello"},
        TEXT,
        "Echo: hello",
        "receiveEchoText",
        (TEXT, "hello"),
    ),
    MessageCase(
        "a JSON text parsed",
        "/ws/json",
        "a client sent JSON on /ws/json",
        {"text": '{"a": [1, 2]}'},
        JSON,
        {"message": "Received JSON data", "data": {"a": [1, 2]}},
        "receiveJsonValue",
        (JSON, {"a": [1, 2]}),
    ),
    MessageCase(
        "a broadcast from another client",
        "/ws/broadcast",
        "another client sent a text on /ws/broadcast",
        {"text": "hi all"},
        TEXT,
        "New message: hi all",
        "sendBroadcastText",
    ),
    MessageCase(
        "a periodic update",
        "/ws/stream",
        "a client opened /ws/stream",
        {"interval": 0.05},
        JSON,
        {
            "timestamp": match.regex("2026-11-22T08:00:00.000000+00:00", regex=ISO_8601),
            # A relays updates as they come: it needs their shape, not their wording.
            "message": match.str("This is a periodic update from the server."),
        },
        "sendStreamUpdate",
    ),
    MessageCase(
        "a successful login",
        "/ws/v5/private",
        "a client logged in on /ws/v5/private with valid credentials",
        {},
        JSON,
        {"event": "login", "success": True},
        "receivePrivateLogin",
        (JSON, LOGIN_REQUEST),
    ),
    MessageCase(
        "a failed login",
        "/ws/v5/private",
        "a client logged in on /ws/v5/private with a wrong signature",
        {},
        JSON,
        {"event": "login", "success": False, "message": "Authentication failed"},
        "receivePrivateLogin",
        (JSON, LOGIN_REQUEST),
        close=1008,
    ),
    MessageCase(
        "a request before login",
        "/ws/v5/private",
        "a client sent a request before logging in on /ws/v5/private",
        {},
        JSON,
        {"event": "error", "code": "60011", "msg": match.str("Please log in")},
        "receivePrivateSubscribe",
        (JSON, SUBSCRIBE_REQUEST),
        close=1008,
    ),
    MessageCase(
        "a pong to a ping",
        "/ws/v5/private",
        "a client sent ping on /ws/v5/private",
        {},
        TEXT,
        "pong",
        "receivePrivatePing",
        (TEXT, "ping"),
    ),
    MessageCase(
        "a subscription to items",
        "/ws/v5/private",
        "a logged-in client subscribed to items on /ws/v5/private",
        {},
        JSON,
        {"event": "subscribe", "arg": {"channel": "items"}},
        "receivePrivateSubscribe",
        (JSON, SUBSCRIBE_REQUEST),
    ),
    MessageCase(
        "an item pushed after subscribe",
        "/ws/v5/private",
        "a subscribed client on /ws/v5/private saw an item created",
        {"name": "Pushed"},
        JSON,
        {
            "arg": {"channel": "items"},
            "action": "created",
            "data": match.each_like({"item_id": match.int(2), "name": match.str("Pushed")}),
        },
        "sendPrivateItemsPush",
    ),
    MessageCase(
        "an item update pushed after subscribe",
        "/ws/v5/private",
        "a subscribed client on /ws/v5/private saw an item updated",
        {"name": "Renamed"},
        JSON,
        {
            "arg": {"channel": "items"},
            "action": "updated",
            "data": match.each_like({"item_id": match.int(2), "name": match.str("Renamed")}),
        },
        "sendPrivateItemsPush",
    ),
    MessageCase(
        "an item deletion pushed after subscribe",
        "/ws/v5/private",
        "a subscribed client on /ws/v5/private saw an item deleted",
        {"name": "Deleted"},
        JSON,
        {
            "arg": {"channel": "items"},
            "action": "deleted",
            "data": match.each_like({"item_id": match.int(2), "name": match.str("Deleted")}),
        },
        "sendPrivateItemsPush",
    ),
]


@pytest.fixture
def pact(pact_dir: Path) -> Iterator[Pact]:
    """Give a fresh Pact between A and B; its messages are merged into the pact file."""
    pact = Pact("service-a", "service-b").with_specification("V4")
    yield pact
    pact.write_file(pact_dir, overwrite=False)


async def relayed_by_a(
    channel: str, text: str, request: str | None = None, close: int | None = None
) -> tuple[str, int | None]:
    """Have a stand-in for B send `text` on `channel`; give what A's client receives.

    With a `request`, A's client sends it first, and the stand-in must receive it unchanged
    before it answers. With a `close` code, the stand-in then closes with it, and what A's
    client receives includes the code its session is closed with.
    """
    b_app = FastAPI()
    received: list[str] = []

    @b_app.websocket(channel)
    async def send_once(websocket: WebSocket) -> None:
        await websocket.accept()
        if request is not None:
            received.append(await websocket.receive_text())
        await websocket.send_text(text)
        if close is not None:
            await websocket.close(close)
            return
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
            if request is not None:
                await ws.send_text(request)
            relayed = await ws.receive_text(5)
            closed_with = None
            if close is not None:
                with pytest.raises(WebSocketDisconnect) as closed:
                    await ws.receive_text(5)
                closed_with = closed.value.code
    assert ([] if request is None else [request]) == received
    return relayed, closed_with


def _declare(pact: Pact, case: MessageCase) -> None:
    closing: dict[str, object] = {} if case.close is None else {"closeCode": str(case.close)}
    if case.request is None:
        (
            pact.upon_receiving(case.description, "Async")
            .given(case.state, case.params)
            .with_body(case.body, content_type=case.content_type)
            .with_metadata({"channel": case.channel, **closing})
            .add_external_reference("AsyncAPI", "operationId", case.operation)
        )
        return
    request_type, request = case.request
    (
        pact.upon_receiving(case.description, "Sync")
        .given(case.state, case.params)
        .with_body(request, content_type=request_type)
        .with_metadata({"channel": case.channel})
        .will_respond_with()
        .with_body(case.body, content_type=case.content_type)
        .with_metadata(closing)
        .add_external_reference("AsyncAPI", "operationId", case.operation)
    )


def _text(contents: str | bytes | MessageContents | None) -> str:
    if isinstance(contents, MessageContents):
        contents = contents.contents
    assert isinstance(contents, str)
    return contents


@pytest.mark.parametrize("case", [pytest.param(case, id=case.description) for case in MESSAGES])
def test_message_is_relayed_unchanged(
    case: MessageCase, pact: Pact, anyio_backend: Backend
) -> None:
    """Each message B sends on a channel reaches A's client exactly as B sent it.

    A reply's request reaches B exactly as A's client sent it, and the close that follows
    a refusal reaches A's client with B's code.
    """
    _declare(pact, case)
    # The messages are read while Pact's iterator holds them: they die with it.
    played: list[tuple[str | None, list[str]]]
    if case.request is None:
        played = [(None, [_text(m.contents)]) for m in pact.interactions("Async")]
    else:
        played = [
            (_text(m.request_contents), [_text(r) for r in m.response_contents])
            for m in pact.interactions("Sync")
        ]
    [(request, [sent])] = played
    relayed, closed_with = anyio.run(
        relayed_by_a, case.channel, sent, request, case.close, backend=anyio_backend
    )
    assert (sent, case.close) == (relayed, closed_with)
    if case.content_type == JSON:
        json.loads(relayed)
