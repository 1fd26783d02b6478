"""A's WebSocket relay: each client session is carried to the same path on B, both ways."""

from __future__ import annotations

import contextlib
import logging

import anyio
import anyio.lowlevel
import httpx
import wsproto.events
import wsproto.utilities
from fastapi import APIRouter, Depends, WebSocket
from httpx_ws import (
    AsyncWebSocketSession,
    WebSocketDisconnect,
    WebSocketNetworkError,
    WebSocketUpgradeError,
    aconnect_ws,
)
from starlette import status
from starlette.exceptions import WebSocketException
from starlette.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect as ClientGone

from service_a.dependencies import ServiceBClient, SettingsDep, WsSessions
from service_a.edge import REQUEST_ID_HEADER
from service_a.forwarded import forwarded_header_text
from service_a.settings import Settings

logger = logging.getLogger(__name__)

#: The paths A relays to B; anything else is not relayed.
RELAYED_PATHS = ("/ws/echo", "/ws/stream", "/ws/json", "/ws/broadcast", "/ws/v5/private")

# RFC 6455 section 7.4: 1005, 1006 and 1015 report a close, they are never sent. 1014 is
# avoided too: wsproto, under httpx-ws and other clients, rejects it as a protocol error.
_SENDABLE = {*range(1000, 1004), *range(1007, 1014), *range(3000, 5000)}
_MAX_REASON_BYTES = 123


def sendable(code: int | None, reason: str | None, *, abnormal: int) -> tuple[int, str]:
    """Give a close code and reason that may go in a close frame, for one that was received.

    No code (1005) becomes 1000; a connection lost without a close (1006, 1015) becomes
    `abnormal`; any other code a close frame may not carry becomes 1011.
    """
    if code is None or code == status.WS_1005_NO_STATUS_RCVD:
        code = status.WS_1000_NORMAL_CLOSURE
    elif code in {status.WS_1006_ABNORMAL_CLOSURE, 1015}:
        code = abnormal
    elif code not in _SENDABLE:
        code = status.WS_1011_INTERNAL_ERROR
    text = (reason or "").encode()[:_MAX_REASON_BYTES].decode(errors="ignore")
    return code, text


def _too_big(data: str | bytes, limit: int) -> bool:
    if isinstance(data, bytes):
        return len(data) > limit
    return len(data) > limit or (len(data) * 4 > limit and len(data.encode()) > limit)


async def check_origin(websocket: WebSocket, settings: SettingsDep) -> None:
    """Refuse a browser handshake from an origin that is not allowed (cross-site hijacking)."""
    origin = websocket.headers.get("origin")
    allowed = settings.allowed_origins
    if origin is not None and origin not in allowed and "*" not in allowed:
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, f"origin {origin} is not allowed")


router = APIRouter(dependencies=[Depends(check_origin)])


