"""B's WebSocket endpoints: echo, stream, JSON, broadcast and the private items channel."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio
import anyio.lowlevel
from fastapi import APIRouter, Depends, Query, WebSocket
from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocketDisconnect

from service_b.json_text import dump_json
from service_b.login_guard import Outcome
from service_b.models import (
    ChannelArg,
    ErrorEvent,
    ItemsPush,
    JsonReceived,
    LoginArgs,
    LoginFailed,
    LoginRequest,
    LoginSucceeded,
    LoginTooFrequent,
    LoginWrongPassphrase,
    StreamUpdate,
    Subscribed,
    SubscribeRequest,
)
from service_b.resources import Resources, ResourcesDep, SettingsDep
from service_b.settings import Settings
from service_b.store import ItemChange
from service_b.topics import Queued, Subscription
from service_b.websocket_errors import (
    InvalidPayload,
    MessageTooBig,
    OriginRefused,
    PolicyViolation,
    ServiceBWebSocketError,
    TryAgainLater,
    UnsupportedData,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def check_origin(websocket: WebSocket, settings: SettingsDep) -> None:
    """Refuse a browser handshake from an origin that is not allowed (cross-site hijacking).

    A handshake without `Origin` comes from a non-browser client and is accepted.
    """
    origin = websocket.headers.get("origin")
    allowed = settings.allowed_origins
    if origin is not None and origin not in allowed and "*" not in allowed:
        raise OriginRefused(f"origin {origin} is not allowed")


router = APIRouter(dependencies=[Depends(check_origin)])


async def race(*tasks: Callable[[], Awaitable[None]]) -> None:
    """Run `tasks` together until the first one ends; cancel the others and re-raise its error.

    The error comes out bare, not in an exception group, so the app's WebSocket error
    handler sees the class it maps to a close code.
    """
    failure: Exception | None = None

    async def run(task: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        nonlocal failure
        try:
            await task()
        except Exception as exc:  # noqa: BLE001 - re-raised below, once the others stopped
            failure = failure or exc
        finally:
            scope.cancel()

    async with anyio.create_task_group() as group:
        for task in tasks:
            group.start_soon(run, task, group.cancel_scope)
    if failure is not None:
        raise failure


class _OutOfRange(ValueError):
    """A JSON number B cannot hold: beyond a double's range, or an integer too long to read."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _OutOfRange(text)
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than Python reads (sys.get_int_max_str_digits)
        raise _OutOfRange(text) from None


def parse_json(text: str) -> Any:
    """Parse a JSON text strictly (no NaN or Infinity); anything else ends with 1007.

    A number B cannot hold (one that overflows a double, as `1e400` does, or an integer of
    thousands of digits) ends with 1007 too, rather than coming back changed or as
    `Infinity`, which is not JSON.
    """
    try:
        return json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_integer
        )
    except _OutOfRange:
        raise InvalidPayload("message is valid JSON, but has a number out of range") from None
    except (ValueError, RecursionError):
        raise InvalidPayload("message is not valid JSON") from None


