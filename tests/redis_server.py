"""A throwaway redis-server for the tests: on a free loopback port, in a temporary directory.

The session fixture `redis_server` starts one server, shared by the tests; `redis_fanout`
gives each test the settings of a fan-out through it on channels of its own (a prefix
nobody else uses), so tests never hear each other. `own_redis_server` starts a server for
one test alone, for the tests that stop and restart it. No mock: B's Redis fan-out is
tested against the real server.

The server is Debian's `redis-server` package (which `.ci/run` installs), found on PATH.
Without it the Redis tests are skipped with the reason, except under CI (`CI` set), where
they fail. The server keeps nothing on disk (`--save ""`, no append-only file).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.live import free_port

START_TIMEOUT_SECONDS = 30
MISSING = "redis-server is not installed (Debian: apt-get install redis-server; .ci/run does it)"


class RedisServer:
    """A redis-server on loopback that can be stopped and started again on the same port."""

    def __init__(self, binary: str, directory: Path) -> None:
        """Prepare a server run from `binary` in `directory`; `start` runs it."""
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Give the server's URL."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        assert self._process is None, "already running"
        log = (self.directory / "server.log").open("ab")
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                told = (self.directory / "server.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"redis-server did not start:\n{told}")
            time.sleep(0.02)  # the server's first answer is the event waited for

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill the server at once, as a crash would (its clients see their connections drop)."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait(START_TIMEOUT_SECONDS)
        self._process = None


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return binary


@contextmanager
def throwaway_redis() -> Iterator[RedisServer]:
    """Run a new redis-server until the block ends, then remove its directory."""
    binary = _binary()
    directory = Path(tempfile.mkdtemp(prefix="service_b-redis-"))
    server = RedisServer(binary, directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def fanout_settings(server: RedisServer) -> dict[str, Any]:
    """Give B's settings for a fan-out through `server`, on channels no other test uses."""
    return {"redis_url": server.url, "redis_channel_prefix": f"test-{uuid.uuid4().hex[:12]}"}


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Start a redis-server for the session; skipped (failed under CI) when it is missing."""
    with throwaway_redis() as server:
        yield server


@pytest.fixture
def redis_fanout(redis_server: RedisServer) -> dict[str, Any]:
    """Give B's settings for a fan-out through the session's server, on channels of its own."""
    return fanout_settings(redis_server)


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """Start a redis-server for this test alone (it may stop and restart it)."""
    with throwaway_redis() as server:
        yield server
