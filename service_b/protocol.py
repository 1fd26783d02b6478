"""B's HTTP/1.1 edge: uvicorn's httptools protocol with bounded request heads and client time.

uvicorn (0.55) bounds neither the request head nor the time a client takes to send it:
measured against `python -m service_b` with its defaults, a request with 10,000 header lines
was answered 200, a 16 MiB header line cost B 145 ms and 46.7 MiB while httptools buffered
it, and 0 of 600 silent connections were closed. Under a 1024 file-descriptor limit,
1,100 silent sockets starved every other client (0 of 24 health checks answered).
uvicorn's `limit_concurrency` does not help: it still accepts and holds the connection until
a head arrives, and answers text, not JSON.
h11 (uvicorn's other protocol) bounds only the whole head (`h11_max_incomplete_event_size`)
and has no head timeout either. So this module subclasses uvicorn's `HttpToolsProtocol` and
adds, in its parser callbacks and timers only (llhttp still does all the parsing):

- a limit on header fields, on one line (a field, or the request line: 414 for the URL) and
  on the whole head: over it, 431 (414) with a JSON `detail` and `Connection: close`; a head
  still unfinished past the head limit is refused as soon as it is seen, not buffered;
- a malformed head gets 400 with a JSON `detail` (uvicorn's own 400 is text);
- a head deadline per request, counted from the connection's start or the request's first
  byte: a head not complete in time gets 408 (if nothing else is being written) and a close;
- a cap on open connections: past it, an idle keep-alive connection is closed to make room,
  else the connection that has waited longest for its head is answered 503 and closed (so
  silent sockets cannot lock others out: each new one only displaces the oldest), else
  (every connection is busy with a request) the new one gets 503 with `Retry-After` at once.

Idle keep-alive connections are closed by uvicorn's own `timeout_keep_alive`.
Measured with `tests/stress/edge_heads.py` on the project's 2-core machine, after the change:
431 in 1-2 ms and no RSS growth for 10,000 headers or a 16 MiB line; 600 of 600 silent or
half-sent heads closed at the head timeout; 24 of 24 health checks answered 200 while 1,100
silent sockets are held under a 1024 file limit.

This file has a twin in `service_a/protocol.py`: the services share no code (only the wire).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

logger = logging.getLogger(__name__)

#: The bytes a header field takes on the wire besides its name and value: `: ` and CRLF.
FIELD_OVERHEAD = 4
#: What a refused connection is told to wait before trying again, in seconds.
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class EdgeLimits:
    """What one request head and one client may take."""

    max_header_count: int
    max_header_line_bytes: int
    max_head_bytes: int
    header_timeout_seconds: float
    max_connections: int


class HeadRefused(Exception):
    """A request head over a limit: the status and detail to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        """Keep the answer."""
        super().__init__(detail)
        self.status = status
        self.detail = detail


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one; log both; give (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as exc:
            logger.warning("open files: soft limit %s kept, hard %s: %s", soft, hard, exc)
        else:
            soft = hard
    logger.info("open files: soft limit %s, hard limit %s", soft, hard)
    return soft, hard


def connection_cap(configured: int, open_file_limit: int, reserve: int) -> int:
    """Give the client connection cap: the setting, lowered to what the file limit allows.

    `reserve` descriptors are kept for everything else (listening socket, database, logs).
    """
    allowed = max(1, open_file_limit - reserve)
    if configured > allowed:
        logger.warning(
            "client connection cap lowered from %s to %s by the open file limit %s",
            configured,
            allowed,
            open_file_limit,
        )
        return allowed
    return configured


def bounded_protocol(limits: EdgeLimits) -> type[BoundedHttpToolsProtocol]:
    """Give the protocol class uvicorn should use (`uvicorn.Config(http=...)`) for `limits`."""
    namespace = {"limits": limits, "waiting": {}, "idle": {}}
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), namespace)