class Relay:
    """One client session and its session with B, pumped both ways until either side closes."""

    #: How long A waits for B to answer its close frame before dropping the connection.
    B_CLOSE_TIMEOUT = 1.0

    def __init__(
        self, client: WebSocket, upstream: AsyncWebSocketSession, settings: Settings
    ) -> None:
        """Relay between the accepted `client` and the open `upstream` session."""
        self._client = client
        self._upstream = upstream
        self._limit = settings.ws_max_message_bytes
        self._send_timeout = settings.ws_send_timeout
        self._b_closed = anyio.Event()

    async def run(self) -> None:
        """Pump frames both ways; return once both sides are closed."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._b_to_client, group.cancel_scope)
            # This direction runs in the session's own task: one task less for each session.
            await self._client_to_b(group.cancel_scope)

    async def _client_to_b(self, done: anyio.CancelScope) -> None:
        while True:
            message = await self._client.receive()
            if message["type"] == "websocket.disconnect":
                code, reason = sendable(
                    message.get("code"), message.get("reason"), abnormal=status.WS_1001_GOING_AWAY
                )
                await self._close_upstream(code, reason)
                done.cancel()
                return
            data: str | bytes = (
                message["text"] if message.get("text") is not None else message["bytes"]
            )
            if _too_big(data, self._limit):
                await self._close_both(status.WS_1009_MESSAGE_TOO_BIG, self._too_big_reason)
                done.cancel()
                return
            try:
                if isinstance(data, str):
                    await self._upstream.send_text(data)
                else:
                    await self._upstream.send_bytes(data)
            except (WebSocketNetworkError, wsproto.utilities.LocalProtocolError):
                return  # B is closing or gone; `_b_to_client` tells the client.

    async def _b_to_client(self, done: anyio.CancelScope) -> None:
        try:
            while True:
                event = await self._upstream.receive()
                if not isinstance(event, wsproto.events.Message):  # pragma: no cover - by contract
                    continue
                data = event.data if isinstance(event.data, str) else bytes(event.data)
                if _too_big(data, self._limit):
                    # This task is the one that would read B's answer: do not wait for it.
                    await self._close_client(status.WS_1009_MESSAGE_TOO_BIG, self._too_big_reason)
                    await self._close_upstream(
                        status.WS_1009_MESSAGE_TOO_BIG, self._too_big_reason, wait=False
                    )
                    done.cancel()
                    return
                # A client that stopped reading would hold this send, and B, for ever.
                with anyio.fail_after(self._send_timeout):
                    if isinstance(data, str):
                        await self._client.send_text(data)
                    else:
                        await self._client.send_bytes(data)
                await anyio.lowlevel.checkpoint()
        except TimeoutError:
            code, reason = status.WS_1013_TRY_AGAIN_LATER, "the client is not reading; reconnect"
            await self._close_upstream(
                status.WS_1001_GOING_AWAY, "the client is not reading", wait=False
            )
            await self._close_client(code, reason)
            done.cancel()
            return
        except WebSocketDisconnect as closed:
            self._b_closed.set()
            code, reason = sendable(
                closed.code, closed.reason, abnormal=status.WS_1011_INTERNAL_ERROR
            )
        except WebSocketNetworkError:
            self._b_closed.set()
            code, reason = status.WS_1011_INTERNAL_ERROR, "service B went away"
        except ClientGone:
            await self._close_upstream(status.WS_1001_GOING_AWAY, "client went away")
            done.cancel()
            return
        await self._close_client(code, reason)
        done.cancel()

    @property
    def _too_big_reason(self) -> str:
        return f"message is larger than {self._limit} bytes"

    async def _close_both(self, code: int, reason: str) -> None:
        await self._close_client(code, reason)
        await self._close_upstream(code, reason)

    async def _close_client(self, code: int, reason: str) -> None:
        # A client that stopped reading never takes the close frame either: give up on it.
        # A client already gone: uvicorn raises OSError (ClientDisconnected), an ASGI server
        # on anyio streams ClosedResourceError or BrokenResourceError (seen in-process: the
        # relay then ended in an exception group instead of returning).
        gone = (
            ClientGone,
            RuntimeError,
            OSError,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
        )
        with anyio.move_on_after(self._send_timeout), contextlib.suppress(*gone):
            await self._client.close(code, reason)

    async def _close_upstream(self, code: int, reason: str, *, wait: bool = True) -> None:
        """Send B a close frame, and give B a moment to answer it.

        Only the close frame is sent here: closing the stream itself is left to the
        session's exit, which stops httpx-ws's reader first (closing it under the reader
        fails it). Waiting for B's answer, which `_b_to_client` receives, completes the
        closing handshake, so the connection is not reset with B's close frame unread.
        """
        try:
            await self._upstream.send(wsproto.events.CloseConnection(code, reason or None))
        except (WebSocketNetworkError, wsproto.utilities.LocalProtocolError):
            return  # B is gone, or the close is already under way.
        if wait:
            with anyio.move_on_after(self.B_CLOSE_TIMEOUT):
                await self._b_closed.wait()


async def _refuse(websocket: WebSocket, http_status: int, close_code: int, reason: str) -> None:
    """Refuse the client's handshake, with an HTTP answer where the server can send one.

    Where it cannot, the handshake is accepted and closed at once with `close_code`.
    """
    logger.warning("refusing WebSocket %s: %s", websocket.url.path, reason)
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        retry = {"Retry-After": "1"} if http_status == status.HTTP_503_SERVICE_UNAVAILABLE else None
        await websocket.send_denial_response(
            JSONResponse({"detail": reason}, status_code=http_status, headers=retry)
        )
    else:
        await websocket.accept()
        await websocket.close(close_code, reason)


async def relay_websocket(
    websocket: WebSocket,
    client: httpx.AsyncClient,
    settings: Settings,
    sessions: anyio.CapacityLimiter,
) -> None:
    """Open the same path and query on B through `client`, then relay until either side closes.

    The session holds one of `sessions` while it runs; with none left (A relays
    `max_ws_sessions` already), the handshake is refused with HTTP 503 at once, without
    waiting and without asking B. B unreachable or refusing the handshake: the client's
    handshake is refused with HTTP 503 too (or, where the server cannot send an HTTP
    answer, closed at once with 1013). B closing, at any time: the client is closed with
    B's code and reason. B gone mid-session: closed with 1011.
    """
    try:
        sessions.acquire_nowait()
    except anyio.WouldBlock:
        await _refuse(
            websocket,
            status.HTTP_503_SERVICE_UNAVAILABLE,
            status.WS_1013_TRY_AGAIN_LATER,
            f"A is at its limit of {sessions.total_tokens:g} WebSocket sessions; try again later",
        )
        return
    try:
        await _relay(websocket, client, settings)
    finally:
        sessions.release()


async def _relay(websocket: WebSocket, client: httpx.AsyncClient, settings: Settings) -> None:
    url = websocket.url.path + (f"?{websocket.url.query}" if websocket.url.query else "")
    async with contextlib.AsyncExitStack() as stack:
        try:
            upstream = await stack.enter_async_context(
                aconnect_ws(
                    url,
                    client,
                    session_class=AsyncWebSocketSession,
                    max_message_size_bytes=settings.ws_max_message_bytes,
                    keepalive_ping_interval_seconds=settings.ws_ping_interval,
                    keepalive_ping_timeout_seconds=settings.ws_ping_timeout,
                    subprotocols=websocket.scope.get("subprotocols") or None,
                    headers={
                        REQUEST_ID_HEADER: websocket.state.request_id,
                        **forwarded_header_text(websocket.scope),
                    },
                )
            )
        except httpx.TransportError as exc:
            logger.warning("cannot open %s on service B: %r", url, exc)
            await _refuse(
                websocket,
                status.HTTP_503_SERVICE_UNAVAILABLE,
                status.WS_1013_TRY_AGAIN_LATER,
                "service B unavailable",
            )
            return
        except WebSocketUpgradeError as refused:
            # Every relayed path is one B serves, so a refusal means B cannot serve it now.
            await _refuse(
                websocket,
                status.HTTP_503_SERVICE_UNAVAILABLE,
                status.WS_1013_TRY_AGAIN_LATER,
                f"service B refused the WebSocket: {refused.response.status_code}",
            )
            return
        except WebSocketDisconnect as closed:
            # B closed before accepting (seen in-process, where there is no HTTP refusal).
            await websocket.accept()
            await websocket.close(*sendable(closed.code, closed.reason, abnormal=1011))
            return
        await websocket.accept(subprotocol=upstream.subprotocol)
        await Relay(websocket, upstream, settings).run()


async def relay_endpoint(
    websocket: WebSocket, client: ServiceBClient, settings: SettingsDep, sessions: WsSessions
) -> None:
    """Relay this WebSocket to the same path on B."""
    await relay_websocket(websocket, client, settings, sessions)


for _path in RELAYED_PATHS:
    router.add_api_websocket_route(_path, relay_endpoint)
