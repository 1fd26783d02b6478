"""B's WebSocket errors, and the one handler that turns each into a close code and reason."""

from __future__ import annotations

import logging
from typing import ClassVar

import anyio
from fastapi import FastAPI
from fastapi.exceptions import WebSocketRequestValidationError
from fastapi.responses import JSONResponse
from starlette import status
from starlette.exceptions import WebSocketException
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

logger = logging.getLogger(__name__)

#: RFC 6455 section 5.5: a control frame's payload is at most 125 bytes, 2 of them the code.
MAX_REASON_BYTES = 123
#: How long a close may take when B's settings are not at hand.
DEFAULT_CLOSE_TIMEOUT_SECONDS = 10.0


def close_reason(text: str) -> str:
    """Fit `text` into a close frame's reason, cutting it on a character boundary."""
    data = text.encode()
    if len(data) <= MAX_REASON_BYTES:
        return text
    return data[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


class ServiceBWebSocketError(WebSocketException):
    """A reason to end a WebSocket session, with the RFC 6455 code that says why."""

    close_code: ClassVar[int]

    def __init__(self, reason: str) -> None:
        """Carry `reason` to the client in the close frame."""
        super().__init__(self.close_code, close_reason(reason))


class UnsupportedData(ServiceBWebSocketError):
    """A frame of a kind the endpoint does not take (a binary frame on a text endpoint)."""

    close_code = status.WS_1003_UNSUPPORTED_DATA


class InvalidPayload(ServiceBWebSocketError):
    """A message whose content is not what the endpoint reads (text that is not JSON)."""

    close_code = status.WS_1007_INVALID_FRAME_PAYLOAD_DATA


class PolicyViolation(ServiceBWebSocketError):
    """A message or parameter the endpoint refuses (a failed login, a bad interval)."""

    close_code = status.WS_1008_POLICY_VIOLATION


class MessageTooBig(ServiceBWebSocketError):
    """A message larger than the configured maximum."""

    close_code = status.WS_1009_MESSAGE_TOO_BIG


class TryAgainLater(ServiceBWebSocketError):
    """A subscriber that fell too far behind its outgoing queue."""

    close_code = status.WS_1013_TRY_AGAIN_LATER


class OriginRefused(ServiceBWebSocketError):
    """A browser handshake from an origin that is not allowed; refused with HTTP 403."""

    close_code = status.WS_1008_POLICY_VIOLATION


async def close_websocket(websocket: WebSocket, exc: Exception) -> None:
    """End the session for `exc`: a close frame with its code and reason, or a refused handshake.

    Errors found before the handshake completes (a bad query parameter) still close with a
    code: the handshake is accepted first, so the client learns why. Only a refused origin
    is answered with HTTP 403 instead.
    """
    if isinstance(exc, WebSocketDisconnect):
        return  # The client left; there is nobody to tell.
    if isinstance(exc, WebSocketRequestValidationError):
        exc = PolicyViolation(_summarise(exc))
    if not isinstance(exc, WebSocketException):  # pragma: no cover - registration guarantees it
        raise exc
    if WebSocketState.DISCONNECTED in {websocket.client_state, websocket.application_state}:
        return
    logger.info("closing WebSocket %s with %d: %s", websocket.url.path, exc.code, exc.reason)
    # A client that stopped reading never takes the close frame either: give up on it.
    with anyio.move_on_after(_close_timeout(websocket)):
        try:
            if websocket.application_state == WebSocketState.CONNECTING:
                if isinstance(exc, OriginRefused):
                    await _refuse_handshake(websocket, exc.reason)
                    return
                await websocket.accept()
            await websocket.close(exc.code, exc.reason)
        except (WebSocketDisconnect, OSError):
            pass  # The client went away while we were telling it why.


def _close_timeout(websocket: WebSocket) -> float:
    resources = getattr(websocket.state, "resources", None)
    if resources is None:
        return DEFAULT_CLOSE_TIMEOUT_SECONDS
    timeout: float = resources.settings.ws_send_timeout_seconds
    return timeout


async def _refuse_handshake(websocket: WebSocket, reason: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            JSONResponse({"detail": reason}, status_code=status.HTTP_403_FORBIDDEN)
        )
    else:  # Without the denial-response extension, closing before accept is a plain 403.
        await websocket.close(status.WS_1008_POLICY_VIOLATION, reason)


def _summarise(exc: WebSocketRequestValidationError) -> str:
    errors = exc.errors()
    if not errors:  # pragma: no cover - FastAPI raises it with at least one error
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "query")
    return f"{where}: {first.get('msg', 'invalid')}"


def install_websocket_error_handlers(app: FastAPI) -> None:
    """Route every WebSocket error of B, FastAPI's and Starlette's own, to `close_websocket`."""
    for exc_class in (WebSocketException, WebSocketRequestValidationError, WebSocketDisconnect):
        app.add_exception_handler(exc_class, close_websocket)
