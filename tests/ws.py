"""httpx-ws for the tests: a typed `connect_ws`, and an in-process transport without races.

httpx-ws 0.9's `ASGIWebSocketTransport` runs an app's WebSocket sessions in-process, but
it differs from a real server in three ways that make tests flaky or slow:

- it keeps the handshake's scope on the transport, so two handshakes in flight at once can
  both get the second one's path and headers;
- a client's `close()` closes the in-memory stream under the session's background reader,
  which then fails with `ClosedResourceError` instead of seeing the end of the stream;
- nothing answers a client's close frame (a real server's protocol layer does, at once),
  so a client that waits for the answer, as A's relay does, waits until its timeout.

`InProcessWebSocketTransport` is httpx-ws's transport with those three fixed. It overrides
private parts of httpx-ws (`_handle_ws_request`, `_send_queue`, `_exit_stack`), so it is
written for the versions in `HTTPX_WS_VERSIONS` only: importing this module with any other
version fails at once, naming the version, instead of letting tests hang or pass by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from importlib.metadata import version
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import httpx
import wsproto
import wsproto.events
import wsproto.utilities
from httpx_ws import AsyncWebSocketSession, aconnect_ws
from httpx_ws.transport import ASGIWebSocketAsyncNetworkStream, ASGIWebSocketTransport

#: The httpx-ws releases (major, minor) whose private parts this module was written against.
HTTPX_WS_VERSIONS = frozenset({(0, 9)})


def check_httpx_ws(installed: str) -> None:
    """Fail loudly when `installed` is an httpx-ws this module's overrides were not written for."""
    if tuple(int(part) for part in installed.split(".")[:2]) not in HTTPX_WS_VERSIONS:
        known = ", ".join(f"{major}.{minor}.x" for major, minor in sorted(HTTPX_WS_VERSIONS))
        raise RuntimeError(
            f"tests/ws.py overrides private parts of httpx-ws {known}; httpx-ws {installed} is"
            " installed: check InProcessWebSocketTransport against it, then add its version"
        )


check_httpx_ws(version("httpx-ws"))


def connect_ws(
    url: str, client: httpx.AsyncClient, **options: Any
) -> AbstractAsyncContextManager[AsyncWebSocketSession]:
    """Open a WebSocket session through `client` (`aconnect_ws`, with its session type named)."""
    return aconnect_ws(url, client, session_class=AsyncWebSocketSession, **options)


class _InProcessStream(ASGIWebSocketAsyncNetworkStream):
    #: Told when the app's session has returned (the transport counts the running ones).
    on_finished: Callable[[], None] | None = None

    async def _run(self) -> None:
        try:
            await super()._run()
        finally:
            if self.on_finished is not None:
                self.on_finished()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        while True:
            try:
                return await super().read(max_bytes, timeout)
            except wsproto.utilities.LocalProtocolError:
                continue  # the app sent after the close began: a socket peer drops it too
            except (anyio.ClosedResourceError, anyio.EndOfStream):
                return b""  # the end of the stream, as a socket would report it

    async def write(
        self,
        buffer: bytes,
        timeout: float | None = None,  # noqa: ARG002, ASYNC109 - httpcore's signature
    ) -> None:
        self.connection.receive_data(buffer)
        for event in self.connection.events():
            if isinstance(event, wsproto.events.CloseConnection):
                await self.send(
                    {"type": "websocket.disconnect", "code": event.code, "reason": event.reason}
                )
                # Answer the close frame, as a server's protocol layer does.
                await self._send_queue.send(
                    {"type": "websocket.close", "code": event.code, "reason": event.reason or ""}
                )
            elif isinstance(event, wsproto.events.TextMessage):
                await self.send({"type": "websocket.receive", "text": event.data})
            elif isinstance(event, wsproto.events.BytesMessage):
                await self.send({"type": "websocket.receive", "bytes": bytes(event.data)})


class InProcessWebSocketTransport(ASGIWebSocketTransport):
    """httpx-ws's in-process transport, each session with its own scope, closing like a server."""

    #: The stream each session runs on; a subclass may give one that behaves otherwise.
    stream_class: type[_InProcessStream] = _InProcessStream

    #: How long a closing client lets the app end the sessions it still runs, then cancels them.
    sessions_grace: float = 10.0

    def __init__(self, *args: Any, initial_receive_timeout: float = 30.0, **kwargs: Any) -> None:
        """Wait up to 30 s for the app to accept: httpx-ws's 1 s fails on a loaded machine.

        The wait ends as soon as the app answers the handshake, so the bound costs nothing
        where the app is quick; a test that wants a refusal sees it as soon as it is sent.
        """
        super().__init__(*args, initial_receive_timeout=initial_receive_timeout, **kwargs)
        self._running = 0
        self._idle = anyio.Event()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> None:
        """Close like a server that stops: sessions still running get `sessions_grace`.

        httpx-ws waits for every session the app still runs; one stuck after a failed test
        would hang the test's teardown for ever instead of letting the failure be reported.
        So sessions that have not ended within the grace period are cancelled.
        """
        if self._running:
            with anyio.move_on_after(self.sessions_grace):
                await self._idle.wait()
            self._task_group.cancel_scope.cancel()
        await super().__aexit__(exc_type, exc_val, exc_tb)

    def _started(self) -> None:
        if not self._running:
            self._idle = anyio.Event()
        self._running += 1

    def _finished(self) -> None:
        self._running -= 1
        if not self._running:
            self._idle.set()

    async def _handle_ws_request(
        self,
        request: httpx.Request,  # noqa: ARG002 - httpx-ws's signature
        scope: dict[str, Any],
    ) -> httpx.Response:
        async def open_stream(*, task_status: anyio.abc.TaskStatus[Any]) -> None:
            app = self.app  # typed as httpx's ASGI app; httpx-ws's stream names the same shape
            stream = self.stream_class(app, scope, self._task_group, self._initial_receive_timeout)  # type: ignore[arg-type]
            self._started()
            stream.on_finished = self._finished
            assert self._exit_stack is not None
            task_status.started(await self._exit_stack.enter_async_context(stream))

        stream, accept_response = await self._task_group.start(open_stream)
        lines = accept_response.decode().splitlines()
        headers = [tuple(line.split(": ", 1)) for line in lines[1:] if line.strip()]
        return httpx.Response(101, headers=headers, extensions={"network_stream": stream})
