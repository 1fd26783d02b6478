"""Start the services as real processes, for live tests and nox sessions: `run_service`.

`run_service` is the one way the tests start a server process (B, A, or any module
`python -m` runs with uvicorn). It binds the listening socket itself, on the port asked
for or on one the kernel picks, and hands it to the process (`tests.serve`), so the port
cannot be taken by anyone else between being chosen and being served.

`serve_in_thread` does the same for an app that exists only as an object in the test's
own process (a B altered for one contract test, a bare app behind a service's protocol
class): uvicorn serves it in a thread, on a socket bound here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

STARTUP_SECONDS = 20.0
SHUTDOWN_SECONDS = 10.0


def free_port() -> int:
    """Give a TCP port on 127.0.0.1 that nothing listens on right now.

    Only for a server that must bind the port itself (PostgreSQL); the number may be taken
    by another process before it does. `run_service` binds its socket instead, and
    `refused_port` holds one that refuses connections.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """Hold a port on 127.0.0.1 that refuses connections while the block runs.

    The socket is bound but not listening: a connection to it is refused, and no other
    process can bind the port meanwhile (what `free_port` alone cannot promise).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def listen(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """Give a listening socket on `host:port` (0: a port the kernel picks), to hand over."""
    return socket.create_server((host, port), backlog=2048)


def port_is_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether something already listens on `host:port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class ServiceProcess:
    """A service started with `python -m <module>`, and where its output goes."""

    module: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    scheme: str = "http"
    final_log: str | None = None

    @property
    def base_url(self) -> str:
        """Give the service's http (or https) URL."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Give everything the process printed so far (or in all, once it stopped)."""
        if self.final_log is not None:
            return self.final_log
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """Kill the process at once, as a crash would: no shutdown, no close frames."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> int:
        """Stop the process as Ctrl+C would, so its lifespan shuts down; kill it if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(SHUTDOWN_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def wait_until_healthy(
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Poll `url` until it answers 2xx; fail with the process's output if it never does."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1.0, verify=verify).is_success:
                return
        time.sleep(0.05)
    output = log_path.read_text(errors="replace")
    process.kill()
    process.wait()
    raise RuntimeError(f"{url} did not become healthy; the process printed:\n{output}")


@contextlib.contextmanager
def run_service(  # noqa: PLR0913 - each is a plain knob of how the process starts
    module: str,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    health_path: str = "/status",
    verify: ssl.SSLContext | None = None,
) -> Iterator[ServiceProcess]:
    """Run `python -m module --port PORT [args]` until the block ends, healthy before it starts.

    The socket on `port` (by default one the kernel picks) is bound and listening before the
    process starts, and handed to it (see `tests.serve`): `module` must serve with uvicorn.
    With `verify` (the CA to trust), the service is expected to serve https.
    """
    listener = listen(0 if port is None else port)
    port = listener.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix=f"{module}-") as workdir:
        log_path = Path(workdir) / "output.log"
        with listener, log_path.open("wb") as log:
            serve = [sys.executable, "-m", "tests.serve", "--fd", str(listener.fileno())]
            process = subprocess.Popen(
                [*serve, module, "--port", str(port), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={**os.environ, **(env or {})},
                pass_fds=[listener.fileno()],
            )
        # The process holds the socket now: once it stops, the port refuses connections.
        scheme = "http" if verify is None else "https"
        service = ServiceProcess(module, port, process, log_path, scheme)
        try:
            wait_until_healthy(service.base_url + health_path, process, log_path, verify or True)
            yield service
        finally:
            service.stop()
            service.final_log = log_path.read_text(errors="replace")


@contextlib.contextmanager
def serve_in_thread(config: uvicorn.Config) -> Iterator[int]:
    """Serve `config`'s app with uvicorn in a thread until the block ends; give its port.

    The socket listens before the block starts, so there is nothing to wait for: a client
    that connects before uvicorn has started (its lifespan included) is queued by the
    kernel and served once it has.
    """
    listener = listen()
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_SECONDS)
        listener.close()
