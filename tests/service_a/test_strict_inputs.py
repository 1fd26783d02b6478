"""A, the edge, refuses lax inputs itself and tells B who called, never what the caller claims."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, WebSocket

from service_a.forwarded import forwarded_headers
from tests.inprocess import B_URL, a_in_front_of_b
from tests.service_b.http_cases import HttpCase, check_response
from tests.service_b.strict_cases import STRICT_CASES
from tests.ws import InProcessWebSocketTransport, connect_ws

ITEM = {"item_id": 1, "name": "The One Item"}
#: What B's double answers, by method and path.
ANSWERS: dict[tuple[str, str], tuple[int, object]] = {
    ("GET", "/items/1"): (200, ITEM),
    ("PUT", "/items/1"): (200, ITEM),
    ("GET", "/items"): (200, [ITEM]),
    ("POST", "/items"): (201, {"message": "Item created successfully", "item_data": ITEM}),
    ("GET", "/b/"): (200, {"b": "b"}),
    ("GET", "/status"): (200, {"status": "ok"}),
}
CALLER = ("203.0.113.7", 41000)
EDGE = "https://edge.example:8443"  # where the caller reaches A
SPOOFED = [
    (b"X-Forwarded-For", b"6.6.6.6"),
    (b"x-forwarded-for", b"7.7.7.7, 8.8.8.8"),
    (b"X-Forwarded-Host", b"evil.example"),
    (b"X-Forwarded-Proto", b"gopher"),
    (b"X-Forwarded-Port", b"1"),
    (b"X-Forwarded-Prefix", b"/admin"),
    (b"X-Real-IP", b"6.6.6.6"),
    (b"Forwarded", b"for=6.6.6.6;host=evil.example;proto=https"),
    (b"forwarded", b"for=9.9.9.9"),
]


class RecordingB:
    """B's double: answers what A forwards as B would, and keeps every request it got."""

    def __init__(self) -> None:
        """Start with no request."""
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Record the request and answer it."""
        self.requests.append(request)
        status, body = ANSWERS.get((request.method, request.url.path), (404, {"detail": "no"}))
        return httpx.Response(status, json=body, headers={"location": "/items/1"})


@pytest.fixture
def recording_b() -> RecordingB:
    """Give B's double."""
    return RecordingB()


@pytest.fixture
async def edge(a_app: FastAPI, recording_b: RecordingB) -> AsyncIterator[httpx.AsyncClient]:
    """Give a client on A, reached from `CALLER` over https, A reaching B's double."""
    b = httpx.AsyncClient(transport=httpx.MockTransport(recording_b), base_url=B_URL)
    async with b, a_in_front_of_b(a_app, b, base_url=EDGE, client=CALLER) as client:
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in STRICT_CASES])
async def test_lax_input_is_refused_without_calling_b(
    case: HttpCase, edge: httpx.AsyncClient, recording_b: RecordingB
) -> None:
    """A refuses each lax id, query or body as B would, and B never hears of it."""
    check_response(case, await edge.request(case.method, case.path, **case.request_kwargs()))
    assert [] == recording_b.requests


