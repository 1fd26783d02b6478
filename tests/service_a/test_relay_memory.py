"""A relayed session leaves nothing behind in A once it closed: its objects can be freed.

What a session costs in RSS, and what A's RSS does after 1,000 close, is measured by the
stress probe (`nox -s stress -- -k relay_sessions`), not here: this only checks that no
reference outlives the session, so the memory it held can be used again.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import anyio
import httpx
import pytest
from httpx_ws import AsyncWebSocketSession

import service_a.relay
from tests.ws import connect_ws


@pytest.fixture
def relayed(monkeypatch: pytest.MonkeyPatch) -> tuple[list[weakref.ref[Any]], list[anyio.Event]]:
    """Record weak references to each relay's objects, and an event set as each one returns."""
    refs: list[weakref.ref[Any]] = []
    done: list[anyio.Event] = []
    relay_init = service_a.relay.Relay.__init__
    relay_websocket = service_a.relay.relay_websocket

    def init(self: service_a.relay.Relay, client: Any, upstream: Any, settings: Any) -> None:
        relay_init(self, client, upstream, settings)
        assert isinstance(upstream, AsyncWebSocketSession)
        refs.extend(weakref.ref(thing) for thing in (self, upstream, upstream.connection))
        if upstream.response is not None:
            refs.append(weakref.ref(upstream.response))

    async def relay_and_tell(*args: Any) -> None:
        finished = anyio.Event()
        done.append(finished)
        try:
            await relay_websocket(*args)
        finally:
            finished.set()

    monkeypatch.setattr(service_a.relay.Relay, "__init__", init)
    monkeypatch.setattr(service_a.relay, "relay_websocket", relay_and_tell)
    return refs, done


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/ws/echo", "/ws/stream"])
async def test_closed_session_is_freed(
    path: str,
    a_client: httpx.AsyncClient,
    relayed: tuple[list[weakref.ref[Any]], list[anyio.Event]],
) -> None:
    """After the client closes, nothing refers to the relay, its session to B, nor B's answer."""
    refs, done = relayed
    async with connect_ws(path, a_client) as ws:
        if path == "/ws/echo":
            await ws.send_text("hello")
            assert await ws.receive_text() == "Echo: hello"
        else:
            assert await ws.receive_text()
    assert len(done) == 1
    with anyio.fail_after(10):
        await done[0].wait()
    assert len(refs) == 4
    gc.collect()
    alive = [type(thing).__name__ for ref in refs if (thing := ref()) is not None]
    assert alive == []
