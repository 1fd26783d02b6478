"""WebSocket fuzzing of B, in-process and through A: the property is the AsyncAPI document.

Sessions mix messages generated from the AsyncAPI schemas of what each channel receives
(hypothesis-jsonschema) with malformed input: text that is not JSON, JSON of any shape,
binary frames, oversized messages, logins with garbage fields, requests before login,
clients that leave with answers pending, and clients whose connection drops with no close
frame (tests/fuzz/abrupt.py). Every answer must be a message the channel sends, or a close
with a code the channel documents; never 1011, never silence longer than ANSWER_WITHIN; a dropped
session must end within it without an error; and after every session the service answers
its next client normally, on echo and on the channel just fuzzed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
import wsproto.events
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from wsproto.utilities import LocalProtocolError

from service_b import Settings as BSettings
from service_b.login_message import login_message
from tests.fuzz.abrupt import DroppableStream, DroppingWebSocketTransport
from tests.fuzz.asyncapi_messages import Channel, channels
from tests.fuzz.conftest import SESSIONS
from tests.inprocess import a_in_front_of_b
from tests.ws import connect_ws

MAX_MESSAGE = 1024 * 1024
#: How long a session may wait for an answer or a close: each wait ends at the event itself,
#: so the bound only has to be wide enough never to fire on a loaded 2-core CI machine.
ANSWER_WITHIN = 10.0
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
    """Close at once (a close frame), whatever answers are still on their way."""


@dataclass(frozen=True)
class Drop:
    """Drop the connection at once, with no close frame, as a client that lost its network."""


Action = Text | Binary | Login | Leave | Drop


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A function, not a lambda: Hypothesis 6.170 reads a lambda's source to check that it
    # recurses, fails on this one's (it spans lines), and warns, an error under our filters.
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    _nested,
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
        st.just(Drop()),
    ]
    if channel.address == "/ws/v5/private":
        malformed.append(st.just(Login()))
    return st.lists(st.one_of(_payloads(channel), *malformed), min_size=1, max_size=6)


async def _next(ws: AsyncWebSocketSession, within: float | None = ANSWER_WITHIN) -> str | int:
    """Give the next text B sends, or the code it closes with; fail after ANSWER_WITHIN."""
    try:
        event = await ws.receive(within)
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
            await ws.send_text(login_message("abc", "def", "fuzz", f"{time.time():.6f}"))
    except LocalProtocolError:
        pass  # B closed after its last answer; reading next gives its close code.


async def _drop(ws: AsyncWebSocketSession, address: str) -> None:
    """Drop the connection; the service must end that session soon, without an error."""
    stream = ws.stream
    assert isinstance(stream, DroppableStream)
    await stream.drop()
    with anyio.move_on_after(ANSWER_WITHIN):
        await stream.finished.wait()
    assert stream.finished.is_set(), f"{address} still serves a dropped client"
    assert stream.failure is None, f"{address} failed on a dropped client: {stream.failure!r}"


async def _leave(ws: AsyncWebSocketSession, action: Leave | Drop, address: str) -> None:
    """Drop the connection now, or leave it to be closed as the session's block ends."""
    if isinstance(action, Drop):
        await _drop(ws, address)


async def _answering_session(
    client: httpx.AsyncClient, channel: Channel, session: list[Action]
) -> None:
    """Echo, JSON and private answer every message: each must get an answer or a close."""
    async with connect_ws(channel.address, client) as ws:
        for action in session:
            if isinstance(action, Leave | Drop):
                await _leave(ws, action, channel.address)
                return
            await _send(ws, action)
            if _check(channel, await _next(ws)):
                return


async def _read_every_frame(
    ws: AsyncWebSocketSession, answers: list[str | int], closed: anyio.Event
) -> None:
    """Keep every frame the session gets, in order, until the close (its code, last)."""
    while not closed.is_set():
        answer = await _next(ws, within=None)  # the stream's interval may be up to 60 s
        answers.append(answer)
        if isinstance(answer, int):
            closed.set()


async def _stream_session(
    client: httpx.AsyncClient, channel: Channel, interval: str, session: list[Action]
) -> None:
    """Expect an update at once (or a close for a bad interval), then only updates, any input.

    Every frame of the session is read and checked, those after binary frames and garbage
    too: a reader keeps them while the session goes on, and before the session ends every
    task has run as far as it can, so the reader has what B sent in answer to the last frame.
    """
    async with connect_ws(f"{channel.address}?interval={quote(interval)}", client) as ws:
        if _check(channel, await _next(ws)):
            return
        answers: list[str | int] = []
        closed = anyio.Event()
        oversized = False
        async with anyio.create_task_group() as reading:
            reading.start_soon(_read_every_frame, ws, answers, closed)
            for action in session:
                if closed.is_set():
                    break
                if isinstance(action, Leave | Drop):
                    await _leave(ws, action, channel.address)
                    break
                await _send(ws, action)
                if isinstance(action, Text) and len(action.text) > MAX_MESSAGE:
                    oversized = True
                    with anyio.move_on_after(ANSWER_WITHIN):
                        await closed.wait()
                    break
            await anyio.wait_all_tasks_blocked()
            reading.cancel_scope.cancel()
        *updates, last = answers or ["(none)"]
        for answer in updates:
            assert not _check(channel, answer)
        if oversized:
            assert 1009 == last, f"not closed with 1009 within {ANSWER_WITHIN} s: {last!r}"
        elif answers:
            _check(channel, last)


