"""An anyio-native, keep-alive pooled HTTP/1.1 transport for ``httpx.AsyncClient``.

Why
---
``httpx.AsyncHTTPTransport`` (httpcore + h11) spends most of its per-request CPU in
connection-pool bookkeeping that walks every pooled connection on each request
(checking socket readability through anyio's ``extra()`` machinery), plus h11's
state machines and a timeout scope per socket operation.  In a gateway that cost
dominates and grows with concurrency (py-spy on A under wrk at 32 connections: a
third of A's samples in httpcore's ``_assign_requests_to_connections``; the numbers
are in the README, Speed).  This transport keeps the ``httpx.AsyncClient`` API (it is a plain
``httpx.AsyncBaseTransport``) and does the minimum per request:

* one socket write for head + (non-streaming, <= 64 KiB) body,
* one cancel scope per request for the write + response-head phases (its deadline
  is moved when the phase changes) instead of one per socket operation,
* responses parsed by llhttp through httptools' ``HttpResponseParser`` (the parser
  uvicorn[standard] serves with), fed each received buffer once: status line, headers,
  Content-Length / chunked bodies and 1xx skipping are llhttp's, with its strict rules
  (RFC 9112: bare LF, a bad version or chunk size, Transfer-Encoding with Content-Length
  are refused); left to this module are what llhttp does not know: HEAD answers, bodies
  that run until the server closes, a bound on the head's size, a reason phrase without
  controls, and Transfer-Encoding other than plain ``chunked`` (refused, not passed on).
  It replaced a hand-written parser that let 13 of 16 malformed answers through (issue
  10); it costs about 1 us more per answer (7 against 6 us for a small JSON answer, in
  a loop), under 1 % of what a request through A costs,
* a LIFO keep-alive pool per origin whose slots are an ``anyio.Semaphore`` taken
  with ``acquire_nowait()`` first, so the uncontended path never yields,
* a body that arrived together with the head (the usual case for small JSON
  responses) is returned fully buffered and its connection goes back to the pool
  before ``handle_async_request`` returns.

Usage::

    client = httpx.AsyncClient(
        base_url="http://service-b:8080",
        transport=PooledHTTP11Transport(
            limits=httpx.Limits(
                max_connections=100, max_keepalive_connections=100, keepalive_expiry=4.0
            )
        ),
        timeout=httpx.Timeout(5.0),
        trust_env=False,
    )

Everything is anyio-native (``anyio.connect_tcp``, ``anyio.CancelScope``,
``anyio.Semaphore``) so the same object works under asyncio (incl. uvloop) and
trio.  One transport instance must only be used from one event loop at a time
(the same holds for httpx's own pool).

What is delegated
-----------------
Requests this transport does not implement go unchanged to a wrapped fallback
transport (default: ``httpx.AsyncHTTPTransport`` with the same limits):
non-``http`` schemes (``https`` ...), requests with an ``Upgrade`` header
(WebSockets via httpx-ws need httpcore's ``network_stream`` response extension)
and requests with an ``Expect`` header.  Responses from this transport carry the
``http_version`` and ``reason_phrase`` extensions but no ``network_stream``.

Errors
------
``ConnectError``, ``ConnectTimeout``, ``WriteError``, ``WriteTimeout``,
``ReadError``, ``ReadTimeout``, ``PoolTimeout``, ``RemoteProtocolError`` and
``LocalProtocolError``, with timeouts taken from ``request.extensions["timeout"]``
(connect / write / pool per operation, read = max time between received chunks).

Stale keep-alive connections
----------------------------
Before an idle connection is reused its socket is polled with a zero timeout: an
idle HTTP/1.1 socket that is readable has EOF, RST or unsolicited bytes pending,
so it is discarded.  If a reused connection still dies before the first response
byte (the server closed it while the request was in flight), idempotent requests
with a non-streaming body are retried once on a fresh connection; other requests
raise ``RemoteProtocolError`` / ``ReadError`` / ``WriteError``.
"""

from __future__ import annotations

import math
import re
import select
from collections.abc import AsyncIterator
from typing import Final

import anyio
import anyio.abc
import httptools
import httpx

__all__ = ["IDEMPOTENT_METHODS", "PooledHTTP11Transport", "ReusedConnectionClosed"]

