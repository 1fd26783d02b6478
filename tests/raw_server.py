"""A scripted raw HTTP server: exact bytes on the wire, for what a real server never sends.

Each request is answered by the script for its path, on a thread per connection; the
connection goes on for as long as the scripts say so. A's transport tests use it for
framing and parser edge cases, A's gateway tests as a B that misbehaves on the wire.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Collection, Mapping

Script = Callable[[socket.socket], bool]  # write the response; True = keep connection


def send(data: bytes) -> Script:
    """Script: send data, keep the connection."""

    def script(conn: socket.socket) -> bool:
        """Write the canned response."""
        conn.sendall(data)
        return True

    return script


def send_close(data: bytes) -> Script:
    """Script: send data, then close."""

    def script(conn: socket.socket) -> bool:
        """Write the canned response."""
        conn.sendall(data)
        return False

    return script


class RawServer:
    """Thread-per-connection server replaying `scripts` keyed by request path.

    A request's body is read before its script runs, except on the paths in
    `unread_bodies`, whose scripts stand for a server that stops reading.
    """

    def __init__(self, scripts: Mapping[str, Script], unread_bodies: Collection[str] = ()) -> None:
        """Listen on a free port and start accepting."""
        self.scripts = scripts
        self.unread_bodies = unread_bodies
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        """Accept connections, one thread each."""
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """Read requests and reply with the script for their path."""
        buf = b""
        with contextlib.suppress(OSError), conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                with self._lock:
                    self.requests.append(head)
                path = head.split(b" ", 2)[1].decode()
                script = self.scripts[path]
                if path not in self.unread_bodies:
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buf) < length:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buf += data
                    buf = buf[length:]
                if not script(conn):
                    return

    def close(self) -> None:
        """Stop listening."""
        self.sock.close()
