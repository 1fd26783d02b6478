"""The edge of both services, as real processes: bounded request heads, no slow-client lock-out.

Each test speaks raw HTTP/1.1 (tests/raw_http.py) to `python -m service_a` and
`python -m service_b` on free ports, with short head and idle timeouts so that the waits are
short; every read is bounded, so a server that never answers fails instead of hanging.
"""

from __future__ import annotations

import importlib
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from service_a.settings import Settings as SettingsA
from service_b.settings import Settings as SettingsB
from tests.live import ServiceProcess, run_service, serve_in_thread
from tests.raw_http import (
    RawResponse,
    connection,
    exchange,
    head,
    parse,
    read_response,
    read_until_closed,
    send_until_answered,
)

pytestmark = pytest.mark.live

SHORT_TIMEOUT = "0.3"
#: A bound on how long an idle connection may stay open with a 0.3 s idle timeout; below
#: uvicorn's own 5 s default, so that the old code fails.
IDLE_BOUND_SECONDS = 3.0
#: Most lines a slow client drips before the test gives up on the server closing it.
MAX_DRIPS = 200
DRIP_SECONDS = 0.05
MIB = 1024 * 1024


@dataclass(frozen=True)
class Pair:
    """A and B running, A forwarding to B."""

    a: ServiceProcess
    b: ServiceProcess