_READ_SIZE: Final = 64 * 1024
#: Head and body go out in one write when the body is at most this big.
_COALESCE_LIMIT: Final = 64 * 1024
_DEFAULT_MAX_HEAD: Final = 64 * 1024
_MIN_STATUS: Final = 100
_MAX_STATUS: Final = 999
_SWITCHING_PROTOCOLS: Final = 101
_NO_BODY_STATUSES: Final = frozenset({204, 304})
#: Requests that may be sent twice: RFC 9110 section 9.2.2.
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name
# RFC 9110 section 5.5: a field value holds visible octets, spaces and tabs, never controls.
_NOT_IN_FIELD_VALUE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=100, max_keepalive_connections=100, keepalive_expiry=4.0
)

_Key = tuple[str, int]  # (host, port) of an upstream
_HeaderList = list[tuple[bytes, bytes]]
_ByteStream = httpx.AsyncByteStream | httpx.SyncByteStream


def _is_interim(status: int) -> bool:
    """Return True for 1xx responses other than 101 (these are skipped)."""
    return status // 100 == 1 and status != _SWITCHING_PROTOCOLS


class ReusedConnectionClosed(httpx.RemoteProtocolError):
    """A kept-alive connection turned out closed before any byte of the answer arrived.

    The server did not answer this request on it. Raised when the transport does not
    retry by itself (``retry_stale=False``, or a request that may not be repeated), so the
    caller can decide: an idempotent request may be sent again.
    """


class _StaleConnectionError(Exception):
    """A *reused* connection failed before any response byte was received."""

    def __init__(self, message: str, kind: type[httpx.TransportError]) -> None:
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------- #
# Response parsing: llhttp (httptools), fed the bytes as they arrive.
# --------------------------------------------------------------------------- #
class _Stop(Exception):
    """Raised in a parser callback to stop parsing where the message ends for us."""


