"""A in front of several Bs: requests and sessions spread, a refusing B skipped then retried.

The Bs are scripted raw servers (tests.raw_server) that say who they are, or ports nothing
listens on (a connect is refused); the WebSocket tests use real uvicorn upstreams
(tests/transport/upstream_app.py).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest
from asgi_lifespan import LifespanManager

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.b_client import UpgradesApart, build_client
from service_a.balancer import Balancer, Upstream
from service_a.transport import PooledHTTP11Transport
from tests.live import free_port
from tests.raw_server import RawServer, Script, send
from tests.ws import connect_ws

pytestmark = pytest.mark.anyio

HERE = Path(__file__).resolve().parent
_STATUS = b'{"status":"ok"}'
_CREATED = b'{"message":"created","item_data":{"item_id":2,"name":"x"}}'


def _says(name: str) -> dict[str, Script]:
    body = name.encode()
    answer = send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
    status = send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
        % (len(_STATUS), _STATUS)
    )
    created = send(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
        b"Location: /items/2\r\nContent-Length: %d\r\n\r\n%b" % (len(_CREATED), _CREATED)
    )
    return {"/who": answer, "/status": status, "/items": created}


class RawServerAt(RawServer):
    """A scripted raw server on a given port (one that refused connections until now)."""

    def __init__(self, scripts: dict[str, Script], port: int) -> None:
        """Listen on `port` and start accepting."""
        self.scripts = scripts
        self.unread_bodies = ()
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.accepted = 0
        self.requests: list[bytes] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept_loop, daemon=True).start()


@pytest.fixture
def two_bs() -> Iterator[tuple[RawServer, RawServer]]:
    """Give two Bs that answer `GET /who` with their names, "one" and "two"."""
    one, two = RawServer(_says("one")), RawServer(_says("two"))
    yield one, two
    one.close()
    two.close()


def _who(server: RawServer) -> int:
    return sum(head.startswith(b"GET /who ") for head in server.requests)


class Counting(httpx.AsyncBaseTransport):
    """A transport that counts the requests it is given, connects that failed included."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        """Count for `inner`."""
        self.inner = inner
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Count, and pass on."""
        self.calls += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        """Start at 0."""
        self.now = 0.0

    def __call__(self) -> float:
        """Give the time."""
        return self.now


def _balancer(urls: list[str], clock: Clock, retry_after: float = 5.0) -> Balancer:
    upstreams = [Upstream(url, Counting(PooledHTTP11Transport())) for url in urls]
    return Balancer(upstreams, retry_after=retry_after, clock=clock)


def _calls(balancer: Balancer) -> list[int]:
    return [upstream.transport.calls for upstream in balancer.upstreams]  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def _client(balancer: Balancer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=balancer.upstreams[0].url, transport=balancer, timeout=5
    ) as client:
        yield client


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("transport", ["fast", "httpx"])
async def test_requests_take_turns(two_bs: tuple[RawServer, RawServer], transport: str) -> None:
    """Through A's client, one request after another goes to each B in turn."""
    one, two = two_bs
    settings = ASettings(service_b_url=f"{one.url}, {two.url}", transport=transport)
    async with build_client(settings) as client:
        names = [(await client.get("/who")).text for _ in range(6)]
    assert names == ["one", "two"] * 3
    assert (_who(one), _who(two)) == (3, 3)
    host_headers = [head for head in two.requests if b"host: 127.0.0.1:%d" % two.port in head]
    assert len(host_headers) == 3  # each B is sent its own Host


async def test_a_busy_b_is_passed_over(two_bs: tuple[RawServer, RawServer]) -> None:
    """While B "one" holds a request, the next requests all go to B "two"."""
    one, two = two_bs
    arrived, release = threading.Event(), threading.Event()

    def hold(conn: socket.socket) -> bool:
        arrived.set()
        release.wait(10)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld")
        return True

    one.scripts = {**one.scripts, "/hold": hold}
    balancer = _balancer([one.url, two.url], Clock())
    async with _client(balancer) as client, anyio.create_task_group() as group:
        held: list[str] = []

        async def held_request() -> None:
            held.append((await client.get("/hold")).text)

        group.start_soon(held_request)
        await anyio.to_thread.run_sync(arrived.wait, 10)
        assert [upstream.busy for upstream in balancer.upstreams] == [1, 0]
        names = [(await client.get("/who")).text for _ in range(4)]
        release.set()
    assert names == ["two"] * 4
    assert held == ["held"]
    assert [upstream.busy for upstream in balancer.upstreams] == [0, 0]


