"""B as a Pact provider: served for the verifier, and acting out A's WebSocket messages.

Shared by the in-process verification (`test_provider.py`) and the live one
(`pipeline.py`): the message producers drive B's real WebSocket endpoints through whatever
httpx client they are given, in-process or over the network, and return what B sent.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect
from pact import Verifier
from starlette.types import ASGIApp

from service_b.login_message import login_message
from service_b.settings import DEMO_API_KEY, DEMO_API_SECRET
from tests.contracts.failures import describe, is_a_failure
from tests.live import serve_in_thread
from tests.ws import InProcessWebSocketTransport, connect_ws

Scenario = Callable[[httpx.AsyncClient, Mapping[str, Any]], Awaitable["Sent"]]
ClientFactory = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]

SUBSCRIBE = json.dumps({"op": "subscribe", "args": [{"channel": "items"}]})
TEXT, JSON = "text/plain", "application/json"
TIMEOUT = 5.0
# Updates received to tell B's interval from its gaps: two gaps, so one late tick is not all.
STREAM_UPDATES = 3
ASYNCAPI = Path(__file__).parents[2] / "contracts" / "service_b.asyncapi.json"


@dataclass
class Sent:
    """What B sent in a scenario: the message on its channel, and the close that followed."""

    channel: str
    text: str
    close_code: int | None = None


async def _close_code(ws: AsyncWebSocketSession) -> int:
    """Wait for B to close the session; give its code (a message instead is a failure)."""
    try:
        text = await ws.receive_text(TIMEOUT)
    except WebSocketDisconnect as closed:
        return closed.code
    raise NotHonoured(f"B sent {text!r} where it should close the session")


def login_text(secret: str = DEMO_API_SECRET) -> str:
    """Give a login message for B's demo key, signed now with `secret`.

    To the microsecond: B accepts a signature once, and states may log in twice a second.
    """
    return login_message(DEMO_API_KEY, secret, "pact", f"{time.time():.6f}")


async def _echo(client: httpx.AsyncClient, params: Mapping[str, Any]) -> Sent:
    async with connect_ws("/ws/echo", client) as ws:
        await ws.send_text(params["text"])
        return Sent("/ws/echo", await ws.receive_text(TIMEOUT))


async def _json(client: httpx.AsyncClient, params: Mapping[str, Any]) -> Sent:
    async with connect_ws("/ws/json", client) as ws:
        await ws.send_text(params["text"])
        return Sent("/ws/json", await ws.receive_text(TIMEOUT))


async def _broadcast(client: httpx.AsyncClient, params: Mapping[str, Any]) -> Sent:
    async with (
        connect_ws("/ws/broadcast", client) as listener,
        connect_ws("/ws/broadcast", client) as sender,
    ):
        await sender.send_text(params["text"])
        return Sent("/ws/broadcast", await listener.receive_text(TIMEOUT))


class NotHonoured(AssertionError):
    """B sent a valid-looking message, but not the one the state's parameters ask for."""


def stream_default_interval(asyncapi: Path = ASYNCAPI) -> float:
    """Give the interval B's AsyncAPI document gives `/ws/stream` when none is asked for."""
    document = json.loads(asyncapi.read_text())
    query = document["channels"]["stream"]["bindings"]["ws"]["query"]
    default: float = query["properties"]["interval"]["default"]
    return default


def check_interval(asked: float, updates: list[str], default: float) -> None:
    """Fail unless B's updates came `asked` seconds apart, not its default's, by B's own stamps.

    An update of B's default interval is as valid as one of the asked interval, so the
    message alone proves nothing: the gaps between B's timestamps tell which interval B
    used. Each gap must be nearer the asked interval than the default (under their
    midpoint), which leaves B room to run late without a false alarm.
    """
    stamps = [datetime.fromisoformat(json.loads(update)["timestamp"]) for update in updates]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(stamps)]
    limit = (asked + default) / 2
    if any(gap >= limit for gap in gaps):
        shown = ", ".join(f"{gap:.3f}" for gap in gaps)
        raise NotHonoured(
            f"/ws/stream?interval={asked}: B's updates came {shown} s apart by its own "
            f"timestamps, not {asked} s: B did not honour the interval (its default is {default} s)"
        )


async def _stream(client: httpx.AsyncClient, params: Mapping[str, Any]) -> Sent:
    asked = float(params["interval"])
    async with connect_ws(f"/ws/stream?interval={params['interval']}", client) as ws:
        updates = [await ws.receive_text(TIMEOUT) for _ in range(STREAM_UPDATES)]
    check_interval(asked, updates, stream_default_interval())
    return Sent("/ws/stream", updates[0])


async def _good_login(client: httpx.AsyncClient, _: Mapping[str, Any]) -> Sent:
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(login_text())
        return Sent("/ws/v5/private", await ws.receive_text(TIMEOUT))


async def _refused(client: httpx.AsyncClient, first: str) -> Sent:
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(first)
        answer = await ws.receive_text(TIMEOUT)
        return Sent("/ws/v5/private", answer, await _close_code(ws))


async def _bad_login(client: httpx.AsyncClient, _: Mapping[str, Any]) -> Sent:
    return await _refused(client, login_text("not-the-secret"))


async def _before_login(client: httpx.AsyncClient, _: Mapping[str, Any]) -> Sent:
    return await _refused(client, SUBSCRIBE)


async def _ping(client: httpx.AsyncClient, _: Mapping[str, Any]) -> Sent:
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text("ping")
        return Sent("/ws/v5/private", await ws.receive_text(TIMEOUT))


