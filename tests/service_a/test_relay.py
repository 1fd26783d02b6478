"""A's WebSocket relay in-process: B's scripts through A, closes both ways, B unreachable."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import httpx
import pytest
import starlette.websockets
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect
from starlette.testclient import WebSocketDenialResponse
from starlette.types import ASGIApp, Message
from starlette.websockets import WebSocketState

from service_a import Settings as ASettings
from service_a.relay import Relay, sendable
from service_b.resources import Resources
from tests.inprocess import B_URL, Backend, a_in_front_of_b, use_service_b
from tests.service_b.ws_scripts import (
    LOGGED_IN,
    MAX_MESSAGE,
    SCRIPTS,
    SUBSCRIBE,
    SUBSCRIBED,
    Closed,
    Receive,
    Script,
    Send,
    SendLogin,
    run_with_httpx_ws,
)
from tests.ws import InProcessWebSocketTransport, connect_ws

# One limit on both legs: B's echo of a message of exactly the limit is itself too big.
THROUGH_A = [
    *(script for script in SCRIPTS if script.id != "echo largest message"),
    Script(
        "echo largest relayed",
        "/ws/echo",
        [Send("x" * (MAX_MESSAGE - 6)), Receive("Echo: " + "x" * (MAX_MESSAGE - 6))],
    ),
    Script("echo answer too big", "/ws/echo", [Send("x" * MAX_MESSAGE), Closed(1009, "larger")]),
]


@pytest.mark.anyio
@pytest.mark.parametrize("script", [pytest.param(s, id=s.id) for s in THROUGH_A])
async def test_script_through_a(script: Script, a_client: httpx.AsyncClient) -> None:
    """Each conversation through A gets B's answers and close codes, both ways."""
    await run_with_httpx_ws(script, a_client)


@pytest.mark.anyio
async def test_push_through_a(a_client: httpx.AsyncClient) -> None:
    """A change made through A's HTTP API is pushed through A's relay."""
    async with connect_ws("/ws/v5/private", a_client) as ws:
        await ws.send_text(SendLogin().text())
        assert LOGGED_IN == json.loads(await ws.receive_text(5))
        await ws.send_text(SUBSCRIBE)
        assert SUBSCRIBED == json.loads(await ws.receive_text(5))
        item = (await a_client.post("/items", json={"name": "Relayed"})).json()["item_data"]
        push = json.loads(await ws.receive_text(5))
    assert {"arg": {"channel": "items"}, "action": "created", "data": [item]} == push


@pytest.mark.anyio
async def test_broadcast_through_a(a_client: httpx.AsyncClient) -> None:
    """Broadcasts pass between clients of A, and not back to the sender."""
    async with (
        connect_ws("/ws/broadcast", a_client) as alice,
        connect_ws("/ws/broadcast", a_client) as bob,
    ):
        await alice.send_text("hello")
        assert "New message: hello" == await bob.receive_text(5)
        await bob.send_text("sentinel")  # queued for Alice after her own, had it come back
        assert "New message: sentinel" == await alice.receive_text(5)


@pytest.mark.anyio
async def test_binary_frames_are_relayed(a_client: httpx.AsyncClient) -> None:
    """A binary frame reaches B as binary (B's echo refuses it with 1003, through A)."""
    async with connect_ws("/ws/echo", a_client) as ws:
        await ws.send_bytes(b"\x00\xff")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text(5)
    assert (1003, "binary frames are not supported; send text") == (
        closed.value.code,
        closed.value.reason,
    )


@pytest.mark.anyio
async def test_client_close_reaches_b(
    a_client: httpx.AsyncClient, b_running: LifespanManager
) -> None:
    """When the client leaves, A closes its session with B: B's broadcast has no one left."""
    resources: Resources = b_running._state["resources"]  # noqa: SLF001 - B's lifespan state
    async with connect_ws("/ws/broadcast", a_client) as ws:
        await ws.send_text("hi")
        assert 1 == len(resources.broadcast)
        await ws.close(4000, "done")
    with anyio.fail_after(5):
        while len(resources.broadcast):  # noqa: ASYNC110 - B's topic has no event to wait on
            await anyio.sleep(0.01)
    assert 0 == len(resources.broadcast)


@pytest.mark.anyio
async def test_client_code_reaches_b(a_app: FastAPI) -> None:
    """The close code and reason a client sends are what B receives."""
    received: list[tuple[int, str]] = []
    closed = anyio.Event()
    b_app = FastAPI()

    @b_app.websocket("/ws/echo")
    async def record(websocket: WebSocket) -> None:
        await websocket.accept()
        message = await websocket.receive()
        received.append((message["code"], message.get("reason", "")))
        closed.set()

    async with (
        httpx.AsyncClient(transport=InProcessWebSocketTransport(b_app), base_url=B_URL) as b,
        a_in_front_of_b(a_app, b) as client,
    ):
        async with connect_ws("/ws/echo", client) as ws:
            await ws.close(4001, "bye from the client")
        with anyio.fail_after(5):
            await closed.wait()
    assert [(4001, "bye from the client")] == received


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.anyio
async def test_unreachable_b_closes_with_1013(a_app: FastAPI) -> None:
    """When B cannot be reached, the client's session closes at once with 1013 and a reason."""
    down = httpx.AsyncClient(transport=httpx.MockTransport(_unreachable), base_url=B_URL)
    async with a_in_front_of_b(a_app, down) as client, connect_ws("/ws/echo", client) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text(5)
    assert (1013, "service B unavailable") == (closed.value.code, closed.value.reason)


def _refusing(_: httpx.Request) -> httpx.Response:
    return httpx.Response(403, json={"detail": "no"})


