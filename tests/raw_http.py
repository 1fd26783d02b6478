"""A raw-socket HTTP/1.1 client: exact request bytes, for the edge limits of both services.

httpx (rightly) refuses to send most of what these tests send: 10,000 header lines,
megabyte lines, a head that stops half way. Every read here is bounded by a socket timeout,
so a server that never answers fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: The longest any single read may wait, in seconds: a bound, not an expectation.
READ_BOUND_SECONDS = 10.0


@dataclass
class RawResponse:
    """What came back on one connection: the first response, and whether the server closed."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    closed: bool = False

    def json(self) -> Any:
        """Give the body as JSON."""
        return json.loads(self.body)


def head(
    fields: Iterable[tuple[str, str]] = (),
    target: str = "/status",
    method: str = "GET",
    host: str = "127.0.0.1",
) -> bytes:
    """Give a request head: the request line, `Host`, then `fields`, then the blank line."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@contextlib.contextmanager
def connection(port: int, timeout: float = READ_BOUND_SECONDS) -> Iterator[socket.socket]:
    """Open a TCP connection to 127.0.0.1:port, each read bounded by `timeout`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        yield sock
    finally:
        sock.close()


def read_until_closed(sock: socket.socket) -> bytes:
    """Read everything until the server closes; a reset after some bytes counts as closed.

    Raises TimeoutError when the server neither sends nor closes within the read bound.
    """
    received = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return bytes(received)
        if not chunk:
            return bytes(received)
        received += chunk


def parse(data: bytes, *, closed: bool) -> RawResponse:
    """Parse the first response in `data` (a head and a Content-Length body)."""
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return RawResponse(int(status_line.split()[1]), headers, rest[:length], closed)


def read_response(sock: socket.socket) -> RawResponse:
    """Read one response on a connection the server keeps open."""
    received = bytearray()
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return parse(bytes(received), closed=True)
        received += chunk
    response = parse(bytes(received), closed=False)
    length = int(response.headers.get("content-length", "0"))
    body = bytes(received).partition(b"\r\n\r\n")[2]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    response.body = body[:length]
    return response


def exchange(port: int, data: bytes) -> RawResponse:
    """Send `data` on a new connection, then read until the server closes."""
    with connection(port) as sock:
        sock.sendall(data)
        return parse(read_until_closed(sock), closed=True)


def send_until_answered(sock: socket.socket, chunks: Iterable[bytes]) -> int:
    """Send chunks until the server answers (or stops taking them); give the bytes sent."""
    sent = 0
    for chunk in chunks:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            return sent
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return sent
        sent += len(chunk)
    return sent