class _Answer:
    """One response on a connection, parsed by llhttp through httptools' callbacks.

    ``feed()`` takes the bytes as they arrive; the head is complete when ``head_done``
    is set, the message when ``done`` is. Body chunks collect in ``body`` for the caller
    to take. Interim (1xx) responses are skipped. Anything after the end of the message
    makes ``extra`` true: the connection is then unusable.
    """

    __slots__ = (
        "body",
        "chunked",
        "close_delimited",
        "done",
        "extra",
        "head_buf",
        "head_done",
        "head_size",
        "headers",
        "interims",
        "is_head",
        "max_head",
        "parser",
        "persistent",
        "reason",
        "status",
        "version",
    )

    def __init__(self, is_head: bool, max_head: int) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.is_head = is_head
        self.max_head = max_head
        self.headers: _HeaderList = []
        self.reason = b""
        self.status = 0
        self.version = b"HTTP/1.1"
        self.persistent = False  # what llhttp says of the connection, at the end of the head
        self.head_done = False
        self.done = False
        self.extra = False
        self.close_delimited = False
        self.chunked = False
        self.body: list[bytes] = []
        self.interims = 0
        self.head_size = 0  # bytes fed before the head was complete
        self.head_buf = b""  # for HEAD only: where its head ends, to tell what follows

    # ------------------------------------------------------------ llhttp callbacks
    def on_message_begin(self) -> None:
        """Start a response; one after the final response is bytes that do not belong."""
        if self.done:
            self.extra = True
            raise _Stop
        self.headers = []
        self.reason = b""

    def on_status(self, data: bytes) -> None:
        """Collect the reason phrase."""
        self.reason += data

    def on_header(self, name: bytes, value: bytes) -> None:
        """Collect one header field."""
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        """Check the final head; a HEAD response ends with it."""
        status = self.parser.get_status_code()
        if _is_interim(status):
            return
        if status == _SWITCHING_PROTOCOLS:
            raise httpx.RemoteProtocolError("Unexpected 101 Switching Protocols.")
        self._check_head(status)
        self.status = status
        version = self.parser.get_http_version()
        self.version = b"HTTP/" + version.encode()
        # RFC 9112 section 6.1: chunked in an HTTP/1.0 answer means the connection closes.
        chunked_10 = version == "1.0" and self.chunked
        self.persistent = self.parser.should_keep_alive() and not chunked_10
        self.head_done = True
        if self.is_head:
            self.done = True
            raise _Stop  # llhttp would wait for the body its Content-Length announces

    def on_body(self, data: bytes) -> None:
        """Collect a body chunk (de-chunked by llhttp)."""
        self.body.append(data)

    def on_message_complete(self) -> None:
        """End of a message: an interim one, or the answer."""
        if not self.head_done:
            self.interims += 1
            return
        self.done = True

    # ------------------------------------------------------------ what llhttp leaves to us
    def _check_head(self, status: int) -> None:
        """Refuse what llhttp lets through, and find a body that runs until EOF."""
        if not _MIN_STATUS <= status <= _MAX_STATUS:
            raise httpx.RemoteProtocolError(f"Invalid status code {status}.")
        if _NOT_IN_FIELD_VALUE.search(self.reason) is not None:
            raise httpx.RemoteProtocolError("Invalid reason phrase.")
        codings: list[bytes] = []
        has_length = False
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"transfer-encoding":
                codings.append(value)
            elif lowered == b"content-length":
                has_length = True
        self.chunked = bool(codings)
        if codings and (len(codings) > 1 or codings[0].strip(b" \t").lower() != b"chunked"):
            # Only plain chunked is decoded: "gzip, chunked" would pass on gzip as identity.
            raise httpx.RemoteProtocolError(f"Unsupported Transfer-Encoding: {codings!r}")
        no_body = self.is_head or status in _NO_BODY_STATUSES
        self.close_delimited = not (no_body or codings or has_length)

    # ------------------------------------------------------------ feeding
    @property
    def keep_alive(self) -> bool:
        """Whether the connection may carry another request after this answer."""
        return self.persistent and not (self.extra or self.close_delimited)

    def feed(self, data: bytes) -> None:
        """Parse received bytes; raise ``RemoteProtocolError`` for a malformed answer."""
        if self.done:
            self.extra = True
            return
        before = self.head_size
        was_done = self.head_done
        if not was_done:
            self.head_size += len(data)
            if self.is_head:
                self.head_buf += data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._stopped(exc)
        except httptools.HttpParserUpgrade as exc:
            raise httpx.RemoteProtocolError("Unexpected protocol upgrade.") from exc
        except httptools.HttpParserError as exc:
            self._malformed(exc)
        if not was_done and before + len(data) > self.max_head and self._too_large(before, data):
            raise httpx.RemoteProtocolError("Response head too large.")

    def _too_large(self, before: int, data: bytes) -> bool:
        """Whether the head, `before` bytes and then some of `data`, is over the limit."""
        if not self.head_done:
            return True
        # A head completed in `data` ends at its CRLFCRLF (or straddles its start).
        end = max(data.find(b"\r\n\r\n"), 0)
        return before + end + 4 > self.max_head

    def _stopped(self, exc: httptools.HttpParserCallbackError) -> None:
        """Handle a callback that stopped the parser: with an error of ours, or `_Stop`."""
        cause = exc.__context__
        if isinstance(cause, httpx.RemoteProtocolError):
            raise cause from None
        if not isinstance(cause, _Stop):  # pragma: no cover - our callbacks raise no other
            raise httpx.RemoteProtocolError(f"Malformed response: {exc}") from exc
        if self.is_head and not self.extra:
            self._head_leftover()

    def _malformed(self, exc: httptools.HttpParserError) -> None:
        """Handle bytes llhttp refused: a malformed answer, or garbage after a complete one."""
        if not self.done:
            raise httpx.RemoteProtocolError(f"Malformed response: {exc}") from exc
        self.extra = True

    def _head_leftover(self) -> None:
        """After a HEAD answer's head, see whether more bytes came than its heads."""
        pos = 0
        for _ in range(self.interims + 1):  # llhttp checked each head ends at its CRLFCRLF
            pos = self.head_buf.index(b"\r\n\r\n", pos) + 4
        self.extra = len(self.head_buf) > pos
        self.head_buf = b""

    def eof(self) -> None:
        """Handle the peer closing the connection; raise if that is premature."""
        if self.close_delimited and self.head_done:
            self.done = True
            return
        raise httpx.RemoteProtocolError(
            "Server disconnected before the response body was complete."
        )

    def take_body(self) -> list[bytes]:
        """Give the body chunks received so far, and forget them."""
        body, self.body = self.body, []
        return body