FORWARDED_CALLS = [
    ("GET", "/items/1", None),
    ("PUT", "/items/1", {"name": "x"}),
    ("POST", "/items", {"name": "x"}),
    ("GET", "/items", None),
    ("GET", "/a/call_b", None),
    ("GET", "/status", None),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path", "body"), FORWARDED_CALLS)
async def test_forwarding_headers_are_as_a_saw_the_caller(
    method: str,
    path: str,
    body: object,
    edge: httpx.AsyncClient,
    recording_b: RecordingB,
) -> None:
    """B gets the caller's address, scheme and host from A; what the caller claimed is dropped."""
    content = None if body is None else json.dumps(body).encode()
    headers = [*SPOOFED, (b"content-type", b"application/json")]
    response = await edge.request(method, path, content=content, headers=headers)
    assert response.status_code < 300, response.text
    [sent] = recording_b.requests
    forwarding = [
        (name, value)
        for name, value in sent.headers.raw
        if name.lower() in {b"forwarded", b"x-real-ip"} or name.lower().startswith(b"x-forwarded-")
    ]
    assert [
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-host", b"edge.example:8443"),
        (b"x-forwarded-proto", b"https"),
        (b"x-real-ip", b"203.0.113.7"),
        (b"forwarded", b'for=203.0.113.7;host="edge.example:8443";proto=https'),
    ] == forwarding


def _scope(client: tuple[str, int] | None, host: bytes | None) -> dict[str, object]:
    headers = [] if host is None else [(b"host", host)]
    return {"type": "http", "scheme": "http", "client": client, "headers": headers}


@pytest.mark.parametrize(
    ("client", "host", "expected"),
    [
        (
            ("2001:db8::1", 5000),
            b"[2001:db8::2]:8001",
            [
                (b"x-forwarded-for", b"2001:db8::1"),
                (b"x-forwarded-host", b"[2001:db8::2]:8001"),
                (b"x-forwarded-proto", b"http"),
                (b"x-real-ip", b"2001:db8::1"),
                (b"forwarded", b'for="[2001:db8::1]";host="[2001:db8::2]:8001";proto=http'),
            ],
        ),
        (
            None,
            None,
            [(b"x-forwarded-proto", b"http"), (b"forwarded", b"for=unknown;proto=http")],
        ),
        (
            ("10.0.0.1", 1),
            b'evil"host',
            [
                (b"x-forwarded-for", b"10.0.0.1"),
                (b"x-forwarded-proto", b"http"),
                (b"x-real-ip", b"10.0.0.1"),
                (b"forwarded", b"for=10.0.0.1;proto=http"),
            ],
        ),
    ],
    ids=["ipv6", "no client nor host", "host not a host"],
)
def test_forwarded_headers_name_what_a_knows(
    client: tuple[str, int] | None, host: bytes | None, expected: list[tuple[bytes, bytes]]
) -> None:
    """An IPv6 address is bracketed, an unknown client is `unknown`, a bad host left out."""
    assert expected == forwarded_headers(_scope(client, host))


@pytest.mark.anyio
async def test_openapi_keeps_ids_integers(edge: httpx.AsyncClient) -> None:
    """A documents the id as an integer in 1..2**63-1, its spelling said in words, and the 400."""
    paths = (await edge.get("/openapi.json")).json()["paths"]
    for method in ("get", "put", "delete"):
        operation = paths["/items/{item_id}"][method]
        [parameter] = operation["parameters"]
        schema = parameter["schema"]
        assert ("integer", 1, 2**63 - 1) == (schema["type"], schema["minimum"], schema["maximum"])
        assert "decimal digits" in parameter["description"]
    for operation in (paths["/items"]["post"], paths["/items/{item_id}"]["put"]):
        assert "not UTF-8" in operation["responses"]["400"]["description"]


@pytest.mark.anyio
async def test_relayed_handshake_carries_a_forwarding_headers(a_app: FastAPI) -> None:
    """A relayed WebSocket handshake tells B the caller's address, scheme and host, as A saw."""
    handshakes: list[list[tuple[bytes, bytes]]] = []
    b_double = FastAPI()

    @b_double.websocket("/ws/echo")
    async def echo(websocket: WebSocket) -> None:
        handshakes.append(websocket.scope["headers"])
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    b = httpx.AsyncClient(transport=InProcessWebSocketTransport(b_double), base_url=B_URL)
    async with (
        b,
        a_in_front_of_b(a_app, b, base_url=EDGE, client=CALLER) as client,
        connect_ws("/ws/echo", client, headers=dict(SPOOFED[::2])) as ws,
    ):
        assert "hello" == await ws.receive_text(5)
    [headers] = handshakes
    forwarding = [
        (name, value)
        for name, value in headers
        if name in {b"forwarded", b"x-real-ip"} or name.startswith(b"x-forwarded-")
    ]
    assert [
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-host", b"edge.example:8443"),
        (b"x-forwarded-proto", b"https"),
        (b"x-real-ip", b"203.0.113.7"),
        (b"forwarded", b'for=203.0.113.7;host="edge.example:8443";proto=https'),
    ] == forwarding
