"""How A calls B over HTTP: the client A's lifespan opens, and calls that check B's answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode

import anyio
import httpx
from fastapi import status
from pydantic import TypeAdapter, ValidationError
from starlette.requests import HTTPConnection
from starlette.responses import Response

from service_a.balancer import Balancer, Upstream
from service_a.edge import REQUEST_ID_HEADER
from service_a.settings import Settings
from service_a.transport import IDEMPOTENT_METHODS, PooledHTTP11Transport, ReusedConnectionClosed

logger = logging.getLogger(__name__)

# RFC 9110 section 7.6.1: these describe one connection and are never passed on, nor are
# the headers a `Connection` header names. Length and encoding are recomputed by each hop.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
NOT_FORWARDED_TO_B = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"content-type",
    b"accept-encoding",
    REQUEST_ID_HEADER.encode(),
}
NOT_RETURNED_FROM_B = HOP_BY_HOP | {b"content-length", b"content-encoding", b"date", b"server"}

RawHeaders = list[tuple[bytes, bytes]]

#: How much later than the wait for a connection the whole request is cut short.
_POOL_FIRST = 0.05


class _NoCookies(httpx.Cookies):
    """A cookie jar that never stores a cookie nor sends one.

    httpx's client extracts the cookies of every answer into its jar, and to do so copies
    the request's headers with `dict(request.headers)`, which costs the square of their
    count (measured: a request with 10,000 header lines kept A busy 2.8 s). B's
    `Set-Cookie` is for A's caller, and goes on to it with the rest of B's answer.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        """Store nothing: A keeps no cookies of its own."""

    def set_cookie_header(self, request: httpx.Request) -> None:
        """Send nothing: there is nothing in the jar."""


class ClientForB(httpx.AsyncClient):
    """A's client for B: httpx's `AsyncClient` without a cookie jar (see `_NoCookies`)."""

    def __init__(self, **options: Any) -> None:
        """Make the client with httpx's `options`; its jar never holds anything."""
        super().__init__(**options)
        self._no_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        """Give the jar that is always empty."""
        return self._no_cookies

    @cookies.setter
    def cookies(self, _cookies: Any) -> None:
        raise AttributeError("A's client for B keeps no cookies")


class UpgradesApart(httpx.AsyncHTTPTransport):
    """httpx's transport, with WebSocket upgrades in a connection pool of their own.

    A relayed session holds its connection for as long as it lasts: in the HTTP pool, 100
    idle sessions took every connection (measured: the 101st handshake waited the pool
    timeout and got 503, and HTTP requests waited behind them). Upgrades get a pool
    without a keep-alive part, bounded by the session limit, which the relay enforces.
    """

    def __init__(self, *, limits: httpx.Limits, max_upgrades: int) -> None:
        """Pool plain requests within `limits`, and up to `max_upgrades` upgrades apart."""
        super().__init__(limits=limits)
        self._upgrades = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_upgrades, max_keepalive_connections=0)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Pick the pool by the request's `Upgrade` header."""
        if "upgrade" in request.headers:
            return await self._upgrades.handle_async_request(request)
        return await super().handle_async_request(request)

    async def aclose(self) -> None:
        """Close both pools."""
        await super().aclose()
        await self._upgrades.aclose()


