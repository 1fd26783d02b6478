"""Deliberately altered Bs: each wraps B's app and changes one thing A may depend on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_b import Settings as BSettings
from service_b import create_app as create_b
from tests.conftest import B_URL, use_service_b
from tests.ws import InProcessWebSocketTransport

Alteration = Callable[[ASGIApp], ASGIApp]


@asynccontextmanager
async def a_in_front_of(alteration: Alteration, a_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run `a_app` in front of an altered B, both in-process; give a client on A."""
    async with (
        LifespanManager(create_b(BSettings(database_path=":memory:"))) as b,
        httpx.AsyncClient(
            transport=InProcessWebSocketTransport(alteration(b.app)), base_url=B_URL
        ) as b_client,
    ):
        use_service_b(a_app, b_client)
        async with (
            LifespanManager(a_app) as a,
            httpx.AsyncClient(
                transport=InProcessWebSocketTransport(a.app), base_url="http://service-a"
            ) as client,
        ):
            yield client


def _rewrite_http(rewrite: Callable[[str, int, bytes], tuple[int, bytes]]) -> Alteration:
    """Alter HTTP answers: `rewrite(path, status, body)` gives the status and body sent."""

    def alter(app: ASGIApp) -> ASGIApp:
        async def altered(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start: Message = {}
            body = bytearray()

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    start.update(message)
                    return
                body.extend(message.get("body", b""))
                if message.get("more_body"):
                    return
                status, new_body = rewrite(scope["path"], start["status"], bytes(body))
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(new_body)).encode()))
                await send({**start, "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": new_body})

            await app(scope, receive, capture)

        return altered

    return alter


