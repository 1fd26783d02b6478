"""Start the services as real processes on free ports, for live tests and nox sessions."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_SECONDS = 20.0
SHUTDOWN_SECONDS = 10.0


def free_port() -> int:
    """Give a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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

    With `verify` (the CA to trust), the service is expected to serve https.
    """
    port = free_port() if port is None else port
    with tempfile.TemporaryDirectory(prefix=f"{module}-") as workdir:
        log_path = Path(workdir) / "output.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "--port", str(port), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={**os.environ, **(env or {})},
            )
            scheme = "http" if verify is None else "https"
            service = ServiceProcess(module, port, process, log_path, scheme)
            try:
                wait_until_healthy(
                    service.base_url + health_path, process, log_path, verify or True
                )
                yield service
            finally:
                service.stop()
                service.final_log = log_path.read_text(errors="replace")
