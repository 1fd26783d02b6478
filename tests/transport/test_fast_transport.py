"""PooledHTTP11Transport behaviour on asyncio, asyncio+uvloop and trio against real servers."""

from __future__ import annotations

import os
import select
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.abc
import anyio.to_thread
import httpx
import pytest
from httpx_ws import AsyncWebSocketSession, aconnect_ws

from service_a import transport as fast_transport
from service_a.transport import PooledHTTP11Transport, ReusedConnectionClosed
from tests.raw_server import RawServer

pytestmark = pytest.mark.anyio

T = httpx.Timeout(5.0)


def client_for(
    base_url: str, *, limits: httpx.Limits | None = None, timeout: httpx.Timeout = T
) -> httpx.AsyncClient:
    """Return an AsyncClient whose transport is a PooledHTTP11Transport."""
    transport = (
        PooledHTTP11Transport(limits=limits) if limits is not None else PooledHTTP11Transport()
    )
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout)


def pool_of(client: httpx.AsyncClient) -> fast_transport._Pool:
    """Return the PooledHTTP11Transport pool behind a client (white-box checks)."""
    transport = client._transport  # noqa: SLF001
    assert isinstance(transport, PooledHTTP11Transport)
    return transport._pool  # noqa: SLF001


def _wait_readable(fd: int) -> None:
    readable, _, _ = select.select([fd], [], [], 30)
    assert readable, "the server did not close the idle connection within 30 s"


async def server_closed_idle_connection(client: httpx.AsyncClient) -> None:
    """Wait until the server has closed the client's one idle connection (its EOF arrived).

    The wait is on the socket itself (a duplicate of it, in a thread, so no event loop's own
    reader is disturbed and the socket may close meanwhile): no sleep that must outlast the
    server's keep-alive timeout.
    """
    (conn,) = [conn for stack in pool_of(client).idle.values() for conn in stack]
    sock = conn.stream.extra(anyio.abc.SocketAttribute.raw_socket)  # noqa: S610 - not Django
    duplicate = os.dup(sock.fileno())
    try:
        await anyio.to_thread.run_sync(_wait_readable, duplicate)
    finally:
        os.close(duplicate)


# --------------------------------------------------------------------------- #
# Against a real uvicorn upstream
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
async def test_methods_with_bodies(upstream: str, method: str) -> None:
    """Each method sends its body, query and Host header; the response is parsed."""
    async with client_for(upstream) as client:
        r = await client.request(method, "/echo?x=1&y=%20", content=b"payload-" + method.encode())
        assert r.status_code == 200
        assert r.http_version == "HTTP/1.1"
        assert r.reason_phrase == "OK"
        data = r.json()
        assert data["method"] == method
        assert data["body"] == "payload-" + method
        assert data["query"] == "x=1&y=%20"
        sent = dict(data["headers"])
        assert sent["content-length"] == str(len("payload-" + method))
        assert sent["host"] == upstream.removeprefix("http://")


async def test_json_and_large_body(upstream: str) -> None:
    """A body above the coalescing limit is written separately and arrives intact."""
    big = "x" * 300_000  # > coalescing limit: head and body written separately
    async with client_for(upstream) as client:
        r = await client.post("/echo", json={"k": big})
        assert r.status_code == 200
        assert r.json()["body"] == '{"k":"' + big + '"}'


async def test_streaming_request_body_is_chunked(upstream: str) -> None:
    """An async-iterator body is sent with chunked framing."""

    async def gen() -> AsyncIterator[bytes]:
        """Yield body parts, including an empty one that must be skipped."""
        for part in (b"one-", b"", b"two-", b"three"):
            yield part

    async with client_for(upstream) as client:
        r = await client.post("/echo", content=gen())
        data = r.json()
        assert data["body"] == "one-two-three"
        assert ["transfer-encoding", "chunked"] in data["headers"]


async def test_keep_alive_reuses_one_connection(upstream: str) -> None:
    """Sequential requests share one pooled connection."""
    async with client_for(upstream) as client:
        ports = {(await client.get("/echo")).json()["client_port"] for _ in range(20)}
        assert len(ports) == 1
        pool = pool_of(client)
        assert pool.n_conns == 1
        assert pool.n_idle == 1