def build_client(settings: Settings) -> httpx.AsyncClient:
    """Make A's client for B, with explicit timeouts and pool limits.

    With several Bs (`service_b_url` a list), each B gets the pools one B gets, and a
    `Balancer` spreads the requests over them (see service_a.balancer).
    """
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_keepalive_connections,
        keepalive_expiry=settings.keepalive_expiry,
    )
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.write_timeout,
        # The wait for a free connection has the whole request's deadline: see call_service_b.
        pool=settings.request_timeout,
    )

    def pools() -> httpx.AsyncBaseTransport:
        transport: httpx.AsyncBaseTransport
        transport = UpgradesApart(limits=limits, max_upgrades=settings.max_ws_sessions)
        if settings.transport == "fast":
            # Upgrades (and anything else not plain http) go to the fallback, so to their pool.
            # Retries are A's to decide (see call_service_b): the transport does not retry.
            transport = PooledHTTP11Transport(limits=limits, retry_stale=False, fallback=transport)
        return transport

    urls = settings.service_b_urls
    transport = pools()
    if len(urls) > 1:
        upstreams = [Upstream(urls[0], transport)] + [Upstream(url, pools()) for url in urls[1:]]
        transport = Balancer(upstreams, retry_after=settings.b_retry_after_seconds)
    return ClientForB(
        base_url=urls[0],
        transport=transport,  # the limits are the transport's: httpx ignores `limits=` then
        timeout=timeout,
        trust_env=False,
        follow_redirects=False,
    )


class ServiceBError(Exception):
    """B could not give A a usable answer; A answers its caller with `status_code`."""

    status_code: ClassVar[int]

    def __init__(self, detail: str) -> None:
        """Carry the `detail` A's caller is told."""
        super().__init__(detail)
        self.detail = detail


class ServiceBUnavailable(ServiceBError):
    """No connection to B could be made."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


class ServiceBTimeout(ServiceBError):
    """B did not answer in time."""

    status_code = status.HTTP_504_GATEWAY_TIMEOUT


class BadServiceBAnswer(ServiceBError):
    """B answered with a server error, or with something that breaks A's expectations."""

    status_code = status.HTTP_502_BAD_GATEWAY


def headers_for_b(connection: HTTPConnection) -> RawHeaders:
    """Give the caller's end-to-end headers to pass on to B, with the request id.

    They go on as the bytes the caller sent, repeated headers and all: a value need not
    be ASCII (RFC 9110 allows other octets), and decoding it would change or refuse it.
    """
    headers = _end_to_end(connection.scope["headers"], NOT_FORWARDED_TO_B)
    headers.append((REQUEST_ID_HEADER.encode(), connection.state.request_id.encode()))
    return headers


def _end_to_end(headers: Iterable[tuple[bytes, bytes]], excluded: frozenset[bytes]) -> RawHeaders:
    lowered = [(name.lower(), value) for name, value in headers]
    named = {
        token.strip().lower()
        for name, value in lowered
        if name == b"connection"
        for token in value.split(b",")
    }
    return [(name, value) for name, value in lowered if name not in excluded and name not in named]


def request_for_b(  # noqa: PLR0913 - what a request to B is made of
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    headers: RawHeaders,
    body: Any = None,
    params: Mapping[str, int] | None = None,
) -> httpx.Request:
    """Build a request for B at `path` under the client's base URL, with a JSON `body`.

    This is what `client.build_request` does for A's requests, at a third of its cost on
    A's hot path (measured: README, Speed): the URL is joined as text instead of being
    merged as a parsed URL, and the client's cookie jar is left out, so a cookie B sets for
    one caller never goes out with another caller's request. The client's default headers
    (the caller's own win) and its timeouts go with the request, as with `build_request`.
    """
    url = str(client.base_url).rstrip("/") + path
    if params:
        url += "?" + urlencode(params)
    own = {name for name, _ in headers}
    sent = [(name, value) for name, value in client.headers.raw if name.lower() not in own]
    sent += headers
    content = None
    if body is not None:
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        sent.append((b"content-type", b"application/json"))
    return httpx.Request(
        method,
        url,
        headers=sent,
        content=content,
        extensions={"timeout": client.timeout.as_dict()},
    )


