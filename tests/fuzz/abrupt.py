"""An in-process WebSocket transport whose clients can drop a connection, with no close frame.

tests/ws.py's `InProcessWebSocketTransport` closes every session with a close handshake when
the client leaves. A client that loses its network sends nothing: the server's protocol
layer sees the connection end, tells the app `websocket.disconnect` with code 1006, and
fails the app's sends from then on with `ClientDisconnected` (uvicorn's; an `OSError`, which
Starlette turns into `WebSocketDisconnect(1006)`). `DroppingWebSocketTransport` does the
same on `DroppableStream.drop()`, and records how the app's session ended, so a test can
tell that the service finished it cleanly: where uvicorn would log "Exception in ASGI
application", `failure` holds the exception.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import anyio.abc
from httpx_ws.transport import ASGIApp, Message
from uvicorn.protocols.utils import ClientDisconnected

from tests.ws import InProcessWebSocketTransport, _InProcessStream

#: How long a dropped stream waits for the app to end before closing its queues anyway.
GRACE = 2.0


class DroppableStream(_InProcessStream):
    """One in-process session that the client can drop as a lost connection is dropped."""

    def __init__(
        self,
        app: ASGIApp,
        scope: dict[str, Any],
        task_group: anyio.abc.TaskGroup,
        initial_receive_timeout: float = 1.0,
    ) -> None:
        super().__init__(app, scope, task_group, initial_receive_timeout)
        self.dropped = False
        #: Set once the app's session has ended, however it ended.
        self.finished = anyio.Event()
        #: The exception the app's session ended with; a server would log it as an error.
        self.failure: Exception | None = None

    async def drop(self) -> None:
        """Lose the connection: no close frame either way, 1006 for the app, sends fail."""
        self.dropped = True
        await self.send({"type": "websocket.disconnect", "code": 1006})

    async def _send_to_client(self, message: Message) -> None:
        if self.dropped:
            raise ClientDisconnected  # what uvicorn raises on a send once the peer is gone
        await self._send_queue.send(message)

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self._receive_queue.receive, self._send_to_client)
        except ClientDisconnected:
            pass  # uvicorn ends such a session quietly
        except Exception as error:  # noqa: BLE001 - recorded for the test, as a server logs it
            self.failure = error
            if not self.dropped:  # as httpx-ws does: the client sees 1011
                with contextlib.suppress(anyio.ClosedResourceError):
                    await self._send_queue.send(
                        {"type": "websocket.close", "code": 1011, "reason": str(error)}
                    )
        finally:
            self.finished.set()

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Pass the client's frames to the app; once dropped, nothing gets through."""
        if not self.dropped:
            await super().write(buffer, timeout)

    async def aclose(self) -> None:
        """Close the stream; once dropped, without a second disconnect, after the app ended."""
        if not self.dropped:
            await super().aclose()
            return
        # Closing the queues under a session still running would fail its next receive
        # with ClosedResourceError, which no server does.
        with anyio.move_on_after(GRACE):
            await self.finished.wait()
        await self._receive_queue.aclose()
        await self._send_queue.aclose()


class DroppingWebSocketTransport(InProcessWebSocketTransport):
    """tests/ws.py's in-process transport, each session a `DroppableStream`."""

    stream_class = DroppableStream