async def test_204_has_no_body(upstream: str) -> None:
    """A 204 response has no body and leaves the connection reusable."""
    async with client_for(upstream) as client:
        r = await client.delete("/status/204")
        assert r.status_code == 204
        assert r.content == b""
        r2 = await client.get("/echo")  # the connection is still usable
        assert r2.status_code == 200
        assert pool_of(client).n_conns == 1


async def test_404(upstream: str) -> None:
    """4xx responses come back as responses, not errors."""
    async with client_for(upstream) as client:
        r = await client.get("/status/404")
        assert r.status_code == 404
        assert r.reason_phrase == "Not Found"
        assert r.json() == {"detail": "status"}
        r = await client.get("/does-not-exist")
        assert r.status_code == 404


async def test_head_request(upstream: str) -> None:
    """A HEAD response's Content-Length does not make the client wait for a body."""
    async with client_for(upstream) as client:
        r = await client.head("/echo")
        assert r.status_code == 200
        assert int(r.headers["content-length"]) > 0
        assert r.content == b""
        assert (await client.get("/echo")).status_code == 200
        assert pool_of(client).n_conns == 1


async def test_chunked_response(upstream: str) -> None:
    """Chunked responses are decoded, also when streamed in many reads."""
    async with client_for(upstream) as client:
        r = await client.get("/chunked", params={"n": 5, "size": 10})
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.content == b"".join(bytes([97 + i]) * 10 for i in range(5))
        # large chunked body, streamed
        async with client.stream("GET", "/chunked", params={"n": 64, "size": 65536}) as s:
            total = 0
            async for part in s.aiter_bytes():
                total += len(part)
        assert total == 64 * 65536
        assert pool_of(client).n_conns == 1  # connection went back to the pool


# Breaking out of response.aiter_raw() abandons httpx's own BoundAsyncStream.__aiter__
# async generator; trio warns when it is garbage collected (not this transport's).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_early_close_of_streamed_response_discards_connection(upstream: str) -> None:
    """Closing a half-read response drops its connection and frees the slot."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with client_for(upstream, limits=limits) as client:
        async with client.stream("GET", "/chunked", params={"n": 200, "size": 65536}) as s:
            async for _ in s.aiter_raw():
                break
        pool = pool_of(client)
        assert pool.n_conns == 0
        assert (await client.get("/echo")).status_code == 200


async def test_multiple_same_name_headers_preserved(upstream: str) -> None:
    """Repeated response headers keep their order and multiplicity."""
    async with client_for(upstream) as client:
        r = await client.get("/multi")
        assert r.headers.get_list("x-multi") == ["a", "b"]
        assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
        assert [k for k, _ in r.headers.raw].count(b"x-multi") == 2
        assert r.text == "ok"


async def test_connection_refused(unused_port: int) -> None:
    """A refused connection maps to httpx.ConnectError."""
    async with client_for(f"http://127.0.0.1:{unused_port}") as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/")
        assert pool_of(client).n_conns == 0


async def test_connect_timeout() -> None:
    """A connect that cannot complete maps to httpx.ConnectTimeout."""
    # A listener whose accept queue is full drops SYNs, so connect() hangs.
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        await anyio.sleep(0.1)
        timeout = httpx.Timeout(5.0, connect=0.3)
        async with client_for(f"http://127.0.0.1:{port}", timeout=timeout) as client:
            with pytest.raises(httpx.ConnectTimeout):
                await client.get("/")
    finally:
        for s in fillers:
            s.close()
        listener.close()


async def test_read_timeout(upstream: str) -> None:
    """A slow upstream maps to httpx.ReadTimeout and the connection is dropped."""
    async with client_for(upstream, timeout=httpx.Timeout(5.0, read=0.2)) as client:
        with pytest.raises(httpx.ReadTimeout):  # the answer would come after 2 s
            await client.get("/sleep", params={"t": 2})
        assert pool_of(client).n_conns == 0  # the timed-out connection was dropped
        assert (await client.get("/echo")).status_code == 200


async def test_write_timeout_ends_with_the_write(raw_server: RawServer) -> None:
    """Without a read timeout, waiting for the answer is not cut short by the write timeout."""
    timeout = httpx.Timeout(5.0, read=None, write=0.3)
    async with client_for(raw_server.url, timeout=timeout) as client:
        assert b"slow" == (await client.get("/slow-answer")).content


async def test_write_timeout(raw_server: RawServer) -> None:
    """An upstream that stops reading maps to httpx.WriteTimeout."""
    timeout = httpx.Timeout(5.0, write=0.3)
    async with client_for(raw_server.url, timeout=timeout) as client:
        with pytest.raises(httpx.WriteTimeout):
            await client.post("/no-read", content=b"x" * (64 * 1024 * 1024))
        assert pool_of(client).n_conns == 0


async def test_server_closes_idle_keep_alive_connection(closing_upstream: str) -> None:
    """Let uvicorn close the idle connection; the next request still works."""
    async with client_for(closing_upstream) as client:
        port1 = (await client.get("/echo")).json()["client_port"]
        await server_closed_idle_connection(client)
        r = await client.post("/echo", content=b"after-idle")  # not idempotent: no retry
        assert r.json()["body"] == "after-idle"
        assert r.json()["client_port"] != port1
        assert pool_of(client).n_conns == 1


async def test_stale_connection_is_retried_for_idempotent_requests(
    closing_upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the idle check disabled, a PUT on the dead connection is retried once."""
    monkeypatch.setattr(fast_transport._Conn, "looks_dead", lambda _self: False)  # noqa: SLF001
    async with client_for(closing_upstream) as client:
        port1 = (await client.get("/echo")).json()["client_port"]
        await server_closed_idle_connection(client)
        r = await client.put("/echo", content=b"retried")
        assert r.json()["body"] == "retried"
        assert r.json()["client_port"] != port1
        assert pool_of(client).n_conns == 1


