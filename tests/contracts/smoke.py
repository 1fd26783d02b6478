"""A live smoke test of A in front of B: HTTP through A, and every WebSocket relay."""

from __future__ import annotations

import json

import httpx

from tests.contracts.providers import SUBSCRIBE
from tests.service_b.ws_scripts import (
    LOGGED_IN,
    SUBSCRIBED,
    Closed,
    Receive,
    ReceiveJson,
    ReceiveStreamUpdate,
    Script,
    Send,
    SendBytes,
    SendLogin,
    run_with_httpx_ws,
)
from tests.ws import connect_ws

RELAYS = [
    Script(
        "echo", "/ws/echo", [Send("smoke"), Receive("Echo: smoke"), SendBytes(b"x"), Closed(1003)]
    ),
    Script(
        "json",
        "/ws/json",
        [
            Send('{"smoke": 1}'),
            ReceiveJson({"message": "Received JSON data", "data": {"smoke": 1}}),
        ],
    ),
    Script("stream", "/ws/stream?interval=0.05", [ReceiveStreamUpdate(), ReceiveStreamUpdate()]),
    Script("stream refused", "/ws/stream?interval=0", [Closed(1008, "interval")]),
    Script(
        "private",
        "/ws/v5/private",
        [SendLogin(), ReceiveJson(LOGGED_IN), Send(SUBSCRIBE), ReceiveJson(SUBSCRIBED)],
    ),
]


async def smoke(a_url: str) -> int:
    """Exercise A at `a_url`; give the number of checks made (an assertion fails the rest)."""
    checks = 0
    async with httpx.AsyncClient(base_url=a_url, timeout=10) as client:
        status = (await client.get("/status")).json()
        assert "ok" == status["service_b"]["status"], status
        assert {"b": "b"} == (await client.get("/a/call_b")).json()
        created = await client.post("/items", json={"name": "smoke"})
        assert 201 == created.status_code, created.text
        location = created.headers["location"]
        assert "smoke" == (await client.get(location)).json()["name"]
        assert 200 == (await client.put(location, json={"name": "smoked"})).status_code
        assert 204 == (await client.delete(location)).status_code
        assert 404 == (await client.get(location)).status_code
        checks += 7
        for script in RELAYS:
            await run_with_httpx_ws(script, client)
            checks += 1
        async with (
            connect_ws("/ws/broadcast", client) as listener,
            connect_ws("/ws/broadcast", client) as sender,
        ):
            await sender.send_text("smoke")
            assert "New message: smoke" == await listener.receive_text(5)
        checks += 1
        async with connect_ws("/ws/v5/private", client) as ws:
            await ws.send_text(SendLogin().text())
            await ws.receive_text(5)
            await ws.send_text(SUBSCRIBE)
            await ws.receive_text(5)
            item = (await client.post("/items", json={"name": "pushed"})).json()["item_data"]
            push = json.loads(await ws.receive_text(5))
            assert {"arg": {"channel": "items"}, "action": "created", "data": [item]} == push
        checks += 1
    return checks
