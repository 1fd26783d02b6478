"""Stress probes for the edge of both services: header floods, slow and silent clients.

- `PROBES` time a 10,000-header request and a 16 MiB header line against A and B (answer,
  milliseconds, growth of the server's RSS);
- open 600 silent connections and count how many the server closes within its head timeout;
- hold 1,100 silent connections against a service whose file limit is 1024 (soft and hard)
  and count the health checks answered meanwhile.

Every service runs as a real process (`python -m service_x`) on a free port; every wait is
bounded. Run: `python -m tests.stress.run -k edge_`.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from tests.live import ServiceProcess, free_port, run_service, wait_until_healthy
from tests.raw_http import connection, head, parse, read_response, read_until_closed
from tests.stress.run import Probe, Row

MIB = 1024 * 1024
#: The head timeout the services run with in these probes (the default is 10 s).
HEADER_TIMEOUT_SECONDS = 3.0
#: How much later than the head timeout a connection may close and still count.
CLOSE_SLACK_SECONDS = 2.0
SILENT_CONNECTIONS = 600
FILE_LIMIT = 1024
HELD_CONNECTIONS = 1100
HEALTH_CHECKS = 24
HEALTH_TIMEOUT_SECONDS = 1.0
#: A refusal of a bad head must come within this (issue 10).
REFUSAL_MS = 10.0
#: How much a refused 16 MiB line may grow the server's memory.
RSS_GROWTH_MIB = 8.0


def rss_mib(pid: int) -> float:
    """Give a process's resident memory in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def services(b_env: Mapping[str, str] | None = None) -> Iterator[dict[str, ServiceProcess]]:
    """Run B, and A in front of it, with `b_env` for both (their own prefixes)."""
    env = {"SERVICE_B_DATABASE_PATH": ":memory:", **(b_env or {})}
    with run_service("service_b", env=env) as b:
        a_env = {**env, "SERVICE_A_SERVICE_B_URL": b.base_url}
        with run_service("service_a", env=a_env) as a:
            yield {"A": a, "B": b}


def timed_refusal(service: ServiceProcess, request: bytes) -> tuple[int, float, float]:
    """Send `request`; give the status, the milliseconds to the answer, the RSS growth."""
    before = rss_mib(service.process.pid)
    started = time.perf_counter()
    with connection(service.port, timeout=60) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        try:  # the whole answer, not the close: the old code kept the connection open
            status = read_response(sock).status
        except (ConnectionResetError, IndexError):
            status = 0
        elapsed = (time.perf_counter() - started) * 1000
    return status, elapsed, rss_mib(service.process.pid) - before


def edge_header_floods() -> Iterator[Row]:
    """Time a 10,000-header request and a 16 MiB header line, against A and B."""
    floods = {
        "10k header lines": head([(f"X-Field-{i}", "v") for i in range(10_000)], "/items/1"),
        "16 MiB header line": head([("X-Huge", "v" * 16 * MIB)], "/items/1"),
    }
    with services() as running:
        for name, service in running.items():
            for flood, request in floods.items():
                status, ms, growth = timed_refusal(service, request)
                yield Row(
                    f"edge {name}: {flood}",
                    f"{status} in {ms:.1f} ms, RSS {growth:+.1f} MiB",
                    f"431 within {REFUSAL_MS:.0f} ms, RSS < +{RSS_GROWTH_MIB:.0f} MiB",
                    ok=status == 431 and ms < REFUSAL_MS and growth < RSS_GROWTH_MIB,
                )


def closed_within(socks: list[socket.socket], bound: float) -> tuple[int, float]:
    """Wait up to `bound` seconds for the server to close each socket; give count and time."""
    started = time.monotonic()
    pending = set(socks)
    while pending and (left := bound - (time.monotonic() - started)) > 0:
        readable, _, _ = select.select(list(pending), [], [], left)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                pending.discard(sock)
    return len(socks) - len(pending), time.monotonic() - started


def edge_silent_connections() -> Iterator[Row]:
    """600 connections that send nothing (or half a head), against A and B."""
    timeouts = {
        "SERVICE_A_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS),
        "SERVICE_B_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS),
    }
    bound = HEADER_TIMEOUT_SECONDS + CLOSE_SLACK_SECONDS
    with services(timeouts) as running:
        for name, service in running.items():
            socks = [
                socket.create_connection(("127.0.0.1", service.port), timeout=10)
                for _ in range(SILENT_CONNECTIONS)
            ]
            try:
                for sock in socks[::2]:  # half of them start a head and stop
                    sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
                closed, seconds = closed_within(socks, bound)
            finally:
                for sock in socks:
                    sock.close()
            yield Row(
                f"edge {name}: {SILENT_CONNECTIONS} silent/slow connections",
                f"{closed}/{SILENT_CONNECTIONS} closed in {seconds:.1f} s",
                f"all within {bound:.0f} s (head timeout {HEADER_TIMEOUT_SECONDS:.0f} s)",
                ok=closed == SILENT_CONNECTIONS,
            )


def limit_files() -> None:
    """Give the child process a file limit of 1024, soft and hard (runs in the child)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


@contextlib.contextmanager
def limited_service(module: str, env: Mapping[str, str]) -> Iterator[ServiceProcess]:
    """Run `python -m module` with a 1024 file limit, on a free port."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"{module}-") as workdir:
        log_path = Path(workdir) / "output.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "--port", str(port), "--log-level", "error"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={**os.environ, **env},
                preexec_fn=limit_files,  # noqa: PLW1509 - no threads run in this probe
            )
            service = ServiceProcess(module, port, process, log_path)
            try:
                wait_until_healthy(service.base_url + "/status", process, log_path)
                yield service
            finally:
                service.stop()


def health_checks(port: int) -> tuple[int, int]:
    """Check `/status` HEALTH_CHECKS times; give how many were answered, and how many 200."""
    answered = ok = 0
    for _ in range(HEALTH_CHECKS):
        with contextlib.suppress(OSError), connection(port, HEALTH_TIMEOUT_SECONDS) as sock:
            sock.sendall(head([("Connection", "close")]))
            received = read_until_closed(sock)
            if received:
                answered += 1
                ok += parse(received, closed=True).status == 200
    return answered, ok


def held_while(port: int, check: Callable[[int], tuple[int, int]]) -> tuple[int, int, int]:
    """Hold HELD_CONNECTIONS silent connections to `port` while `check` runs."""
    held: list[socket.socket] = []
    try:
        for _ in range(HELD_CONNECTIONS):
            with contextlib.suppress(OSError):
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        answered, ok = check(port)
    finally:
        for sock in held:
            sock.close()
    return len(held), answered, ok


def edge_file_limit() -> Iterator[Row]:
    """1,100 silent connections against each service under a 1024 file limit."""
    with limited_service("service_b", {"SERVICE_B_DATABASE_PATH": ":memory:"}) as b:
        a_env = {"SERVICE_A_SERVICE_B_URL": b.base_url}
        with limited_service("service_a", a_env) as a:
            for name, service in {"A": a, "B": b}.items():
                held, answered, ok = held_while(service.port, health_checks)
                yield Row(
                    f"edge {name}: {held} silent sockets, file limit {FILE_LIMIT}",
                    f"{answered}/{HEALTH_CHECKS} health checks answered ({ok} with 200)",
                    f"all answered 200 within {HEALTH_TIMEOUT_SECONDS:.0f} s each",
                    ok=ok == HEALTH_CHECKS,
                )


PROBES: list[Probe] = [edge_header_floods, edge_silent_connections, edge_file_limit]