async def test_stale_connection_not_retried_for_post(
    closing_upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A POST on a dead connection is not retried; the error is an httpx one."""
    monkeypatch.setattr(fast_transport._Conn, "looks_dead", lambda _self: False)  # noqa: SLF001
    async with client_for(closing_upstream) as client:
        await client.get("/echo")
        await server_closed_idle_connection(client)
        with pytest.raises(ReusedConnectionClosed):
            await client.post("/echo", content=b"not retried")
        pool = pool_of(client)
        assert pool.n_conns == 0
        assert (await client.post("/echo", content=b"x")).status_code == 200


async def test_stale_connection_left_to_the_caller_without_retry(
    closing_upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With retry_stale=False even a PUT on a dead connection raises, for the caller to retry."""
    monkeypatch.setattr(fast_transport._Conn, "looks_dead", lambda _self: False)  # noqa: SLF001
    transport = PooledHTTP11Transport(retry_stale=False)
    base_url = closing_upstream
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=T) as client:
        await client.get("/echo")
        await server_closed_idle_connection(client)
        with pytest.raises(ReusedConnectionClosed):
            await client.put("/echo", content=b"not retried")
        assert (await client.put("/echo", content=b"again")).json()["body"] == "again"


async def test_pool_limit_waits_for_a_free_connection(upstream: str) -> None:
    """Requests over max_connections wait for a slot: the upstream never serves 3 at once."""
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    results: list[tuple[int, int]] = []
    async with client_for(upstream, limits=limits) as client:
        group = str(uuid.uuid4())  # this test's own count on the shared upstream

        async def one() -> None:
            answer = await client.get("/sleep", params={"t": 0.2, "group": group})
            results.append((answer.status_code, answer.json()["most_at_once"]))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(one)
        assert [200] * 5 == [status for status, _ in results]
        # Without the limit all five are served at once; with it, never more than two.
        assert max(most for _, most in results) <= 2
        pool = pool_of(client)
        assert pool.n_conns <= 2
        assert pool.slots is not None
        assert pool.slots.value == 2


async def test_pool_timeout(upstream: str) -> None:
    """Waiting for a slot longer than the pool timeout raises httpx.PoolTimeout."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.1)
    outcomes: list[str] = []
    async with client_for(upstream, limits=limits, timeout=timeout) as client:

        async def one() -> None:
            try:
                await client.get("/sleep", params={"t": 0.5})
                outcomes.append("ok")
            except httpx.PoolTimeout:
                outcomes.append("pool-timeout")

        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)
        assert sorted(outcomes) == ["ok", "pool-timeout"]
        assert (await client.get("/echo")).status_code == 200


async def test_cancellation_releases_the_connection(upstream: str) -> None:
    """Cancelling an in-flight request closes its connection and frees its slot."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with client_for(upstream, limits=limits) as client:
        with anyio.move_on_after(0.1) as scope:
            await client.get("/sleep", params={"t": 2})
        assert scope.cancelled_caught
        pool = pool_of(client)
        assert pool.n_conns == 0
        assert pool.slots is not None
        assert pool.slots.value == 1
        assert (await client.get("/echo")).status_code == 200