def _rewrite_ws(path: str, rewrite: Callable[[str], str]) -> Alteration:
    """Alter the text messages B sends on the WebSocket at `path`."""

    def alter(app: ASGIApp) -> ASGIApp:
        async def altered(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "websocket" or scope["path"] != path:
                await app(scope, receive, send)
                return

            async def rewritten(message: Message) -> None:
                if message["type"] == "websocket.send" and message.get("text") is not None:
                    message = {**message, "text": rewrite(message["text"])}
                await send(message)

            await app(scope, receive, rewritten)

        return altered

    return alter


def _rewrite_close(path: str, codes: dict[int, int]) -> Alteration:
    """Alter the close codes B sends on the WebSocket at `path` (old code to new)."""

    def alter(app: ASGIApp) -> ASGIApp:
        async def altered(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "websocket" or scope["path"] != path:
                await app(scope, receive, send)
                return

            async def recoded(message: Message) -> None:
                if message["type"] == "websocket.close" and message.get("code") in codes:
                    message = {**message, "code": codes[message["code"]]}
                await send(message)

            await app(scope, receive, recoded)

        return altered

    return alter


def _rewrite_query(path: str, rewrite: Callable[[str], str]) -> Alteration:
    """Alter the query string of WebSocket handshakes at `path` before B reads it."""

    def alter(app: ASGIApp) -> ASGIApp:
        async def altered(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "websocket" and scope["path"] == path:
                query = rewrite(scope["query_string"].decode()).encode()
                scope = {**scope, "query_string": query}
            await app(scope, receive, send)

        return altered

    return alter


def _slowest(query: str, floor: float = 1.0) -> str:
    pairs = [pair.partition("=") for pair in query.split("&") if pair]
    return "&".join(
        f"{key}={max(float(value), floor)}" if key == "interval" else f"{key}{eq}{value}"
        for key, eq, value in pairs
    )


def _map_json(value: Any, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    if isinstance(value, dict):
        return change({key: _map_json(item, change) for key, item in value.items()})
    if isinstance(value, list):
        return [_map_json(item, change) for item in value]
    return value


def _json_objects(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[bytes], bytes]:
    def rewrite(body: bytes) -> bytes:
        try:
            value = json.loads(body)
        except ValueError:
            return body
        return json.dumps(_map_json(value, change)).encode()

    return rewrite


def _rename_name(item: dict[str, Any]) -> dict[str, Any]:
    return {("title" if key == "name" else key): value for key, value in item.items()}


def _add_colour(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "colour": "red"} if "item_id" in item else item


def _id_as_string(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "item_id": str(item["item_id"])} if "item_id" in item else item


def _flag_as_number(item: dict[str, Any]) -> dict[str, Any]:
    if isinstance(item.get("is_offer"), bool):
        return {**item, "is_offer": int(item["is_offer"])}
    return item


def _items_rewritten(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Alteration:
    """Alter every JSON object in B's answers under `/items`."""
    rewrite = _json_objects(change)
    return _rewrite_http(
        lambda path, status, body: (status, rewrite(body) if path.startswith("/items") else body)
    )


#: B's items with their id as a string of digits: what a lenient check would convert.
ids_as_strings = _items_rewritten(_id_as_string)
#: B's items with their offer flag as 0 or 1.
flags_as_numbers = _items_rewritten(_flag_as_number)


def _without_b(app: ASGIApp) -> ASGIApp:
    async def altered(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/b/":
            body = b'{"detail":"Not Found"}'
            headers = [(b"content-type", b"application/json"), (b"content-length", b"22")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return altered


def _with_new_endpoint(app: ASGIApp) -> ASGIApp:
    async def altered(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/new":
            headers = [(b"content-type", b"application/json"), (b"content-length", b"13")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"new": true}'})
            return
        await app(scope, receive, send)

    return altered


def _new_login_reply(text: str) -> str:
    if json.loads(text) == {"event": "login", "success": True}:
        return json.dumps({"op": "login", "code": "0", "msg": ""})
    return text


def _both(*alterations: Alteration) -> Alteration:
    def alter(app: ASGIApp) -> ASGIApp:
        for alteration in alterations:
            app = alteration(app)
        return app

    return alter


_renamed = _json_objects(_rename_name)
_coloured = _json_objects(_add_colour)

#: Changes that break A, and the interactions of A's pact each must fail.
BREAKING: dict[str, tuple[Alteration, set[str]]] = {
    "item renames name": (
        _rewrite_http(
            lambda path, status, body: (
                status,
                _renamed(body) if path.startswith("/items") else body,
            )
        ),
        {
            "a request for item 1",
            "a request for a page of items",
            "a request to create an item",
            "a request to rename item 1",
        },
    ),
    "400 instead of 404": (
        _rewrite_http(lambda _, status, body: (400 if status == 404 else status, body)),
        {
            "a request for an item that does not exist",
            "a request to rename an item that does not exist",
            "a request to delete an item that does not exist",
        },
    ),
    "item id as a string": (
        ids_as_strings,
        {
            "a request for item 1",
            "a request for a page of items",
            "a request to create an item",
            "a request to rename item 1",
        },
    ),
    "offer flag as a number": (flags_as_numbers, {"a request to create an item"}),
    # B stops honouring a parameter, while its default still gives valid-looking messages.
    "stream interval renamed": (
        _rewrite_query("/ws/stream", lambda query: query.replace("interval=", "period=")),
        {"a periodic update"},
    ),
    "stream never faster than 1 s": (
        _rewrite_query("/ws/stream", _slowest),
        {"a periodic update"},
    ),
    # A close code, or a message variant no other interaction exemplifies.
    "failed-login close code changes": (
        _rewrite_close("/ws/v5/private", {1008: 4003}),
        {"a failed login", "a request before login"},
    ),
    "deleted push renamed": (
        _rewrite_ws("/ws/v5/private", lambda text: text.replace('"deleted"', '"removed"')),
        {"an item deletion pushed after subscribe"},
    ),
    "pong renamed": (
        _rewrite_ws("/ws/v5/private", lambda text: "PONG" if text == "pong" else text),
        {"a pong to a ping"},
    ),
    "no /b/": (_without_b, {"a request for B's own answer"}),
    "another echo prefix": (
        _rewrite_ws("/ws/echo", lambda text: text.replace("Echo: ", "You said: ", 1)),
        {"an echo of a text"},
    ),
    "login reply changes shape": (
        _rewrite_ws("/ws/v5/private", _new_login_reply),
        {"a successful login"},
    ),
}

#: Changes that break nobody: every interaction must still pass.
COMPATIBLE: dict[str, Alteration] = {
    "a new optional field": _both(
        _rewrite_http(lambda _, status, body: (status, _coloured(body))),
        _rewrite_ws("/ws/v5/private", lambda text: _coloured(text.encode()).decode()),
    ),
    "a new endpoint": _with_new_endpoint,
}