async def call_service_b(  # noqa: PLR0913 - mirrors httpx's request, plus what to expect
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    expect: Mapping[int, TypeAdapter[Any] | None],
    headers: RawHeaders,
    body: Any = None,
    params: Mapping[str, int] | None = None,
) -> httpx.Response:
    """Send a request to B and check its answer against `expect` (status to body model).

    The request has one deadline, the client's pool timeout (A's `request_timeout`), from
    the moment it starts waiting for one of the pool's connections: requests over the pool
    size queue in turn within it (see README, Queueing). Raises a `ServiceBError` when B
    cannot be reached or no connection came free before the deadline (503; nothing was
    sent), when B is too slow (504), or when B answers a 5xx, an unexpected status or a
    body that does not fit (502). A request that may be
    repeated (GET, PUT, DELETE) is retried once, and only when nothing was sent to B: the
    connection could not be made. A request on a kept-alive connection that B closed is
    not retried: it may have reached B.
    """
    request = request_for_b(client, method, path, headers=headers, body=body, params=params)
    attempts = 2 if method in IDEMPOTENT_METHODS else 1
    timeouts = request.extensions["timeout"]
    deadline = anyio.current_time() + _budget(client.timeout)
    for attempt in range(1, attempts + 1):
        # One deadline for all of it, the wait for a connection included: a request still
        # waiting when it passes gets the transport's PoolTimeout (503, never sent), one
        # under way is cut short (504). The grace lets the pool's timeout come first.
        remaining = max(deadline - anyio.current_time(), 0.0)
        request.extensions["timeout"] = {**timeouts, "pool": remaining}
        try:
            with anyio.fail_after(remaining + _POOL_FIRST):
                response = await client.send(request)
            break
        except httpx.ConnectError as exc:
            # No connection could be made, so nothing was sent: safe to send again.
            if attempt < attempts:
                logger.info("retrying %s %s: %r", method, path, exc)
                continue
            raise ServiceBUnavailable("service B unavailable") from exc
        except ReusedConnectionClosed as exc:
            # The request went out on a kept-alive connection B closed: it may have arrived.
            raise BadServiceBAnswer("service B closed the connection without answering") from exc
        except httpx.ConnectTimeout as exc:
            raise ServiceBUnavailable("service B unavailable") from exc
        except httpx.PoolTimeout as exc:
            raise ServiceBUnavailable(
                "service B unavailable: no free connection within A's deadline"
            ) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise ServiceBTimeout("service B timed out") from exc
        except httpx.TransportError as exc:
            raise BadServiceBAnswer(f"service B broke the connection: {exc!r}") from exc
        except httpx.DecodingError as exc:
            raise BadServiceBAnswer(f"service B's answer cannot be decoded: {exc}") from exc
    _check(response, method, path, expect)
    return response


def _budget(timeout: httpx.Timeout) -> float:
    """Give the seconds one request may take: the pool timeout, else the steps' together."""
    if timeout.pool is not None:
        return timeout.pool
    return sum(filter(None, (timeout.connect, timeout.write, timeout.read)))


def _check(
    response: httpx.Response, method: str, path: str, expect: Mapping[int, TypeAdapter[Any] | None]
) -> None:
    code = response.status_code
    what = f"service B's answer to {method} {path}"
    if code >= status.HTTP_500_INTERNAL_SERVER_ERROR and code not in expect:
        raise BadServiceBAnswer(f"{what} is an error: {code}")
    if code not in expect:
        raise BadServiceBAnswer(f"{what} has an unexpected status: {code}")
    model = expect[code]
    if model is None:
        return
    try:
        model.validate_json(response.content)
    except ValidationError as exc:
        raise BadServiceBAnswer(f"{what} ({code}) {_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    if error["type"] == "json_invalid":
        return "is not JSON"
    where = ".".join(str(part) for part in error["loc"]) or "the body"
    return f"does not match what A expects: {where}: {error['msg']}"


def passed_on(response: httpx.Response) -> Response:
    """Give B's answer to A's caller as it is: status, body and end-to-end headers.

    The headers go on as the bytes B sent; the transport has refused any a header may
    not carry (CR, LF, NUL and other controls).
    """
    answer = Response(content=response.content, status_code=response.status_code)
    answer.raw_headers.extend(_end_to_end(response.headers.raw, NOT_RETURNED_FROM_B))
    return answer
