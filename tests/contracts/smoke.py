"""A smoke test of A in front of B: HTTP through A, and every WebSocket relay.

Each check is named for what it exercises and runs on its own, so one that fails (whatever
it raises) is reported by name and the others still run. Texts whose wording A does not
care about (its pact matches them by type) are checked by type here too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect

from tests.contracts.failures import describe, is_a_failure
from tests.contracts.providers import (
    STREAM_UPDATES,
    SUBSCRIBE,
    check_interval,
    login_text,
    stream_default_interval,
)
from tests.ws import connect_ws

CHECK_SECONDS = 15.0
RECEIVE_SECONDS = 5.0


class Mismatch(AssertionError):
    """An answer is not the one expected; the message says what came instead."""


def expect(what: str, expected: object, got: object) -> None:
    """Fail with a `Mismatch` naming `what` unless `got` is `expected`."""
    if expected != got:
        raise Mismatch(f"{what}: expected {expected!r}, got {got!r}")


def expect_type(what: str, kind: type, got: object) -> None:
    """Fail with a `Mismatch` naming `what` unless `got` is a `kind`."""
    if not isinstance(got, kind):
        raise Mismatch(f"{what}: expected a {kind.__name__}, got {got!r}")


def _json(what: str, text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise Mismatch(f"{what}: expected JSON, got {text!r}") from None


async def _close_of(ws: AsyncWebSocketSession) -> tuple[int, str]:
    try:
        text = await ws.receive_text(RECEIVE_SECONDS)
    except WebSocketDisconnect as closed:
        return closed.code, closed.reason or ""
    raise Mismatch(f"expected a close, got the message {text!r}")


async def _status(client: httpx.AsyncClient) -> None:
    response = await client.get("/status")
    expect("GET /status: status", 200, response.status_code)
    expect(
        "GET /status: service_b.status",
        "ok",
        _json("GET /status", response.text).get("service_b", {}).get("status"),
    )


async def _call_b(client: httpx.AsyncClient) -> None:
    response = await client.get("/a/call_b")
    expect(
        "GET /a/call_b",
        (200, {"b": "b"}),
        (response.status_code, _json("GET /a/call_b", response.text)),
    )


async def _items(client: httpx.AsyncClient) -> None:
    created = await client.post("/items", json={"name": "smoke"})
    expect("POST /items: status", 201, created.status_code)
    location = created.headers.get("location")
    if location is None:
        raise Mismatch("POST /items: expected a Location header, got none")
    read = await client.get(location)
    expect(f"GET {location}: name", "smoke", _json(f"GET {location}", read.text).get("name"))
    expect(
        f"PUT {location}: status",
        200,
        (await client.put(location, json={"name": "smoked"})).status_code,
    )
    expect(f"DELETE {location}: status", 204, (await client.delete(location)).status_code)
    expect(f"GET {location} after DELETE: status", 404, (await client.get(location)).status_code)


async def _echo(client: httpx.AsyncClient) -> None:
    async with connect_ws("/ws/echo", client) as ws:
        await ws.send_text("smoke")
        expect("/ws/echo: the echo", "Echo: smoke", await ws.receive_text(RECEIVE_SECONDS))
        await ws.send_bytes(b"x")
        expect("/ws/echo: the close after a binary frame", 1003, (await _close_of(ws))[0])


async def _json_channel(client: httpx.AsyncClient) -> None:
    async with connect_ws("/ws/json", client) as ws:
        await ws.send_text('{"smoke": 1}')
        answer = _json("/ws/json: the answer", await ws.receive_text(RECEIVE_SECONDS))
        expect("/ws/json: the answer's data", {"smoke": 1}, answer.get("data"))
        expect_type("/ws/json: the answer's message", str, answer.get("message"))


async def _stream(client: httpx.AsyncClient) -> None:
    async with connect_ws("/ws/stream?interval=0.05", client) as ws:
        updates = [await ws.receive_text(RECEIVE_SECONDS) for _ in range(STREAM_UPDATES)]
    for text in updates:
        update = _json("/ws/stream: an update", text)
        expect_type("/ws/stream: an update's timestamp", str, update.get("timestamp"))
        expect_type("/ws/stream: an update's message", str, update.get("message"))
    check_interval(0.05, updates, stream_default_interval())


async def _stream_refused(client: httpx.AsyncClient) -> None:
    async with connect_ws("/ws/stream?interval=0", client) as ws:
        code, reason = await _close_of(ws)
    expect("/ws/stream?interval=0: the close code", 1008, code)
    expect("/ws/stream?interval=0: the close reason names the interval", True, "interval" in reason)


async def _broadcast(client: httpx.AsyncClient) -> None:
    async with (
        connect_ws("/ws/broadcast", client) as listener,
        connect_ws("/ws/broadcast", client) as sender,
    ):
        await sender.send_text("smoke")
        expect(
            "/ws/broadcast: the listener's message",
            "New message: smoke",
            await listener.receive_text(RECEIVE_SECONDS),
        )


async def _private(client: httpx.AsyncClient) -> None:
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(login_text())
        login = _json("/ws/v5/private: the login answer", await ws.receive_text(RECEIVE_SECONDS))
        expect("/ws/v5/private: the login answer", {"event": "login", "success": True}, login)
        await ws.send_text(SUBSCRIBE)
        subscribed = _json(
            "/ws/v5/private: the subscribe answer", await ws.receive_text(RECEIVE_SECONDS)
        )
        expect(
            "/ws/v5/private: the subscribe answer",
            {"event": "subscribe", "arg": {"channel": "items"}},
            subscribed,
        )
        created = await client.post("/items", json={"name": "pushed"})
        expect("POST /items: status", 201, created.status_code)
        item = _json("POST /items", created.text).get("item_data")
        push = _json("/ws/v5/private: the push", await ws.receive_text(RECEIVE_SECONDS))
        expected = {"arg": {"channel": "items"}, "action": "created", "data": [item]}
        expect("/ws/v5/private: the push of the created item", expected, push)


async def _refused_login(client: httpx.AsyncClient) -> None:
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(login_text("not-the-secret"))
        answer = _json(
            "/ws/v5/private: the failed login's answer", await ws.receive_text(RECEIVE_SECONDS)
        )
        expect("/ws/v5/private: the failed login's answer", False, answer.get("success"))
        code, _ = await _close_of(ws)
    expect("/ws/v5/private: the close after a failed login", 1008, code)


#: Each check of the smoke test, by name.
CHECKS: dict[str, Callable[[httpx.AsyncClient], Awaitable[None]]] = {
    "GET /status (A reports B ok)": _status,
    "GET /a/call_b": _call_b,
    "items: create, read, update, delete": _items,
    "relay /ws/echo": _echo,
    "relay /ws/json": _json_channel,
    "relay /ws/stream": _stream,
    "relay /ws/stream refusing interval=0": _stream_refused,
    "relay /ws/broadcast": _broadcast,
    "relay /ws/v5/private: login, subscribe, push": _private,
    "relay /ws/v5/private refusing a bad login": _refused_login,
}


@dataclass
class SmokeResult:
    """One smoke check's outcome: `problem` is None when it passed."""

    check: str
    problem: str | None


async def smoke(client: httpx.AsyncClient) -> list[SmokeResult]:
    """Run every check through `client` (on A); give each one's outcome. Never raises a failure."""
    results = []
    for name, check in CHECKS.items():
        problem = None
        try:
            with anyio.fail_after(CHECK_SECONDS):
                await check(client)
        except BaseException as exc:
            if not is_a_failure(exc):
                raise
            problem = describe(exc)
        results.append(SmokeResult(name, problem))
    return results