@pytest.mark.parametrize(
    ("b", "detail"),
    [
        (_unreachable, "service B unavailable"),
        (_refusing, "service B refused the WebSocket: 403"),
    ],
    ids=["unreachable", "refusing"],
)
def test_b_unreachable_or_refusing_refuses_the_handshake(
    b: Callable[[httpx.Request], httpx.Response],
    detail: str,
    a_app: FastAPI,
    anyio_backend: Backend,
) -> None:
    """Where the server can answer a handshake with HTTP, B down or refusing gives a JSON 503."""
    use_service_b(a_app, httpx.AsyncClient(transport=httpx.MockTransport(b), base_url="http://b"))
    with (
        TestClient(a_app, backend=anyio_backend) as client,
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect("/ws/json"),
    ):
        pass  # pragma: no cover - the handshake fails
    assert (503, {"detail": detail}) == (refused.value.status_code, refused.value.json())


@pytest.mark.anyio
@pytest.mark.parametrize("a_settings", [ASettings(ws_max_message_bytes=200)], ids=["limit 200"])
async def test_a_limits_messages_to_b_itself(a_client: httpx.AsyncClient) -> None:
    """A message over A's limit is refused by A (1009, A's reason), even when B allows more."""
    async with connect_ws("/ws/stream?interval=60", a_client) as ws:
        # B ignores what a stream client sends, and would take 1 MiB: only A can refuse it.
        assert "timestamp" in json.loads(await ws.receive_text(5))
        await ws.send_text("x" * 200)
        await ws.send_text("x" * 201)
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text(5)
    assert (1009, "message is larger than 200 bytes") == (closed.value.code, closed.value.reason)


def test_foreign_origin_is_refused(a_app: FastAPI, anyio_backend: Backend) -> None:
    """A refuses a browser handshake from an origin it does not allow, before calling B."""
    down = httpx.AsyncClient(transport=httpx.MockTransport(_unreachable), base_url="http://b")
    use_service_b(a_app, down)
    with (
        TestClient(a_app, backend=anyio_backend) as client,
        pytest.raises(starlette.websockets.WebSocketDisconnect) as refused,
        client.websocket_connect("/ws/echo", headers={"origin": "http://evil.example"}),
    ):
        pass  # pragma: no cover - the handshake fails
    assert (1008, "origin http://evil.example is not allowed") == (
        refused.value.code,
        refused.value.reason,
    )


@pytest.mark.parametrize(
    ("received", "sent"),
    [
        ((1000, "bye"), (1000, "bye")),
        ((4000, "app"), (4000, "app")),
        ((1008, "policy"), (1008, "policy")),
        ((1013, "later"), (1013, "later")),
        ((None, None), (1000, "")),
        ((1005, ""), (1000, "")),
        ((1006, ""), (1011, "")),
        ((1015, "tls"), (1011, "tls")),
        ((1014, "gateway"), (1011, "gateway")),
        ((1004, "reserved"), (1011, "reserved")),
        ((2999, "odd"), (1011, "odd")),
        ((1000, "é" * 100), (1000, "é" * 61)),
    ],
)
def test_sendable_close_codes(
    received: tuple[int | None, str | None], sent: tuple[int, str]
) -> None:
    """Only codes a close frame may carry are sent on; reasons fit in 123 bytes."""
    assert sent == sendable(*received, abnormal=1011)


async def _drain(ws: AsyncWebSocketSession) -> None:
    while True:
        await ws.receive(5)


@pytest.mark.anyio
async def test_client_that_stops_reading_is_dropped(b_client: httpx.AsyncClient) -> None:
    """A client that leaves relayed messages unread is closed (1013); B's session is closed too."""
    sent: list[Message] = []
    client_closed = anyio.Event()

    async def receive() -> Message:
        await client_closed.wait()
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Message) -> None:
        sent.append(message)
        await anyio.sleep_forever()  # the client's socket is full: nothing is ever taken

    scope = {"type": "websocket", "path": "/ws/stream", "headers": [], "state": {}}
    stalled = WebSocket(scope, receive, send)
    stalled.client_state = stalled.application_state = WebSocketState.CONNECTED
    settings = ASettings(ws_send_timeout=0.05)
    async with connect_ws("/ws/stream?interval=0.01", b_client) as upstream:
        with anyio.fail_after(5):
            await Relay(stalled, upstream, settings).run()
        with pytest.raises(WebSocketDisconnect) as closed:
            await _drain(upstream)
    assert "websocket.send" == sent[0]["type"]
    assert {
        "type": "websocket.close",
        "code": 1013,
        "reason": "the client is not reading; reconnect",
    } in sent
    assert 1001 == closed.value.code


class _Recording(InProcessWebSocketTransport):
    """B in-process, recording the requests A makes of it."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await super().handle_async_request(request)


@pytest.mark.anyio
async def test_relay_carries_the_request_id(a_app: FastAPI, b_running: LifespanManager) -> None:
    """A relayed handshake keeps the caller's X-Request-ID, sends it to B and returns it."""
    recording = _Recording(b_running.app)
    async with (
        httpx.AsyncClient(transport=recording, base_url=B_URL) as b,
        a_in_front_of_b(a_app, b) as client,
        connect_ws("/ws/echo", client, headers={"x-request-id": "ws-7"}) as ws,
    ):
        await ws.send_text("hi")
        assert "Echo: hi" == await ws.receive_text(5)
        assert ws.response is not None
        assert "ws-7" == ws.response.headers["x-request-id"]
    assert ["ws-7"] == [r.headers["x-request-id"] for r in recording.requests]
    assert "/ws/echo" == recording.requests[0].url.path