def json_answer(status: int, detail: str, extra: list[tuple[bytes, bytes]]) -> bytes:
    """Give a whole `Connection: close` response with `{"detail": detail}` as its body."""
    body = json.dumps({"detail": detail}).encode()
    headers = [
        *extra,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    lines = [STATUS_LINE[status]]
    lines += [name + b": " + value + b"\r\n" for name, value in headers]
    return b"".join([*lines, b"\r\n", body])


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the limits of `limits` (see the module docstring)."""

    limits: ClassVar[EdgeLimits]
    #: This server's connections waiting for a head, the longest waiting first.
    waiting: ClassVar[dict[BoundedHttpToolsProtocol, None]]
    #: This server's kept-alive connections waiting for a next request, the oldest first.
    idle: ClassVar[dict[BoundedHttpToolsProtocol, None]]

    _head_timer: TimerHandle | None = None
    _in_head = True
    _head_bytes = 0
    _header_count = 0
    _unparsed_bytes = 0
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Take the connection, or make room for it, or refuse it with 503."""
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            logger.warning("client connection cap %s reached: 503", self.limits.max_connections)
            self.refuse_as_too_many()
            return
        self._start_head_timer()

    def _make_room(self) -> bool:
        if self.idle:
            next(iter(self.idle)).transport.close()
            return True
        if self.waiting:
            logger.debug("client connection cap reached: the longest wait for a head ends")
            next(iter(self.waiting)).refuse_as_too_many()
            return True
        return False

    def refuse_as_too_many(self) -> None:
        """Answer 503 with Retry-After, and close."""
        retry = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
        self._answer_and_close(503, "Too many connections; try again later", retry)

    def on_response_complete(self) -> None:
        """Count the connection idle while uvicorn keeps it alive for a next request."""
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:
            self.idle[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the head timer too."""
        self.idle.pop(self, None)
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; answer a refused or malformed head with JSON."""
        if self._refused:
            return
        self.idle.pop(self, None)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:  # a callback's error too, as uvicorn has it
            if isinstance(exc.__context__, HeadRefused):
                self._refuse(exc.__context__)
            else:
                logger.warning("malformed request head: 400")
                self._answer_and_close(400, "Invalid HTTP request")
            return
        if self._in_head:
            self._unparsed_bytes += len(data)
            if self._unparsed_bytes > self.limits.max_head_bytes:
                self._refuse(HeadRefused(431, self._head_too_large()))

    def _head_too_large(self) -> str:
        return f"Request head is larger than {self.limits.max_head_bytes} bytes"

    def on_message_begin(self) -> None:
        """Start counting a new head, and its deadline unless the connection's still runs."""
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = self._header_count = self._unparsed_bytes = 0
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        """Bound the request target."""
        super().on_url(url)
        if len(self.url) > self.limits.max_header_line_bytes:
            detail = f"Request target is longer than {self.limits.max_header_line_bytes} bytes"
            raise HeadRefused(414, detail)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Bound the number of fields, each field's line and the whole head."""
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            raise HeadRefused(431, f"More than {self.limits.max_header_count} header fields")
        line = len(name) + len(value) + FIELD_OVERHEAD
        if line > self.limits.max_header_line_bytes:
            detail = f"A header line is longer than {self.limits.max_header_line_bytes} bytes"
            raise HeadRefused(431, detail)
        self._head_bytes += line
        if self._head_bytes + len(self.url) > self.limits.max_head_bytes:
            raise HeadRefused(431, self._head_too_large())
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """Stop the head deadline and hand the request to uvicorn."""
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()

    def _refuse(self, refusal: HeadRefused) -> None:
        logger.warning("request head refused with %s: %s", refusal.status, refusal.detail)
        self._answer_and_close(refusal.status, refusal.detail)

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout_seconds, self._head_timed_out
            )
            self.waiting[self] = None

    def _stop_head_timer(self) -> None:
        self.waiting.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self.waiting.pop(self, None)
        logger.info("no complete request head in %s s: 408", self.limits.header_timeout_seconds)
        self._answer_and_close(408, "The request head did not arrive in time")

    def _answer_and_close(
        self, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Answer (unless a response is on its way already), then close the connection."""
        self._refused = True
        self._stop_head_timer()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            headers = [*self.server_state.default_headers, *(extra or [])]
            self.transport.write(json_answer(status, detail, headers))
        self.transport.close()