async def test_a_refusing_b_is_skipped_then_retried(two_bs: tuple[RawServer, RawServer]) -> None:
    """A B that refuses is tried once, skipped for the interval, then tried again, and used."""
    one, _ = two_bs
    port = free_port()
    clock = Clock()
    balancer = _balancer([f"http://127.0.0.1:{port}", one.url], clock, retry_after=5.0)
    async with _client(balancer) as client:
        first = await client.get("/who")  # refused by the first B, moved on to "one"
        assert (first.text, _calls(balancer)) == ("one", [1, 1])
        assert balancer.skipped(balancer.upstreams[0]) == 5.0
        names = [(await client.get("/who")).text for _ in range(4)]
        assert (names, _calls(balancer)) == (["one"] * 4, [1, 5])  # not tried while skipped

        clock.now = 5.0  # the interval is over: tried again in its turn, refused again
        assert (await client.get("/who")).text == "one"
        assert _calls(balancer) == [2, 6]
        assert [(await client.get("/who")).text for _ in range(2)] == ["one"] * 2
        assert _calls(balancer) == [2, 8]

        back = RawServerAt(_says("back"), port)  # it comes back
        try:
            clock.now = 10.0
            names = [(await client.get("/who")).text for _ in range(4)]
        finally:
            back.close()
    assert sorted(names) == ["back", "back", "one", "one"]
    assert balancer.skipped(balancer.upstreams[0]) == 0.0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_a_failed_connect_moves_on_when_it_may(
    two_bs: tuple[RawServer, RawServer], method: str
) -> None:
    """A request that may be sent again moves on from a B that refuses to the next one."""
    one, _ = two_bs
    balancer = _balancer([_dead_url(), _dead_url(), one.url], Clock())
    async with _client(balancer) as client:
        answer = await client.request(method, "/who")
    assert (answer.status_code, answer.text) == (200, "one")
    assert _calls(balancer) == [1, 1, 1]


async def test_a_post_is_not_sent_elsewhere(two_bs: tuple[RawServer, RawServer]) -> None:
    """A POST whose connect fails is not sent on (as with one B); the next POST skips that B."""
    one, _ = two_bs
    balancer = _balancer([_dead_url(), one.url], Clock())
    async with _client(balancer) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("/who", content=b"x")
        assert _calls(balancer) == [1, 0]
        answers = [(await client.post("/who", content=b"x")).text for _ in range(3)]
    assert answers == ["one"] * 3
    assert _calls(balancer) == [1, 3]


async def test_every_b_refusing_is_a_connect_error_after_asking_each() -> None:
    """With every B refusing, each is asked, skipped or not, and the request fails to connect."""
    balancer = _balancer([_dead_url(), _dead_url()], Clock())
    async with _client(balancer) as client:
        for calls in ([1, 1], [2, 2]):
            with pytest.raises(httpx.ConnectError):
                await client.get("/who")
            assert _calls(balancer) == calls


async def test_one_b_is_as_before(two_bs: tuple[RawServer, RawServer]) -> None:
    """With one URL there is no balancer: A's client is the one-B client of before."""
    one, _ = two_bs
    client = build_client(ASettings(service_b_url=one.url))
    assert isinstance(client._transport, PooledHTTP11Transport)  # noqa: SLF001
    several = build_client(ASettings(service_b_url=f"{one.url},{one.url}/"))
    assert isinstance(several._transport, Balancer)  # noqa: SLF001
    await client.aclose()
    await several.aclose()


def test_a_list_with_a_bad_entry_is_refused() -> None:
    """A list of Bs with an empty or non-http entry is refused when A starts."""
    for value in ("http://127.0.0.1:8000,", "http://127.0.0.1:8000, ftp://x"):
        with pytest.raises(ValueError, match="is not an http"):
            ASettings(service_b_url=value)


# --------------------------------------------------------------------------- #
# Through A: status and the gateway's answers.
# --------------------------------------------------------------------------- #
@contextlib.asynccontextmanager
async def _a_in_front_of(urls: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_a(ASettings(service_b_url=",".join(urls)))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(manager.app), base_url="http://a") as a,
    ):
        yield a


async def test_status_reports_each_b(two_bs: tuple[RawServer, RawServer]) -> None:
    """A's `/status` is ok while one B answers, and says of each B whether it does."""
    one, _ = two_bs
    dead = _dead_url()
    async with _a_in_front_of([dead, one.url]) as a:
        answer = await a.get("/status")
    body = answer.json()
    assert answer.status_code == 200
    latency = body["service_bs"][1]["latency_ms"]
    assert body == {
        "status": "ok",
        "service_b": {"status": "ok", "latency_ms": latency},
        "service_bs": [
            {"url": dead, "status": "unavailable", "detail": "service B unavailable"},
            {"url": one.url, "status": "ok", "latency_ms": latency},
        ],
    }