# --------------------------------------------------------------------------- #
# Outgoing requests
# --------------------------------------------------------------------------- #
class _Outgoing:
    """A request serialised for the wire plus what the exchange needs to know."""

    __slots__ = (
        "body_stream",
        "chunked",
        "close_after",
        "extra_body",
        "first_write",
        "is_head",
        "read_timeout",
        "reading",
        "retryable",
        "write_timeout",
    )

    def __init__(self) -> None:
        self.first_write = b""
        self.extra_body: bytes | None = None
        self.body_stream: _ByteStream | None = None
        self.chunked = False
        self.close_after = False
        self.is_head = False
        self.retryable = False
        self.write_timeout: float | None = None
        self.read_timeout: float | None = None
        self.reading = False  # phase of the exchange, to tell read from write timeouts


def _serialise(request: httpx.Request, retry_stale: bool) -> _Outgoing | None:
    """Build the request head; None if the request must go to the fallback."""
    out = _Outgoing()
    method = request.method
    parts = [method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    raw_headers = request.headers.raw
    for name, value in raw_headers:
        if not _TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"Illegal header name {name[:40]!r}.")
        lname = name.lower()
        if lname in {b"upgrade", b"expect"}:
            return None
        if lname == b"transfer-encoding":
            out.chunked = b"chunked" in value.lower()
        elif lname == b"connection":
            out.close_after = b"close" in value.lower()
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    # Header injection guard: the only CR/LF allowed are our own line ends
    # (one C-level pass over the head instead of a check per value).
    n_lines = len(raw_headers) + 2
    if head.count(b"\n") != n_lines or head.count(b"\r") != n_lines:
        raise httpx.LocalProtocolError("Illegal CR/LF in request line or header.")

    body: bytes | None
    try:
        body = request.content  # non-streaming bodies are already in memory
    except httpx.RequestNotRead:
        body = None
    if body is None:
        out.first_write = head
        out.body_stream = request.stream
    elif len(body) <= _COALESCE_LIMIT:
        out.first_write = head + body if body else head
    else:
        out.first_write = head
        out.extra_body = body
    out.is_head = method == "HEAD"
    out.retryable = retry_stale and body is not None and method in IDEMPOTENT_METHODS
    return out


# --------------------------------------------------------------------------- #
# Connections and the pool
# --------------------------------------------------------------------------- #
class _Conn:
    """One pooled TCP connection."""

    __slots__ = ("_poll", "expires_at", "key", "requests", "stream")

    def __init__(self, stream: anyio.abc.SocketStream, key: _Key) -> None:
        self.stream = stream
        self.key = key
        self.expires_at = math.inf
        self.requests = 0  # number of requests started on this connection
        self._poll: select.poll | None = None
        get_socket = stream.extra_attributes.get(anyio.abc.SocketAttribute.raw_socket)
        sock = get_socket() if get_socket is not None else None
        if sock is not None and hasattr(select, "poll"):
            try:
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLIN)
            except (OSError, ValueError):  # pragma: no cover - exotic sockets
                return
            self._poll = poller

    def looks_dead(self) -> bool:
        """Whether an *idle* connection is unusable.

        An idle HTTP/1.1 connection has nothing to read: a readable socket means
        EOF (the server closed it), RST or unsolicited bytes.  On asyncio the loop
        may already have consumed the EOF, but an EOF'd socket stays readable
        (level triggered) and a reset one gets closed (POLLNVAL), so polling the
        raw fd detects both on asyncio, uvloop and trio.
        """
        poller = self._poll
        if poller is None:  # pragma: no cover - no poll() on this platform
            return False
        try:
            return bool(poller.poll(0))
        except OSError:  # pragma: no cover
            return True