async def test_concurrent_requests(upstream: str) -> None:
    """Many concurrent requests get their own responses; idle connections are capped."""
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=4)
    async with client_for(upstream, limits=limits) as client:
        bodies: list[str] = []

        async def one(i: int) -> None:
            r = await client.post("/echo", content=f"req-{i}".encode())
            bodies.append(r.json()["body"])

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
        assert sorted(bodies) == sorted(f"req-{i}" for i in range(50))
        pool = pool_of(client)
        assert pool.n_idle <= 4
        assert pool.n_conns == pool.n_idle


async def test_websocket_is_delegated_to_fallback(upstream: str) -> None:
    """httpx-ws works through the same client (Upgrade goes to the fallback)."""
    async with client_for(upstream) as client:
        ws: AsyncWebSocketSession
        async with aconnect_ws(f"{upstream}/ws", client) as ws:
            await ws.send_text("hi")
            assert await ws.receive_text() == "echo:hi"
            await ws.send_bytes(b"\x00\x01")
            assert await ws.receive_bytes() == b"\x00\x01"
        # plain requests keep working on the fast path afterwards
        assert (await client.get("/echo")).status_code == 200
        assert pool_of(client).n_conns == 1


async def test_unsupported_requests_go_to_fallback() -> None:
    """https, Upgrade and Expect requests are passed to the fallback transport."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        """Record what reached the fallback."""
        seen.append(f"{request.url.scheme} {request.headers.get('upgrade', '-')}")
        return httpx.Response(200, text="fallback")

    transport = PooledHTTP11Transport(fallback=httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get("https://example.invalid/")).text == "fallback"
        r = await client.get("http://example.invalid/", headers={"Upgrade": "h2c"})
        assert r.text == "fallback"
        r = await client.post("http://example.invalid/", headers={"Expect": "100-continue"})
        assert r.text == "fallback"
    assert seen == ["https -", "http h2c", "http -"]


async def test_header_injection_is_rejected(raw_server: RawServer) -> None:
    """CR/LF inside a header value is refused before anything is sent."""
    async with client_for(raw_server.url) as client:
        with pytest.raises(httpx.LocalProtocolError):
            await client.get("/ok", headers={"x-evil": "a\r\nX-Injected: 1"})
        with pytest.raises(httpx.LocalProtocolError):
            await client.get("/ok", headers={"x-evil: a": "b"})
        with pytest.raises((httpx.InvalidURL, httpx.LocalProtocolError)):
            await client.get("/ok\r\nX-Injected: 1")
        assert raw_server.requests == [] or all(b"Injected" not in r for r in raw_server.requests)


# --------------------------------------------------------------------------- #
# Wire-level edge cases against the scripted raw server
# --------------------------------------------------------------------------- #
async def test_wire_keep_alive_and_framing(raw_server: RawServer) -> None:
    """Framing edge cases that keep the connection all run on one connection."""
    async with client_for(raw_server.url) as client:
        before = raw_server.accepted
        assert (await client.get("/ok")).content == b"ok"
        assert (await client.get("/chunked-ext")).content == b"hello world"
        r = await client.get("/interim")
        assert (r.status_code, r.content) == (200, b"final")
        r = await client.get("/dribble")
        assert (r.headers["x-a"], r.content) == ("1", b"abcde")
        r = await client.get("/empty-reason")
        assert (r.status_code, r.reason_phrase, r.content) == (200, "", b"")
        r = await client.head("/head")
        assert (r.headers["content-length"], r.content) == ("1000", b"")
        r = await client.get("/not-modified")
        assert (r.status_code, r.content) == (304, b"")
        assert (await client.get("/ok")).content == b"ok"
        assert raw_server.accepted - before == 1  # all of the above on one connection


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/close-delimited", b"hello world"),
        ("/http10", b"ok"),
        ("/extra-bytes", b"ok"),
        ("/conn-close", b"ok"),
        ("/extra-after-204", b""),
        ("/http10-chunked", b"ok"),
    ],
)
async def test_wire_responses_that_end_the_connection(
    raw_server: RawServer, path: str, body: bytes
) -> None:
    """Responses that make the connection unusable are read and the connection closed."""
    async with client_for(raw_server.url) as client:
        r = await client.get(path)
        assert r.content == body
        assert pool_of(client).n_conns == 0  # not reusable -> closed
        assert (await client.get("/ok")).content == b"ok"


@pytest.mark.parametrize(
    "path",
    [
        "/bad-status",
        "/te-and-cl",
        "/bad-cl",
        "/conflicting-cl",
        "/obs-fold",
        "/lf-in-value",
        "/nul-in-value",
        "/space-in-name",
        "/bad-chunk",
        "/truncated",
        "/truncated-head",
        "/no-response",
        "/switching",
        "/huge-head",
        "/bad-version",
        "/status-000",
        "/lf-in-reason",
        "/nul-in-reason",
        "/gzip-chunked",
        "/chunked-chunked",
        "/space-in-chunk-size",
        "/lf-in-chunk-ext",
        "/bare-lf-head",  # at once, not a read timeout: the parser sees the bare LF
    ],
)
async def test_wire_protocol_errors(raw_server: RawServer, path: str) -> None:
    """Malformed or truncated responses raise httpx.RemoteProtocolError."""
    async with client_for(raw_server.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(path)
        assert pool_of(client).n_conns == 0


async def test_wire_reset_is_read_error(raw_server: RawServer) -> None:
    """A reset connection raises an httpx read/protocol error."""
    async with client_for(raw_server.url) as client:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get("/reset")
        assert pool_of(client).n_conns == 0


# --------------------------------------------------------------------------- #
# Pure unit tests of the response parser (no I/O)
# --------------------------------------------------------------------------- #
def _feed_bytewise(data: bytes) -> Iterator[bytes]:
    """Feed a response one byte at a time, yielding decoded body chunks."""
    answer = fast_transport._Answer(is_head=False, max_head=65536)  # noqa: SLF001
    for i in range(len(data)):
        answer.feed(data[i : i + 1])
        yield from answer.take_body()
    assert answer.done
    assert answer.keep_alive


def test_chunked_body_bytewise() -> None:
    """The chunked body is decoded from input split at every byte."""
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nWiki\r\n5;x=y\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: 1\r\n\r\n"
    )
    assert b"".join(_feed_bytewise(data)) == b"Wikipedia in\r\n\r\nchunks."


def test_bytes_after_the_answer_make_the_connection_unusable() -> None:
    """Bytes after the end of a chunked body are not another answer: the connection ends."""
    answer = fast_transport._Answer(is_head=False, max_head=65536)  # noqa: SLF001
    answer.feed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.1"
    )
    assert answer.take_body() == [b"ok"]
    assert answer.done
    assert not answer.keep_alive


async def test_read_timeout_while_streaming_the_body(raw_server: RawServer) -> None:
    """The read timeout also applies between body chunks."""
    async with client_for(raw_server.url, timeout=httpx.Timeout(5.0, read=0.3)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/stall-body")
        assert pool_of(client).n_conns == 0


async def test_idle_connection_of_another_origin_is_evicted(
    upstream: str, raw_server: RawServer
) -> None:
    """At max_connections, an idle connection to another origin makes room."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with client_for(upstream, limits=limits) as client:
        assert (await client.get("/echo")).status_code == 200
        assert (await client.get(f"{raw_server.url}/ok")).content == b"ok"
        pool = pool_of(client)
        assert pool.n_conns == 1
        assert list(pool.idle) == [("127.0.0.1", upstream_port(upstream)), raw_key(raw_server)]
        assert [len(v) for v in pool.idle.values()] == [0, 1]


async def test_closed_transport_refuses_requests(upstream: str) -> None:
    """After aclose() the transport raises instead of opening new connections."""
    transport = PooledHTTP11Transport()
    await transport.aclose()
    with pytest.raises(RuntimeError):
        await transport.handle_async_request(httpx.Request("GET", f"{upstream}/echo"))


def upstream_port(url: str) -> int:
    """Return the port of a base URL."""
    return int(url.rsplit(":", 1)[1])


def raw_key(server: RawServer) -> tuple[str, int]:
    """Return the pool key of the raw server."""
    return ("127.0.0.1", server.port)
