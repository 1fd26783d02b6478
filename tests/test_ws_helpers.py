"""tests/ws.py: its in-process transport behaves like a server, on the httpx-ws it knows."""

from __future__ import annotations

from importlib.metadata import version

import anyio
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from tests.ws import InProcessWebSocketTransport, check_httpx_ws, connect_ws


def test_the_installed_httpx_ws_is_known() -> None:
    """The locked httpx-ws is one the in-process transport was written for."""
    check_httpx_ws(version("httpx-ws"))


@pytest.mark.parametrize("installed", ["0.8.2", "0.10.0", "1.0.0"])
def test_an_unknown_httpx_ws_fails_loudly(installed: str) -> None:
    """Another release stops the tests at import, naming the version found."""
    with pytest.raises(RuntimeError, match=f"httpx-ws {installed} is installed"):
        check_httpx_ws(installed)


def _app(accept_after: float) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert "websocket" == scope["type"]
        assert "websocket.connect" == (await receive())["type"]
        await anyio.sleep(accept_after)  # the app is slow to accept, as on a loaded machine
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hello"})
        await anyio.sleep_forever()  # and it never ends the session by itself

    return app


@pytest.mark.anyio
async def test_a_slow_accept_is_waited_for() -> None:
    """An app that takes longer than httpx-ws's 1 s to accept still gets its session."""
    transport = InProcessWebSocketTransport(app=_app(accept_after=1.2))
    transport.sessions_grace = 0.1  # the app never ends the session: end it at once after
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        connect_ws("/ws", client) as ws,
    ):
        assert "hello" == await ws.receive_text(5)


@pytest.mark.anyio
async def test_closing_the_client_ends_sessions_the_app_still_runs() -> None:
    """A session the app never ends is cancelled once the client closes: no hung teardown."""
    transport = InProcessWebSocketTransport(app=_app(accept_after=0))
    transport.sessions_grace = 0.1
    with anyio.fail_after(10):  # a bound for the hang, not a timing check: it ends at once
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
            connect_ws("/ws", client) as ws,
        ):
            assert "hello" == await ws.receive_text(5)