class _Pool:
    """Keep-alive connections per origin with a bound on concurrent requests."""

    def __init__(self, limits: httpx.Limits) -> None:
        self.max_conns = limits.max_connections
        self.max_idle = limits.max_keepalive_connections
        expiry = limits.keepalive_expiry
        self.expiry = math.inf if expiry is None else float(expiry)
        self.idle: dict[_Key, list[_Conn]] = {}
        self.n_idle = 0
        self.n_conns = 0  # open or connecting connections, idle or in use
        # Created lazily inside the event loop: anyio primitives bind to a backend.
        self.slots: anyio.Semaphore | None = None
        self.closed = False

    async def acquire(
        self, key: _Key, pool_timeout: float | None, connect_timeout: float | None, fresh: bool
    ) -> _Conn:
        """Take a request slot, then an idle connection (unless ``fresh``) or a new one."""
        slots = self.slots
        if slots is None and self.max_conns is not None:
            slots = self.slots = anyio.Semaphore(self.max_conns)
        if slots is not None:
            try:
                slots.acquire_nowait()  # uncontended: no event-loop round trip
            except anyio.WouldBlock:
                with anyio.move_on_after(pool_timeout) as scope:
                    await slots.acquire()
                if scope.cancelled_caught:
                    raise httpx.PoolTimeout("Timed out waiting for a pooled connection.") from None
        try:
            conn = None if fresh else await self._pop_idle(key)
            if conn is None:
                conn = await self._new_conn(key, connect_timeout)
        except BaseException:
            if slots is not None:
                slots.release()
            raise
        return conn

    async def _pop_idle(self, key: _Key) -> _Conn | None:
        stack = self.idle.get(key)
        if not stack:
            return None
        now = anyio.current_time()
        while stack:
            conn = stack.pop()  # LIFO: hottest connection, let the others expire
            self.n_idle -= 1
            if conn.expires_at > now and not conn.looks_dead():
                return conn
            self.n_conns -= 1
            await anyio.aclose_forcefully(conn.stream)
        return None

    async def _new_conn(self, key: _Key, connect_timeout: float | None) -> _Conn:
        if self.max_conns is not None and self.n_conns >= self.max_conns:
            await self._evict_one_idle()
        host, port = key
        stream: anyio.abc.SocketStream | None = None
        self.n_conns += 1
        try:
            with anyio.move_on_after(connect_timeout):
                stream = await anyio.connect_tcp(host, port)
        except OSError as exc:
            self.n_conns -= 1
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            self.n_conns -= 1
            raise
        if stream is None:
            self.n_conns -= 1
            raise httpx.ConnectTimeout(f"Timed out connecting to {host}:{port}.")
        return _Conn(stream, key)

    async def _evict_one_idle(self) -> None:
        """Close one idle connection to make room: the first origin's longest idle one."""
        for stack in self.idle.values():
            if stack:
                conn = stack.pop(0)
                self.n_idle -= 1
                self.n_conns -= 1
                await anyio.aclose_forcefully(conn.stream)
                return

    async def release(self, conn: _Conn, reusable: bool) -> None:
        """Return a connection to the pool (or close it) and free its slot."""
        if self.slots is not None:
            self.slots.release()
        if reusable and not self.closed and (self.max_idle is None or self.n_idle < self.max_idle):
            conn.expires_at = anyio.current_time() + self.expiry
            stack = self.idle.get(conn.key)
            if stack is None:
                stack = self.idle[conn.key] = []
            stack.append(conn)
            self.n_idle += 1
            return
        self.n_conns -= 1
        await anyio.aclose_forcefully(conn.stream)

    async def aclose(self) -> None:
        """Close idle connections; in-use ones are closed when released."""
        self.closed = True
        idle = [conn for stack in self.idle.values() for conn in stack]
        self.idle.clear()
        self.n_idle = 0
        for conn in idle:
            self.n_conns -= 1
            await anyio.aclose_forcefully(conn.stream)


async def _receive_body(conn: _Conn, read_timeout: float | None) -> bytes:
    """Receive body bytes with a per-read timeout; b"" on EOF."""
    try:
        if read_timeout is None:
            return await conn.stream.receive(_READ_SIZE)
        with anyio.CancelScope(deadline=anyio.current_time() + read_timeout):
            return await conn.stream.receive(_READ_SIZE)
    except anyio.EndOfStream:
        return b""
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        raise httpx.ReadError(f"Connection lost while reading the body: {exc!r}") from exc
    raise httpx.ReadTimeout("Timed out while reading the response body.")


# --------------------------------------------------------------------------- #
# Response streams
# --------------------------------------------------------------------------- #
class _OneShot:
    """Async iterator yielding one bytes object (nothing if it is empty).

    Response streams use plain iterator objects rather than async generators: an
    abandoned async generator needs event-loop finalisation (trio warns about it),
    while these need none; the connection is handled by the stream's aclose().
    """

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    def __aiter__(self) -> _OneShot:
        return self

    async def __anext__(self) -> bytes:
        body = self._body
        if not body:
            raise StopAsyncIteration
        self._body = b""
        return body


