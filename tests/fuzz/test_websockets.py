"""WebSocket fuzzing of B, in-process and through A: the property is the AsyncAPI document.

Sessions mix messages generated from the AsyncAPI schemas of what each channel receives
(hypothesis-jsonschema) with malformed input: text that is not JSON, JSON of any shape,
binary frames, oversized messages, logins with garbage fields, requests before login, and
clients that leave with answers pending. Every answer must be a message the channel sends,
or a close with a code the channel documents; never 1011, never silence longer than 2 s; and
after every session the service answers its next client normally.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
import wsproto.events
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from wsproto.utilities import LocalProtocolError

from service_b.login_message import login_message
from tests.fuzz.asyncapi_messages import Channel, channels
from tests.fuzz.conftest import SESSIONS
from tests.ws import connect_ws

MAX_MESSAGE = 1024 * 1024
ANSWER_WITHIN = 2.0
EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # seeded by the test's name: CI's failures replay locally
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Text:
    """Send a text frame."""

    text: str


@dataclass(frozen=True)
class Binary:
    """Send a binary frame."""

    data: bytes


@dataclass(frozen=True)
class Login:
    """Send a valid, freshly signed login."""


@dataclass(frozen=True)
class Leave:
    """Leave at once, whatever answers are still on their way."""


Action = Text | Binary | Login | Leave

any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _payloads(channel: Channel) -> st.SearchStrategy[Action]:
    """Messages the channel receives, generated from their AsyncAPI schemas."""
    strategies = []
    for message in channel.received:
        values = from_schema(message.schema)
        if message.content_type == "application/json":
            strategies.append(values.map(lambda value: Text(json.dumps(value))))
        else:
            strategies.append(values.map(lambda value: Text(str(value))))
    return st.one_of(strategies)


def actions(channel: Channel) -> st.SearchStrategy[list[Action]]:
    """Sessions of one to six actions on `channel`, valid and malformed."""
    malformed: list[st.SearchStrategy[Action]] = [
        st.text(max_size=40).map(Text),
        any_json.map(lambda value: Text(json.dumps(value))),
        st.binary(max_size=40).map(Binary),
        st.just(Text("x" * (MAX_MESSAGE + 1))),
        st.just(Leave()),
    ]
    if channel.address == "/ws/v5/private":
        malformed.append(st.just(Login()))
    return st.lists(st.one_of(_payloads(channel), *malformed), min_size=1, max_size=6)


async def _next(ws: AsyncWebSocketSession) -> str | int:
    """Give the next text B sends, or the code it closes with; fail after 2 s of silence."""
    try:
        event = await ws.receive(ANSWER_WITHIN)
    except WebSocketDisconnect as closed:
        return int(closed.code)
    except TimeoutError:
        pytest.fail(f"no answer within {ANSWER_WITHIN} s")
    assert isinstance(event, wsproto.events.TextMessage), f"B sent {event!r}"
    return event.data


def _check(channel: Channel, answer: str | int) -> bool:
    """Assert that the answer is documented for the channel; tell whether it closed."""
    if isinstance(answer, int):
        assert answer in channel.close_codes, f"closed with {answer} on {channel.address}"
        return True
    assert channel.is_sent(answer), f"{channel.address} sent an undocumented {answer[:200]!r}"
    return False


async def _send(ws: AsyncWebSocketSession, action: Text | Binary | Login) -> None:
    try:
        if isinstance(action, Text):
            await ws.send_text(action.text)
        elif isinstance(action, Binary):
            await ws.send_bytes(action.data)
        else:
            await ws.send_text(login_message("abc", "def", "fuzz", str(int(time.time()))))
    except LocalProtocolError:
        pass  # B closed after its last answer; reading next gives its close code.


async def _answering_session(
    client: httpx.AsyncClient, channel: Channel, session: list[Action]
) -> None:
    """Echo, JSON and private answer every message: each must get an answer or a close."""
    async with connect_ws(channel.address, client) as ws:
        for action in session:
            if isinstance(action, Leave):
                return
            await _send(ws, action)
            if _check(channel, await _next(ws)):
                return


async def _stream_session(
    client: httpx.AsyncClient, channel: Channel, interval: str, session: list[Action]
) -> None:
    """Expect an update at once (or a close for a bad interval), whatever the client sends."""
    async with connect_ws(f"{channel.address}?interval={quote(interval)}", client) as ws:
        if _check(channel, await _next(ws)):
            return
        for action in session:
            if isinstance(action, Leave):
                return
            await _send(ws, action)
            if isinstance(action, Text) and len(action.text) > MAX_MESSAGE:
                assert 1009 == await _next(ws)
                return


async def _broadcast_session(
    client: httpx.AsyncClient, channel: Channel, session: list[Action]
) -> None:
    """Each text reaches the other client; a binary or oversized frame closes the sender."""
    async with (
        connect_ws(channel.address, client) as listener,
        connect_ws(channel.address, client) as ws,
    ):
        for action in session:
            if isinstance(action, Leave):
                return
            await _send(ws, action)
            if isinstance(action, Binary) or len(getattr(action, "text", "")) > MAX_MESSAGE:
                assert _check(channel, await _next(ws))
                return
            relayed = await _next(listener)
            assert not _check(channel, relayed)
            assert f"New message: {action.text}" == relayed  # type: ignore[union-attr]


async def _still_serves(client: httpx.AsyncClient) -> None:
    async with connect_ws("/ws/echo", client) as ws:
        await ws.send_text("still there?")
        assert "Echo: still there?" == await ws.receive_text(ANSWER_WITHIN)


@pytest.fixture(params=["B", "A in front of B"])
def target(
    request: pytest.FixtureRequest, b_client: httpx.AsyncClient, a_client: httpx.AsyncClient
) -> httpx.AsyncClient:
    """Give a client on B in-process, or on A in-process with the same B behind it."""
    return b_client if request.param == "B" else a_client


def fuzz(
    prove: Callable[..., Coroutine[Any, Any, None]], *strategies: st.SearchStrategy[Any]
) -> Callable[[], None]:
    """Give a Hypothesis test that plays each example on the event loop running the services.

    Hypothesis drives from a worker thread; each example runs on the test's own event loop
    (asyncio or trio), where the services live for the whole test: every example meets the
    service the previous ones left behind.
    """

    @FUZZ
    @given(st.tuples(*strategies))
    def examples(drawn: tuple[Any, ...]) -> None:
        anyio.from_thread.run(prove, *drawn)

    return examples


ANSWERING = ["/ws/echo", "/ws/json", "/ws/v5/private"]


@pytest.mark.anyio
@pytest.mark.parametrize("address", ANSWERING)
async def test_answering_channels(address: str, target: httpx.AsyncClient) -> None:
    """Echo, JSON and private answer every message with a documented message or close."""
    channel = channels()[address]

    async def prove(session: list[Action]) -> None:
        await _answering_session(target, channel, session)
        await _still_serves(target)
        SESSIONS[address] += 1

    await anyio.to_thread.run_sync(fuzz(prove, actions(channel)))


def _intervals(channel: Channel) -> st.SearchStrategy[str]:
    return st.one_of(
        from_schema(channel.query["interval"]).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.text(max_size=10),
    )


@pytest.mark.anyio
async def test_stream(target: httpx.AsyncClient) -> None:
    """The stream sends updates, or closes with 1008 for an interval it does not take."""
    channel = channels()["/ws/stream"]

    async def prove(interval: str, session: list[Action]) -> None:
        await _stream_session(target, channel, interval, session)
        await _still_serves(target)
        SESSIONS["/ws/stream"] += 1

    await anyio.to_thread.run_sync(fuzz(prove, _intervals(channel), actions(channel)))


@pytest.mark.anyio
async def test_broadcast(target: httpx.AsyncClient) -> None:
    """Broadcast relays every text to the other client, and closes a sender of bad frames."""
    channel = channels()["/ws/broadcast"]

    async def prove(session: list[Action]) -> None:
        await _broadcast_session(target, channel, session)
        await _still_serves(target)
        SESSIONS["/ws/broadcast"] += 1

    await anyio.to_thread.run_sync(fuzz(prove, actions(channel)))
