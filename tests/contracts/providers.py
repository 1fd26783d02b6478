"""B as a Pact provider: served for the verifier, and acting out A's WebSocket messages.

Shared by the in-process verification (`test_provider.py`) and the live one
(`pipeline.py`): the message producers drive B's real WebSocket endpoints through whatever
httpx client they are given, in-process or over the network, and return what B sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from pact import Verifier
from starlette.types import ASGIApp

from service_b.login_message import login_message
from service_b.settings import DEMO_API_KEY, DEMO_API_SECRET
from tests.ws import InProcessWebSocketTransport, connect_ws

Scenario = Callable[[httpx.AsyncClient, Mapping[str, Any]], Awaitable[tuple[str, str]]]
ClientFactory = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]

SUBSCRIBE = json.dumps({"op": "subscribe", "args": [{"channel": "items"}]})
TEXT, JSON = "text/plain", "application/json"
TIMEOUT = 5.0


def login_text(secret: str = DEMO_API_SECRET) -> str:
    """Give a login message for B's demo key, signed now with `secret`."""
    return login_message(DEMO_API_KEY, secret, "pact", str(int(time.time())))


async def _echo(client: httpx.AsyncClient, params: Mapping[str, Any]) -> tuple[str, str]:
    async with connect_ws("/ws/echo", client) as ws:
        await ws.send_text(params["text"])
        return "/ws/echo", await ws.receive_text(TIMEOUT)


async def _json(client: httpx.AsyncClient, params: Mapping[str, Any]) -> tuple[str, str]:
    async with connect_ws("/ws/json", client) as ws:
        await ws.send_text(params["text"])
        return "/ws/json", await ws.receive_text(TIMEOUT)


async def _broadcast(client: httpx.AsyncClient, params: Mapping[str, Any]) -> tuple[str, str]:
    async with (
        connect_ws("/ws/broadcast", client) as listener,
        connect_ws("/ws/broadcast", client) as sender,
    ):
        await sender.send_text(params["text"])
        return "/ws/broadcast", await listener.receive_text(TIMEOUT)


async def _stream(client: httpx.AsyncClient, params: Mapping[str, Any]) -> tuple[str, str]:
    async with connect_ws(f"/ws/stream?interval={params['interval']}", client) as ws:
        return "/ws/stream", await ws.receive_text(TIMEOUT)


async def _login_with(client: httpx.AsyncClient, secret: str) -> str:
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(login_text(secret))
        return await ws.receive_text(TIMEOUT)


async def _good_login(client: httpx.AsyncClient, _: Mapping[str, Any]) -> tuple[str, str]:
    return "/ws/v5/private", await _login_with(client, DEMO_API_SECRET)


async def _bad_login(client: httpx.AsyncClient, _: Mapping[str, Any]) -> tuple[str, str]:
    return "/ws/v5/private", await _login_with(client, "not-the-secret")


async def _subscribed(client: httpx.AsyncClient, _: Mapping[str, Any]) -> tuple[str, str]:
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(login_text())
        await ws.receive_text(TIMEOUT)
        await ws.send_text(SUBSCRIBE)
        return "/ws/v5/private", await ws.receive_text(TIMEOUT)


async def _pushed(client: httpx.AsyncClient, params: Mapping[str, Any]) -> tuple[str, str]:
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(login_text())
        await ws.receive_text(TIMEOUT)
        await ws.send_text(SUBSCRIBE)
        await ws.receive_text(TIMEOUT)
        (await client.post("/items", json={"name": params["name"]})).raise_for_status()
        return "/ws/v5/private", await ws.receive_text(TIMEOUT)


#: Each message state of A's pact: how to make B send the message, and its content type.
SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "a client sent a text on /ws/echo": (_echo, TEXT),
    "a client sent JSON on /ws/json": (_json, JSON),
    "another client sent a text on /ws/broadcast": (_broadcast, TEXT),
    "a client opened /ws/stream": (_stream, JSON),
    "a client logged in on /ws/v5/private with valid credentials": (_good_login, JSON),
    "a client logged in on /ws/v5/private with a wrong signature": (_bad_login, JSON),
    "a logged-in client subscribed to items on /ws/v5/private": (_subscribed, JSON),
    "a subscribed client on /ws/v5/private saw an item created": (_pushed, JSON),
}


def message_producer(clients: ClientFactory) -> Callable[[str, dict[str, Any] | None], Any]:
    """Give a Pact message handler that acts out each message's state against B.

    `clients` opens the httpx client the scenario talks to B through. The handler runs on
    pact's own server thread, so each message gets an event loop of its own.
    """

    async def act(state: str, params: Mapping[str, Any]) -> tuple[str, str]:
        scenario, _ = SCENARIOS[state]
        async with clients() as client:
            return await scenario(client, params)

    def produce(name: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
        states = (metadata or {}).get("providerStates") or [{}]
        state, params = states[0].get("name", ""), states[0].get("params") or {}
        if state not in SCENARIOS:
            raise LookupError(f"no scenario for the state of message {name!r}: {state!r}")
        channel, text = anyio.run(act, state, params)
        return {
            "contents": text.encode(),
            "content_type": SCENARIOS[state][1],
            "metadata": {"channel": channel},
        }

    return produce


def in_process(app_factory: Callable[[], ASGIApp]) -> ClientFactory:
    """Give a client factory that runs a fresh B in-process for each message."""

    @asynccontextmanager
    async def clients() -> AsyncIterator[httpx.AsyncClient]:
        async with (
            LifespanManager(app_factory()) as manager,
            httpx.AsyncClient(
                transport=InProcessWebSocketTransport(manager.app), base_url="http://service-b"
            ) as client,
        ):
            yield client

    return clients


def over_the_network(base_url: str) -> ClientFactory:
    """Give a client factory for a B that is already running at `base_url`."""

    @asynccontextmanager
    async def clients() -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
            yield client

    return clients


@contextmanager
def served(app: ASGIApp) -> Iterator[str]:
    """Serve `app` with uvicorn on a free port in a thread; give its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@dataclass
class Verification:
    """The outcome of verifying a pact against B."""

    passed: bool
    interactions: int
    failed: set[str] = field(default_factory=set)
    report: str = ""


def verify_pact(pact_file: Path, base_url: str, clients: ClientFactory) -> Verification:
    """Verify every interaction of `pact_file` against B.

    HTTP interactions go to `base_url`, whose provider-state endpoint sets up their states;
    messages are acted out through the clients `clients` opens.
    """
    verifier = (
        Verifier("service-b", host="127.0.0.1")
        .add_transport(url=base_url)
        .add_source(pact_file)
        .state_handler(f"{base_url}/_pact/provider_states", teardown=True, body=True)
        .message_handler(message_producer(clients))
        .set_coloured_output(enabled=False)
    )
    interactions = len(json.loads(pact_file.read_text())["interactions"])
    try:
        verifier.verify()
    except RuntimeError:
        _close_relays(verifier)
        results = verifier.results
        failed = {
            result["description"]
            for result in results["interactionResults"]
            if result["result"] != "OK" and not result["pending"]
        }
        return Verification(False, interactions, failed, verifier.output(strip_ansi=True))
    _close_relays(verifier)
    return Verification(True, interactions)


def _close_relays(verifier: Verifier) -> None:
    # pact-python 4.2 shuts its relay servers down without closing their sockets, which
    # Python reports as a ResourceWarning (an error here) when they are collected.
    for relay in ("_message_producer", "_state_handler"):
        server = getattr(getattr(verifier, relay, None), "_server", None)
        if server is not None:
            server.server_close()