class _BufferedBody(httpx.AsyncByteStream):
    """Body that was read completely before the response was returned."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield the body once."""
        return _OneShot(self._body)

    async def aclose(self) -> None:
        """Nothing to release: the connection went back to the pool already."""


class _StreamingBody(httpx.AsyncByteStream):
    """Body still being received; owns the connection until finished or closed.

    It is its own async iterator (see ``_OneShot`` for why not a generator).
    """

    def __init__(
        self, pool: _Pool, conn: _Conn, answer: _Answer, first: list[bytes], out: _Outgoing
    ) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self._answer = answer
        self._pending = [chunk for chunk in reversed(first) if chunk]  # a stack
        self._read_timeout = out.read_timeout
        self._close_after = out.close_after

    def __aiter__(self) -> _StreamingBody:
        return self

    async def __anext__(self) -> bytes:
        """Return the next decoded chunk; give the connection back at the end."""
        pending = self._pending
        answer = self._answer
        while not pending:
            conn = self._conn
            if conn is None:
                raise StopAsyncIteration
            if answer.done:
                await self._finish(reusable=answer.keep_alive and not self._close_after)
                raise StopAsyncIteration
            try:
                data = await _receive_body(conn, self._read_timeout)
                if data:
                    answer.feed(data)
                    pending.extend(reversed([c for c in answer.take_body() if c]))
                else:
                    answer.eof()  # raises unless the body is close-delimited
            except BaseException:
                await self._finish(reusable=False)
                raise
        return pending.pop()

    async def _finish(self, reusable: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn, reusable)

    async def aclose(self) -> None:
        """Close; a connection whose body was not read to the end is unusable."""
        await self._finish(reusable=False)