async def test_status_is_degraded_when_no_b_answers() -> None:
    """With no B answering, A's `/status` is 503 `degraded`, with each B's failure."""
    dead = [_dead_url(), _dead_url()]
    async with _a_in_front_of(dead) as a:
        answer = await a.get("/status")
    assert answer.status_code == 503
    down = {"status": "unavailable", "detail": "service B unavailable"}
    assert answer.json() == {
        "status": "degraded",
        "service_b": down,
        "service_bs": [{"url": url, **down} for url in dead],
    }


async def test_status_with_one_b_is_as_before(two_bs: tuple[RawServer, RawServer]) -> None:
    """With one B, `/status` has no list of Bs: the same answer as before."""
    one, _ = two_bs
    async with _a_in_front_of([one.url]) as a:
        body = (await a.get("/status")).json()
    assert set(body) == {"status", "service_b"}


async def test_status_puts_a_b_back_in_turn(two_bs: tuple[RawServer, RawServer]) -> None:
    """A B skipped after a refusal is back in turn once it answers A's health check."""
    one, _ = two_bs
    port = free_port()
    async with _a_in_front_of([f"http://127.0.0.1:{port}", one.url]) as a:
        assert (await a.get("/status")).json()["service_bs"][0]["status"] == "unavailable"
        back = RawServerAt(_says("back"), port)
        try:
            assert (await a.get("/status")).json()["service_bs"][0]["status"] == "ok"
            await a.post("/items", json={"name": "x"})  # a POST goes to skipped Bs never
        finally:
            back.close()
    assert any(head.startswith(b"POST /items ") for head in back.requests)


async def test_a_post_through_a_is_503_then_goes_to_a_live_b() -> None:
    """Through A, a POST that met a refusing B is 503 (never sent); the next one is answered."""
    live = RawServer(_says("live"))
    try:
        async with _a_in_front_of([_dead_url(), live.url]) as a:
            first = await a.post("/items", json={"name": "x"})
            second = await a.post("/items", json={"name": "x"})
    finally:
        live.close()
    assert (first.status_code, first.json()) == (503, {"detail": "service B unavailable"})
    assert second.status_code == 201
    assert len(live.requests) == 1


# --------------------------------------------------------------------------- #
# Relayed WebSocket sessions
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def second_upstream() -> Iterator[str]:
    """Serve tests/transport/upstream_app.py a second time, on its own port."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "tests.transport.upstream_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=HERE.parents[1], start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{url}/echo", timeout=1):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_sessions_spread_and_move_on(upstream: str, second_upstream: str) -> None:
    """Sessions open on the least busy B, past a refusing one; each counts until it closes."""
    limits = httpx.Limits(max_connections=10)
    upstreams = [
        Upstream(url, UpgradesApart(limits=limits, max_upgrades=10))
        for url in (_dead_url(), upstream, second_upstream)
    ]
    balancer = Balancer(upstreams, retry_after=5.0, clock=Clock())
    async with _client(balancer) as client:
        async with (
            connect_ws("/ws", client) as first,
            connect_ws("/ws", client) as second,
            connect_ws("/ws", client) as third,
        ):
            for ws in (first, second, third):
                await ws.send_text("hi")
                assert await ws.receive_text() == "echo:hi"
            assert [upstream.busy for upstream in upstreams] == [0, 2, 1]
        assert [upstream.busy for upstream in upstreams] == [0, 0, 0]
        assert balancer.skipped(upstreams[0]) == 5.0


async def test_each_b_keeps_its_path_prefix() -> None:
    """Bs behind path prefixes each get the request under their own prefix, query and all."""
    one = RawServer({"/one/who?q=1": _says("one")["/who"]})
    two = RawServer({"/two/who?q=1": _says("two")["/who"]})
    try:
        balancer = _balancer([f"{one.url}/one/", f"{two.url}/two"], Clock())
        async with httpx.AsyncClient(
            base_url=f"{one.url}/one/", transport=balancer, timeout=5
        ) as client:
            names = [(await client.get("/who", params={"q": "1"})).text for _ in range(2)]
    finally:
        one.close()
        two.close()
    assert names == ["one", "two"]
    assert two.requests[0].startswith(b"GET /two/who?q=1 HTTP/1.1")