class Peer:
    """A client's WebSocket, read and written within B's limits.

    A message over the size limit ends the session with 1009. A send the client does not
    take within the send timeout (it stopped reading) ends it with 1013: without the
    timeout, the send would wait for as long as the client keeps its socket open.
    """

    def __init__(self, websocket: WebSocket, settings: Settings) -> None:
        """Wrap an accepted `websocket`."""
        self.websocket = websocket
        self._max_bytes = settings.ws_max_message_bytes
        self._send_timeout = settings.ws_send_timeout_seconds

    async def receive(self) -> str | bytes:
        """Wait for the next message, text or binary."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        text: str | None = message.get("text")
        limit = self._max_bytes
        if text is None:
            data: bytes = message.get("bytes") or b""
            if len(data) > limit:
                raise MessageTooBig(f"message is larger than {limit} bytes")
            return data
        # Each character takes 1 to 4 bytes: encode only when the length alone cannot tell.
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
            raise MessageTooBig(f"message is larger than {limit} bytes")
        return text

    async def receive_text(self) -> str:
        """Wait for the next text message; a binary frame ends the session with 1003."""
        message = await self.receive()
        if isinstance(message, bytes):
            raise UnsupportedData("binary frames are not supported; send text")
        return message

    async def send_text(self, text: str) -> None:
        """Send a text message."""
        await self._send_by(text, anyio.current_time() + self._send_timeout)
        # A send into a buffer with room does not yield; without this, a loop of sends to
        # a client whose connection was reset could hold the event loop.
        await anyio.lowlevel.checkpoint()

    async def _send_by(self, text: str, deadline: float) -> None:
        """Send a text message that the client must take by `deadline`, or end with 1013."""
        if anyio.current_time() >= deadline:
            raise TryAgainLater("the client is not reading; reconnect")
        with anyio.CancelScope(deadline=deadline) as scope:
            await self.websocket.send_text(text)
        if scope.cancelled_caught:
            raise TryAgainLater("the client is not reading; reconnect")

    async def send_model(self, model: BaseModel) -> None:
        """Send a message model as JSON text, leaving out fields that are not set."""
        await self.send_text(dump_json(model.model_dump(mode="json", exclude_none=True)))

    async def deliver(self, subscription: Subscription) -> None:
        """Send each queued message, in order, until the session ends.

        Each message must be taken within the send timeout of the time it was queued, so a
        client that stops reading is closed with 1013 that long after its first undelivered
        message, however many are queued behind it; an overflow of its queue closes it with
        1013 at once. Whatever is queued is sent in one go, without yielding between
        messages: a writer that wakes once per publish then drains its whole queue, so a
        reader that keeps up never falls behind a sender that yields once per message.
        """

        async def forward() -> None:
            while True:
                message: Queued | None = await subscription.next()
                while message is not None:
                    await self._send_by(message.text, message.queued_at + self._send_timeout)
                    message = subscription.next_nowait()

        async def watch() -> None:
            await subscription.overflowed.wait()
            raise TryAgainLater(subscription.overflow_reason)

        await race(forward, watch)


@router.websocket("/ws/echo")
async def echo(websocket: WebSocket, settings: SettingsDep) -> None:
    """Answer each text message M with `Echo: M`."""
    await websocket.accept()
    peer = Peer(websocket, settings)
    while True:
        text = await peer.receive_text()
        await peer.send_text(f"Echo: {text}")


@router.websocket("/ws/stream")
async def stream(
    websocket: WebSocket,
    settings: SettingsDep,
    interval: Annotated[float, Query(ge=0.01, le=60, allow_inf_nan=False)] = 1.0,
) -> None:
    """Send a timestamped update every `interval` seconds; client messages are ignored."""
    await websocket.accept()
    peer = Peer(websocket, settings)

    async def send_updates() -> None:
        due = anyio.current_time()
        while True:
            update = StreamUpdate(timestamp=datetime.now(UTC).isoformat())
            await peer.send_model(update)
            # Keep to the schedule, but never try to catch up on updates a slow client missed.
            # The clock is read once: two reads differ, and a late step would then ask for a
            # negative sleep, which anyio refuses. `sleep_until` takes a past time as now.
            due = max(due + interval, anyio.current_time())
            await anyio.sleep_until(due)

    async def ignore_input() -> None:
        while True:
            await peer.receive()

    await race(send_updates, ignore_input)


@router.websocket("/ws/json")
async def json_endpoint(websocket: WebSocket, settings: SettingsDep) -> None:
    """Answer each JSON text with the parsed value; text that is not JSON closes with 1007."""
    await websocket.accept()
    peer = Peer(websocket, settings)
    while True:
        value = parse_json(await peer.receive_text())
        await peer.send_text(dump_json(JsonReceived(data=value).model_dump(mode="python")))


@router.websocket("/ws/broadcast")
async def broadcast(websocket: WebSocket, resources: ResourcesDep) -> None:
    """Pass each text message M to every other connected client as `New message: M`."""
    topic = resources.broadcast
    # Subscribe before the handshake completes: once a client is connected, it hears everything.
    with topic.subscribe() as me:
        await websocket.accept()
        peer = Peer(websocket, resources.settings)

        async def read() -> None:
            while True:
                text = await peer.receive_text()
                await topic.publish(f"New message: {text}", exclude=me)

        await race(read, partial(peer.deliver, me))


#: Each refused login's answer, and the error (close code) and reason it closes with.
LOGIN_REFUSALS: dict[Outcome, tuple[BaseModel, type[ServiceBWebSocketError], str]] = {
    Outcome.FAILED: (LoginFailed(), PolicyViolation, "authentication failed"),
    Outcome.WRONG_PASSPHRASE: (LoginWrongPassphrase(), PolicyViolation, "wrong passphrase"),
    Outcome.TOO_FREQUENT: (
        LoginTooFrequent(),
        PolicyViolation,
        "too many failed logins; try again later",
    ),
    Outcome.BUSY: (LoginTooFrequent(), TryAgainLater, "too many logins at once; try again later"),
}


class PrivateSession:
    """One client of `/ws/v5/private`: a login, then subscriptions to the items channel."""

    def __init__(self, websocket: WebSocket, resources: Resources, exits: ExitStack) -> None:
        """Serve `websocket`; subscriptions are released by `exits` when the session ends."""
        self._peer = Peer(websocket, resources.settings)
        self._resources = resources
        self._settings: Settings = resources.settings
        self._exits = exits
        self._subscription: Subscription | None = None
        self._subscribed = anyio.Event()

    async def _receive(self) -> Any:
        """Wait for the next JSON request, answering OKX's keep-alive `ping` on the way."""
        while True:
            text = await self._peer.receive_text()
            if text != "ping":
                return parse_json(text)
            await self._peer.send_text("pong")

    async def login(self) -> None:
        """Accept only a valid login first; anything else is answered, then closes.

        What a login comes to is `LoginGuard.check`'s decision, made in one step of the
        event loop (no `await` between checking a signature and recording its use).
        """
        request = await self._receive()
        if not isinstance(request, dict) or request.get("op") != "login":
            await self._peer.send_model(ErrorEvent(code="60011", msg="Please log in"))
            raise PolicyViolation("login required")
        try:
            args: LoginArgs | None = LoginRequest.model_validate(request).args[0]
        except ValidationError:
            args = None
        client = self._peer.websocket.client
        address = "-" if client is None else client.host
        outcome = self._resources.login_guard.check(args, address)
        if outcome is Outcome.ACCEPTED:
            await self._peer.send_model(LoginSucceeded())
            return
        answer, error, reason = LOGIN_REFUSALS[outcome]
        logger.info("login from %s refused: %s", address, reason)
        await self._peer.send_model(answer)
        raise error(reason)

    async def serve_requests(self) -> None:
        """Answer subscribe requests until the client leaves."""
        while True:
            request = await self._receive()
            op = request.get("op") if isinstance(request, dict) else None
            if op != "subscribe":
                await self._peer.send_model(
                    ErrorEvent(code="60012", msg=f"Unsupported operation: {op}")
                )
                continue
            try:
                subscribe = SubscribeRequest.model_validate(request)
            except ValidationError:
                await self._peer.send_model(
                    ErrorEvent(code="60018", msg="Invalid subscription: the channel is items"),
                )
                continue
            if self._subscription is None:
                # Subscribe before acknowledging, so no change after the answer is missed.
                topic = self._resources.store.changes
                self._subscription = self._exits.enter_context(topic.subscribe())
                self._subscribed.set()
            for arg in subscribe.args:
                await self._peer.send_model(Subscribed(arg=arg))

    async def push_changes(self) -> None:
        """Once subscribed, push every committed change to the items."""
        await self._subscribed.wait()
        assert self._subscription is not None  # noqa: S101 - set before the event
        await self._peer.deliver(self._subscription)


def render_change(change: ItemChange) -> str:
    """Give the `items` channel push for a change, as JSON text."""
    push = ItemsPush(arg=ChannelArg(channel="items"), action=change.action, data=[change.item])
    return dump_json(push.model_dump(mode="json", exclude_none=True))


@router.websocket("/ws/v5/private")
async def private(websocket: WebSocket, resources: ResourcesDep) -> None:
    """Log in with an OKX-style signature, then subscribe to pushes of item changes."""
    await websocket.accept()
    with ExitStack() as exits:
        session = PrivateSession(websocket, resources, exits)
        await session.login()
        await race(session.serve_requests, session.push_changes)