# --------------------------------------------------------------------------- #
# The transport
# --------------------------------------------------------------------------- #
class PooledHTTP11Transport(httpx.AsyncBaseTransport):
    """Keep-alive pooled, anyio-native HTTP/1.1 transport for plain ``http``."""

    def __init__(
        self,
        *,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        fallback: httpx.AsyncBaseTransport | None = None,
        retry_stale: bool = True,
        max_head_size: int = _DEFAULT_MAX_HEAD,
    ) -> None:
        """Create the transport (no I/O happens here).

        :param limits: ``max_connections`` bounds concurrent requests and open
            connections (``None``: unbounded), ``max_keepalive_connections`` bounds
            idle pooled connections, ``keepalive_expiry`` is the idle lifetime in
            seconds; keep it below the server's keep-alive timeout (uvicorn: 5 s).
        :param fallback: transport for everything not handled here (default:
            ``httpx.AsyncHTTPTransport(limits=limits)``).
        :param retry_stale: retry idempotent, non-streaming requests once on a
            fresh connection when a reused one dies before any response byte.
        :param max_head_size: maximum size of a response head in bytes.
        """
        self._pool = _Pool(limits)
        self._fallback = (
            fallback if fallback is not None else httpx.AsyncHTTPTransport(limits=limits)
        )
        self._retry_stale = retry_stale
        self._max_head = max_head_size

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request and return the response (body may still be streaming)."""
        url = request.url
        out = _serialise(request, self._retry_stale) if url.scheme == "http" else None
        if out is None:
            return await self._fallback.handle_async_request(request)
        if self._pool.closed:
            raise RuntimeError("Transport is closed.")
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        out.write_timeout = timeouts.get("write")
        out.read_timeout = timeouts.get("read")
        key = (url.host, url.port or 80)
        pool = self._pool

        fresh = False
        while True:
            conn = await pool.acquire(key, timeouts.get("pool"), timeouts.get("connect"), fresh)
            try:
                answer = await self._exchange(conn, out)
            except _StaleConnectionError as exc:
                await pool.release(conn, reusable=False)
                if out.retryable and not fresh:
                    fresh = True  # retry once, on a new connection
                    continue
                raise ReusedConnectionClosed(str(exc), request=request) from None
            except BaseException:
                await pool.release(conn, reusable=False)
                raise
            break

        extensions = {"http_version": answer.version, "reason_phrase": answer.reason}
        chunks = answer.take_body()
        stream: httpx.AsyncByteStream
        if answer.done:
            # Fast path: the whole body is here; give the connection back now.
            await pool.release(conn, answer.keep_alive and not out.close_after)
            stream = _BufferedBody(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        else:
            stream = _StreamingBody(pool, conn, answer, chunks, out)
        return httpx.Response(
            answer.status, headers=answer.headers, stream=stream, extensions=extensions
        )

    async def aclose(self) -> None:
        """Close idle connections and the fallback transport."""
        await self._pool.aclose()
        await self._fallback.aclose()

    async def _exchange(self, conn: _Conn, out: _Outgoing) -> _Answer:
        """Send the request and read the response head.

        One cancel scope covers both phases; its deadline starts as the write
        timeout and is re-armed with the read timeout before every receive
        (httpx's read timeout is the maximum time between received chunks).
        """
        reused = conn.requests > 0
        conn.requests += 1
        out.reading = False
        stream = conn.stream
        write_timeout = out.write_timeout
        scope = anyio.CancelScope(
            deadline=math.inf if write_timeout is None else anyio.current_time() + write_timeout
        )
        with scope:
            try:
                await stream.send(out.first_write)
                if out.extra_body is not None:
                    await stream.send(out.extra_body)
                elif out.body_stream is not None:
                    await _send_stream(stream, out, scope)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                msg = f"Connection lost while sending the request: {exc!r}"
                if reused:
                    raise _StaleConnectionError(msg, httpx.WriteError) from exc
                raise httpx.WriteError(msg) from exc
            return await self._read_head(conn, out, scope, reused)
        # Only reached when our own deadline cancelled the scope.
        if out.reading:
            raise httpx.ReadTimeout("Timed out while waiting for the response.")
        raise httpx.WriteTimeout("Timed out while sending the request.")

    async def _read_head(
        self, conn: _Conn, out: _Outgoing, scope: anyio.CancelScope, reused: bool
    ) -> _Answer:
        """Receive until a final (non-1xx) response head is complete."""
        out.reading = True
        stream = conn.stream
        read_timeout = out.read_timeout
        answer = _Answer(out.is_head, self._max_head)
        received_any = False
        while not answer.head_done:
            # The write timeout ends with the write: waiting for the answer is bounded by
            # the read timeout alone, or not at all.
            scope.deadline = (
                math.inf if read_timeout is None else anyio.current_time() + read_timeout
            )
            data = await _receive_head_bytes(stream, reused, received_any)
            received_any = True
            answer.feed(data)
        return answer


async def _receive_head_bytes(
    stream: anyio.abc.SocketStream, reused: bool, received_any: bool
) -> bytes:
    """Receive response-head bytes, mapping EOF and resets to httpx errors.

    A *reused* connection failing before any response byte raises
    ``_StaleConnectionError`` so the caller can retry on a fresh connection.
    """
    try:
        data = await stream.receive(_READ_SIZE)
    except anyio.EndOfStream:
        data = b""
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        msg = f"Connection lost while reading the response: {exc!r}"
        if reused and not received_any:
            raise _StaleConnectionError(msg, httpx.ReadError) from exc
        raise httpx.ReadError(msg) from exc
    if data:
        return data
    if received_any:
        raise httpx.RemoteProtocolError("Server disconnected in the middle of the response head.")
    msg = "Server disconnected without sending a response."
    if reused:
        raise _StaleConnectionError(msg, httpx.RemoteProtocolError)
    raise httpx.RemoteProtocolError(msg)


async def _send_stream(
    stream: anyio.abc.SocketStream, out: _Outgoing, scope: anyio.CancelScope
) -> None:
    """Send a streaming request body, chunk-framed if the request says so."""
    body_stream = out.body_stream
    if not isinstance(body_stream, httpx.AsyncByteStream):
        raise TypeError("Attempted to send a sync request body with an async transport.")
    write_timeout = out.write_timeout
    async for chunk in body_stream:
        if not chunk:
            continue
        if write_timeout is not None:  # the write timeout is per write operation
            scope.deadline = anyio.current_time() + write_timeout
        if out.chunked:
            await stream.send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            await stream.send(chunk)
    if out.chunked:
        await stream.send(b"0\r\n\r\n")