async def _subscribed(client: httpx.AsyncClient, _: Mapping[str, Any]) -> Sent:
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(login_text())
        await ws.receive_text(TIMEOUT)
        await ws.send_text(SUBSCRIBE)
        return Sent("/ws/v5/private", await ws.receive_text(TIMEOUT))


async def _change_pushed(
    client: httpx.AsyncClient, name: str, change: Literal["created", "updated", "deleted"]
) -> Sent:
    """Make the change to an item named `name` while subscribed; give its push.

    The item is created first (so that it exists, on a live B too), then updated to
    `name` or deleted; the pushes of the earlier changes are read and left out.
    """
    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(login_text())
        await ws.receive_text(TIMEOUT)
        await ws.send_text(SUBSCRIBE)
        await ws.receive_text(TIMEOUT)
        created = await client.post("/items", json={"name": name})
        created.raise_for_status()
        push = await ws.receive_text(TIMEOUT)
        location = created.headers["location"]
        if change == "updated":
            (await client.put(location, json={"name": name})).raise_for_status()
            push = await ws.receive_text(TIMEOUT)
        elif change == "deleted":
            (await client.delete(location)).raise_for_status()
            push = await ws.receive_text(TIMEOUT)
        return Sent("/ws/v5/private", push)


async def _pushed(client: httpx.AsyncClient, params: Mapping[str, Any]) -> Sent:
    return await _change_pushed(client, params["name"], "created")


async def _pushed_update(client: httpx.AsyncClient, params: Mapping[str, Any]) -> Sent:
    return await _change_pushed(client, params["name"], "updated")


async def _pushed_deletion(client: httpx.AsyncClient, params: Mapping[str, Any]) -> Sent:
    return await _change_pushed(client, params["name"], "deleted")


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
    "a subscribed client on /ws/v5/private saw an item updated": (_pushed_update, JSON),
    "a subscribed client on /ws/v5/private saw an item deleted": (_pushed_deletion, JSON),
    "a client sent a request before logging in on /ws/v5/private": (_before_login, JSON),
    "a client sent ping on /ws/v5/private": (_ping, TEXT),
}


def message_producer(
    clients: ClientFactory, problems: dict[str, str] | None = None
) -> Callable[[str, dict[str, Any] | None], Any]:
    """Give a Pact message handler that acts out each message's state against B.

    `clients` opens the httpx client the scenario talks to B through. The handler runs on
    pact's own server thread, so each message gets an event loop of its own. Why a scenario
    failed goes into `problems` by message: Pact itself reports only that no message came.
    """
    found = {} if problems is None else problems

    async def act(state: str, params: Mapping[str, Any]) -> Sent:
        scenario, _ = SCENARIOS[state]
        async with clients() as client:
            return await scenario(client, params)

    def produce(name: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
        states = (metadata or {}).get("providerStates") or [{}]
        state, params = states[0].get("name", ""), states[0].get("params") or {}
        if state not in SCENARIOS:
            raise LookupError(f"no scenario for the state of message {name!r}: {state!r}")
        try:
            sent = anyio.run(act, state, params)
        except BaseException as exc:
            if is_a_failure(exc):
                found[name] = describe(exc)
            raise
        metadata = {"channel": sent.channel}
        if sent.close_code is not None:
            metadata["closeCode"] = str(sent.close_code)
        return {
            "contents": sent.text.encode(),
            "content_type": SCENARIOS[state][1],
            "metadata": metadata,
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
    """Serve `app` with uvicorn in a thread (`tests.live.serve_in_thread`); give its URL."""
    with serve_in_thread(uvicorn.Config(app, log_level="warning", lifespan="on")) as port:
        yield f"http://127.0.0.1:{port}"


@dataclass
class Verification:
    """The outcome of verifying a pact against B."""

    passed: bool
    interactions: int
    failed: set[str] = field(default_factory=set)
    report: str = ""


def verify_pact(
    pact_file: Path, base_url: str, clients: ClientFactory, only: Iterable[str] = ()
) -> Verification:
    """Verify every interaction of `pact_file` (or `only` those named) against B.

    HTTP interactions go to `base_url`, whose provider-state endpoint sets up their states;
    messages are acted out through the clients `clients` opens.
    """
    problems: dict[str, str] = {}
    verifier = (
        Verifier("service-b", host="127.0.0.1")
        .add_transport(url=base_url)
        .add_source(pact_file)
        .state_handler(f"{base_url}/_pact/provider_states", teardown=True, body=True)
        .message_handler(message_producer(clients, problems))
        .set_coloured_output(enabled=False)
    )
    named = sorted(only)
    if named:
        verifier.filter("^(" + "|".join(re.escape(name) for name in named) + ")$")
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
        report = verifier.output(strip_ansi=True)
        if problems:
            report += "\nWhy B sent no message:\n" + "".join(
                f"  {name}: {why}\n" for name, why in sorted(problems.items())
            )
        return Verification(False, interactions, failed, report)
    _close_relays(verifier)
    return Verification(True, interactions)


def _close_relays(verifier: Verifier) -> None:
    # pact-python 4.2 shuts its relay servers down without closing their sockets, which
    # Python reports as a ResourceWarning (an error here) when they are collected.
    for relay in ("_message_producer", "_state_handler"):
        server = getattr(getattr(verifier, relay, None), "_server", None)
        if server is not None:
            server.server_close()