async def _broadcast_session(
    client: httpx.AsyncClient, channel: Channel, session: list[Action]
) -> None:
    """Each text reaches the other client; a binary or oversized frame closes the sender."""
    async with (
        connect_ws(channel.address, client) as listener,
        connect_ws(channel.address, client) as ws,
    ):
        for action in session:
            if isinstance(action, Leave | Drop):
                await _leave(ws, action, channel.address)
                return
            await _send(ws, action)
            if isinstance(action, Binary) or len(getattr(action, "text", "")) > MAX_MESSAGE:
                assert _check(channel, await _next(ws))
                return
            relayed = await _next(listener)
            assert not _check(channel, relayed)
            assert f"New message: {action.text}" == relayed  # type: ignore[union-attr]


async def _answer(client: httpx.AsyncClient, address: str, text: str) -> Any:
    """Give the documented JSON answer of a new client of `address` to its first `text`."""
    async with connect_ws(address, client) as ws:
        await ws.send_text(text)
        answer = await _next(ws)
    assert isinstance(answer, str), f"{address} closed a new client with {answer}"
    assert channels()[address].is_sent(answer), f"{address} answered {answer[:200]!r}"
    return json.loads(answer)


async def _still_serves(client: httpx.AsyncClient, address: str) -> None:
    """Check that a new client is served normally, on echo and on the channel `address`."""
    async with connect_ws("/ws/echo", client) as ws:
        await ws.send_text("still there?")
        assert "Echo: still there?" == await ws.receive_text(ANSWER_WITHIN)
    if address == "/ws/json":
        answer = await _answer(client, address, '{"still": "there"}')
        assert {"still": "there"} == answer["data"]
    elif address == "/ws/v5/private":
        login = login_message("abc", "def", "fuzz", f"{time.time():.6f}")
        answer = await _answer(client, address, login)
        assert ("login", True) == (answer["event"], answer.get("success"))
    elif address == "/ws/stream":
        async with connect_ws(f"{address}?interval=0.01", client) as ws:
            for _ in range(2):
                answer = await _next(ws)
                assert not _check(channels()[address], answer)
    elif address == "/ws/broadcast":
        async with connect_ws(address, client) as listener, connect_ws(address, client) as ws:
            await ws.send_text("still there?")
            assert "New message: still there?" == await listener.receive_text(ANSWER_WITHIN)


@pytest.fixture
def b_settings() -> BSettings:
    """Give B for fuzzing: every example meets one B, and most send failed logins.

    B's failure limit per client address (every in-process client has the same one)
    would soon answer each login 60014, the valid ones too, so it is raised out of reach.
    """
    return BSettings(
        database_path=":memory:", login_failures_burst=1_000_000, login_failures_per_second=1e6
    )


@pytest.fixture(params=["B", "A in front of B"])
async def target(
    request: pytest.FixtureRequest,
    b_running: LifespanManager,
    a_app: FastAPI,
    b_client: httpx.AsyncClient,
) -> AsyncIterator[httpx.AsyncClient]:
    """Give a client on B in-process, or on A in-process with the same B behind it.

    Its sessions can drop their connection (tests/fuzz/abrupt.py); A reaches B as in
    tests/conftest.py's `a_client`.
    """
    if request.param == "B":
        transport = DroppingWebSocketTransport(b_running.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service-b") as b:
            yield b
        return
    async with a_in_front_of_b(a_app, b_client, transport_class=DroppingWebSocketTransport) as a:
        yield a


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
        await _still_serves(target, address)
        SESSIONS[address] += 1

    await anyio.to_thread.run_sync(fuzz(prove, actions(channel)))


def _intervals(channel: Channel) -> st.SearchStrategy[str]:
    """Intervals the stream takes, half of them short enough for updates to come mid-session."""
    accepted = channel.query["interval"]
    short = {**accepted, "maximum": min(accepted["maximum"], 0.1)}
    return st.one_of(
        from_schema(accepted).map(str),
        from_schema(short).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(str),
        st.text(max_size=10),
    )


@pytest.mark.anyio
async def test_stream(target: httpx.AsyncClient) -> None:
    """The stream sends updates, or closes with 1008 for an interval it does not take."""
    channel = channels()["/ws/stream"]

    async def prove(interval: str, session: list[Action]) -> None:
        await _stream_session(target, channel, interval, session)
        await _still_serves(target, "/ws/stream")
        SESSIONS["/ws/stream"] += 1

    await anyio.to_thread.run_sync(fuzz(prove, _intervals(channel), actions(channel)))


@pytest.mark.anyio
async def test_broadcast(target: httpx.AsyncClient) -> None:
    """Broadcast relays every text to the other client, and closes a sender of bad frames."""
    channel = channels()["/ws/broadcast"]

    async def prove(session: list[Action]) -> None:
        await _broadcast_session(target, channel, session)
        await _still_serves(target, "/ws/broadcast")
        SESSIONS["/ws/broadcast"] += 1

    await anyio.to_thread.run_sync(fuzz(prove, actions(channel)))