def short_env(prefix: str) -> dict[str, str]:
    """Give the environment for a service with short head and idle timeouts."""
    return {
        f"{prefix}HEADER_TIMEOUT_SECONDS": SHORT_TIMEOUT,
        f"{prefix}IDLE_TIMEOUT_SECONDS": SHORT_TIMEOUT,
    }


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Run B and A (in front of it) with short timeouts, for the module."""
    database = tmp_path_factory.mktemp("edge") / "items.sqlite3"
    b_env = {**short_env("SERVICE_B_"), "SERVICE_B_DATABASE_PATH": str(database)}
    with run_service("service_b", env=b_env) as b:
        a_env = {**short_env("SERVICE_A_"), "SERVICE_A_SERVICE_B_URL": b.base_url}
        with run_service("service_a", env=a_env) as a:
            yield Pair(a, b)


@pytest.fixture(params=["a", "b"])
def port(request: pytest.FixtureRequest, pair: Pair) -> int:
    """Give the port of A, then of B."""
    service: ServiceProcess = getattr(pair, request.param)
    return service.port


def fields(count: int, value_bytes: int = 8) -> list[tuple[str, str]]:
    """Give `count` distinct header fields."""
    return [(f"X-Field-{i}", "v" * value_bytes) for i in range(count)]


def assert_refused(status: int, answer: RawResponse) -> None:
    """Check a refusal: the status, a JSON detail, and a closed connection."""
    assert status == answer.status
    assert "application/json" == answer.headers["content-type"]
    assert isinstance(answer.json()["detail"], str)
    assert "close" == answer.headers["connection"]
    assert answer.closed


def test_ten_thousand_header_lines_get_431(port: int) -> None:
    """A head with 10,000 fields is refused with 431, not served."""
    assert_refused(431, exchange(port, head(fields(10_000))))


def test_one_field_over_the_count_gets_431(port: int) -> None:
    """One field more than the limit (both services' limits are above 100) is refused."""
    assert_refused(431, exchange(port, head(fields(200))))


def test_a_one_mib_header_line_gets_431(port: int) -> None:
    """A single header line of 1 MiB is refused with 431."""
    assert_refused(431, exchange(port, head([("X-Big", "v" * MIB)])))


def test_a_line_over_the_line_limit_gets_431(port: int) -> None:
    """A 9 KiB line (over 8 KiB) in an otherwise small head is refused with 431."""
    assert_refused(431, exchange(port, head([("X-Big", "v" * 9 * 1024)])))


def test_a_16_mib_line_is_refused_before_it_is_all_sent(port: int) -> None:
    """A 16 MiB header line is answered 431 long before the client could send it all."""
    chunk = 64 * 1024
    with connection(port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, chunk)
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Huge: ")
        sent = send_until_answered(sock, (b"v" * chunk for _ in range(16 * MIB // chunk)))
        answer = parse(read_until_closed(sock), closed=True)
    assert_refused(431, answer)
    assert sent < 16 * MIB


def test_a_long_request_target_gets_414(port: int) -> None:
    """A request target over the line limit is refused with 414."""
    assert_refused(414, exchange(port, head(target="/status?q=" + "x" * 9 * 1024)))


def test_a_malformed_head_gets_a_json_400(port: int) -> None:
    """A head llhttp cannot parse gets 400 with a JSON detail."""
    assert_refused(400, exchange(port, b"GET /status HTTP/1.1\r\nBad Name: x\r\n\r\n"))


def fields_at_limits(target: str, count: int, line: int, head_bytes: int) -> list[tuple[str, str]]:
    """Give fields that, with `Host`, fill a head exactly to its limits.

    `count` fields in all (`Host` included), one line of exactly `line` bytes, and the
    request target plus every field line (`name: value` and CRLF) exactly `head_bytes`.
    """
    host_line = len("Host: 127.0.0.1\r\n")
    long_value = "v" * (line - len("X-Long: \r\n"))
    budget = head_bytes - len(target) - host_line - line
    others = count - 2
    names = [f"X-Fill-{i:03}" for i in range(others)]
    overhead = sum(len(name) + 4 for name in names)
    share, extra = divmod(budget - overhead, others)
    filled = [(name, "v" * (share + (i < extra))) for i, name in enumerate(names)]
    return [("X-Long", long_value), *filled]


def test_a_head_at_a_limits_passes_through_a_to_b(pair: Pair) -> None:
    """A head at every one of A's limits is served by A and by B behind it (A adds headers)."""
    limits = SettingsA()
    target = "/a/call_b"
    at_limits = fields_at_limits(
        target, limits.max_header_count, limits.max_header_line_bytes, limits.max_head_bytes
    )
    with connection(pair.a.port) as sock:
        sock.sendall(head(at_limits, target=target))
        answer = read_response(sock)
    assert 200 == answer.status, answer.body
    assert {"b": "b"} == answer.json()
    over = [*at_limits, ("X-One-More", "v")]
    assert_refused(431, exchange(pair.a.port, head(over, target=target)))


def test_b_limits_are_above_a_limits() -> None:
    """B accepts more than A, since A adds headers to what it passes on."""
    a, b = SettingsA(), SettingsB()
    assert b.max_header_count > a.max_header_count
    assert b.max_head_bytes > a.max_head_bytes
    assert b.max_header_line_bytes >= a.max_header_line_bytes


def test_a_silent_connection_gets_408_and_is_closed(port: int) -> None:
    """A connection that sends nothing is answered 408 and closed after the head timeout."""
    with connection(port) as sock:
        answer = parse(read_until_closed(sock), closed=True)
    assert_refused(408, answer)


def test_a_slow_drip_is_closed_at_the_head_deadline(port: int) -> None:
    """A client sending a header line now and then is closed: the deadline is per head."""
    with connection(port) as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        for drip in range(MAX_DRIPS):
            readable, _, _ = select.select([sock], [], [], DRIP_SECONDS)
            if readable:
                break
            sock.sendall(b"X-Drip-%d: 1\r\n" % drip)
        answer = parse(read_until_closed(sock), closed=True)
    assert_refused(408, answer)


def test_an_idle_keep_alive_connection_is_closed(port: int) -> None:
    """After a response, a kept-alive connection left idle is closed after the idle timeout."""
    with connection(port, timeout=IDLE_BOUND_SECONDS) as sock:
        sock.sendall(head())
        answer = read_response(sock)
        assert 200 == answer.status
        assert not answer.closed
        assert b"" == read_until_closed(sock)


def test_a_kept_alive_connection_serves_request_after_request(port: int) -> None:
    """Each request's head deadline ends with its head: the next requests are served too."""
    with connection(port) as sock:
        for _ in range(3):
            sock.sendall(head())
            assert 200 == read_response(sock).status


def test_startup_logs_the_open_file_limits(pair: Pair) -> None:
    """Each service logs its soft and hard limits on open files at startup."""
    for service in (pair.a, pair.b):
        assert "open files: soft limit" in service.log()


CAP = 4


async def plain_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer 200 with a small JSON body; on `/hold`, start the answer, then wait for the body."""
    assert scope["type"] == "http"
    if scope["path"] == "/hold":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        await receive()  # the body never comes: the connection is busy until the client goes
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"ok": true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"12")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(params=["service_a", "service_b"])
def capped(request: pytest.FixtureRequest) -> Iterator[int]:
    """Serve a plain app in a thread with a service's protocol, capped at 4 connections.

    In-process, so that it starts in milliseconds; the head and idle timeouts are long.
    """
    module = importlib.import_module(f"{request.param}.protocol")
    limits = module.EdgeLimits(
        max_header_count=100,
        max_header_line_bytes=8192,
        max_head_bytes=65536,
        header_timeout_seconds=60,
        max_connections=CAP,
    )
    config = uvicorn.Config(
        plain_app,
        http=module.bounded_protocol(limits),
        lifespan="off",
        log_config=None,
        timeout_keep_alive=60,
    )
    with serve_in_thread(config) as port:
        yield port


def open_connections(port: int, count: int) -> list[socket.socket]:
    """Open `count` connections that send nothing."""
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def test_past_the_cap_with_every_connection_busy_a_new_one_gets_503(capped: int) -> None:
    """With the cap held by requests in progress, a new connection gets 503 with Retry-After."""
    held = open_connections(capped, CAP)
    try:
        for sock in held:
            sock.sendall(head([("Content-Length", "10")], target="/hold", method="POST"))
            assert 200 == read_response(sock).status  # its answer started: the app holds it
        answer = exchange(capped, head())
    finally:
        for sock in held:
            sock.close()
    assert_refused(503, answer)
    assert "1" == answer.headers["retry-after"]


def test_past_the_cap_the_longest_wait_for_a_head_makes_room(capped: int) -> None:
    """With the cap held by silent connections, the oldest gets 503 and the new one is served."""
    held = open_connections(capped, CAP)
    try:
        with connection(capped) as sock:
            sock.sendall(head(target="/"))
            assert 200 == read_response(sock).status
        displaced = parse(read_until_closed(held[0]), closed=True)
    finally:
        for sock in held:
            sock.close()
    assert_refused(503, displaced)


def test_past_the_cap_an_idle_connection_makes_room(capped: int) -> None:
    """With the cap held by idle kept-alive connections, one is closed and the new one served."""
    held = open_connections(capped, CAP)
    try:
        path = "/"
        for sock in held:
            sock.sendall(head(target=path))
            assert 200 == read_response(sock).status
        with connection(capped) as sock:
            sock.sendall(head(target=path))
            assert 200 == read_response(sock).status
        closed, _, _ = select.select(held, [], [], 10)
        assert 1 == len(closed)
        assert b"" == read_until_closed(closed[0])
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("service", ["service_a", "service_b"])
def test_the_cap_is_lowered_to_what_the_file_limit_allows(service: str) -> None:
    """A cap above the open file limit (less the reserve) is lowered to it; a lower one stays."""
    protocol = importlib.import_module(f"{service}.protocol")
    assert 960 == protocol.connection_cap(16384, 1024, 64)
    assert 100 == protocol.connection_cap(100, 1024, 64)
    assert 1 == protocol.connection_cap(100, 10, 64)
