"""A in front of several Bs: a transport that spreads A's requests to B over every B that answers.

It sits under A's one `httpx.AsyncClient` (see `build_client`), so the routes and the relay
do not know there is more than one B: each request, WebSocket upgrades included, is given
the origin of the B chosen for it, and goes to that B's own pools (HTTP and upgrades apart,
as with one B). A slow or stuck B then holds up only its own connections.

Choosing a B: the one with the fewest requests and relayed sessions under way, ties in
turn (round robin). With Bs that answer alike this is plain round robin; it moves work
away from a B that is slower, and gives new sessions to a B that came back (relayed
sessions last: round robin would leave a restarted B with a share of the new ones only).

A B that cannot be connected to (refused, or no connection within the connect timeout)
is skipped for `SERVICE_A_B_RETRY_AFTER_SECONDS`; after that a request that may be sent
again tries it (a probe), and its first answer puts it back in turn. A request's
connection that could not be made moves on to the next B, under A's retry rules
(`call_service_b`): only a request that may be repeated (RFC 9110 idempotent: GET, the
WebSocket upgrade, PUT, DELETE) and only when nothing was sent. A POST is not sent
elsewhere: it gets the connect error (503) as with one B, and the B is skipped for the next.
With every B skipped, A still tries them all, the longest skipped first, rather than
answer 503 without asking any.

A request may be pinned to one B with the `PIN` extension (A's `GET /status` asks each B);
a pinned request ignores skipping, and its answer puts the B back in turn.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import anyio
import httpx

from service_a.transport import IDEMPOTENT_METHODS

__all__ = ["PIN", "Balancer", "Upstream"]

logger = logging.getLogger(__name__)

#: Request extension naming the B (one of the balancer's URLs, as configured) to send it to.
PIN: Final = "service_a.service_b"

#: What shows a connection to a B could not be made: nothing of the request was sent.
_CANNOT_CONNECT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(eq=False)
class Upstream:
    """One B: where it is, its transport (pools), and what the balancer knows of it."""

    url: str
    transport: httpx.AsyncBaseTransport
    busy: int = 0  # requests and relayed sessions under way
    skipped_until: float = -math.inf  # time (anyio clock) before which it is not chosen
    failures: int = 0  # connects that failed since its last answer
    origin: httpx.URL = field(init=False)

    def __post_init__(self) -> None:
        """Parse the URL once."""
        self.origin = httpx.URL(self.url)

    @property
    def prefix(self) -> str:
        """The URL's path without its trailing slash ("" for a bare origin)."""
        return self.origin.path.rstrip("/")

    @property
    def netloc(self) -> bytes:
        """The Host header for this B."""
        return self.origin.netloc


class _Counted(httpx.AsyncByteStream):
    """A response body that counts its B busy until it is closed (read to the end, or not)."""

    def __init__(self, stream: httpx.AsyncByteStream, upstream: Upstream) -> None:
        self._stream = stream
        self._upstream: Upstream | None = upstream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Give the body's chunks."""
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        """Close the body; the B has one request (or session) less under way."""
        upstream, self._upstream = self._upstream, None
        if upstream is not None:
            upstream.busy -= 1
        await self._stream.aclose()


class Balancer(httpx.AsyncBaseTransport):
    """Spread requests over several Bs, each with its own transport; see the module docstring."""

    def __init__(
        self,
        upstreams: Sequence[Upstream],
        *,
        retry_after: float,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        """Balance over `upstreams`; a B that cannot be connected to is skipped `retry_after` s.

        `clock` gives the time in seconds (tests give their own).
        """
        if not upstreams:
            raise ValueError("a balancer needs at least one B")
        self.upstreams = list(upstreams)
        self._by_url = {upstream.url: upstream for upstream in self.upstreams}
        self._retry_after = retry_after
        self._clock = clock
        self._next = 0  # where round robin starts among equally busy Bs

    def skipped(self, upstream: Upstream) -> float:
        """Give the seconds `upstream` is still skipped for (0 when it is in turn)."""
        return max(upstream.skipped_until - self._clock(), 0.0)

    def order(self, method: str) -> list[Upstream]:
        """Give the Bs a request with `method` tries, in the order it tries them."""
        now = self._clock()
        count = len(self.upstreams)
        ranked = sorted(
            range(count),
            key=lambda index: (self.upstreams[index].busy, (index - self._next) % count),
        )
        # A B whose skip is over takes its turn again, for a request that may be sent on.
        may_move_on = method in IDEMPOTENT_METHODS
        tried = [
            self.upstreams[index]
            for index in ranked
            if self.upstreams[index].failures == 0
            or (may_move_on and self.upstreams[index].skipped_until <= now)
        ]
        if not tried:
            # Every B is skipped: ask them all rather than refuse without asking.
            tried = sorted(self.upstreams, key=lambda upstream: upstream.skipped_until)
        return tried

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` to a B: the one pinned, or the next in turn, moving on as above."""
        pinned = request.extensions.get(PIN)
        if pinned is not None:
            return await self._send(request, self._by_url[pinned])
        tried = self.order(request.method)
        may_move_on = request.method in IDEMPOTENT_METHODS
        for attempt, upstream in enumerate(tried, start=1):
            if attempt == 1:
                self._next = (self.upstreams.index(upstream) + 1) % len(self.upstreams)
            try:
                return await self._send(request, upstream)
            except _CANNOT_CONNECT as exc:
                if not may_move_on or attempt == len(tried):
                    raise
                logger.info("moving %s %s on from %s: %r", request.method, request.url.path,
                            upstream.url, exc)  # fmt: skip
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _send(self, request: httpx.Request, upstream: Upstream) -> httpx.Response:
        _aim(request, upstream, self._from)
        upstream.busy += 1
        try:
            response = await upstream.transport.handle_async_request(request)
        except _CANNOT_CONNECT as exc:
            upstream.busy -= 1
            upstream.failures += 1
            upstream.skipped_until = self._clock() + self._retry_after
            logger.warning(
                "service B at %s cannot be reached (%r): skipped for %g s",
                upstream.url, exc, self._retry_after,
            )  # fmt: skip
            raise
        except BaseException:
            upstream.busy -= 1
            raise
        if upstream.failures:
            logger.info("service B at %s answers again", upstream.url)
        upstream.failures = 0
        upstream.skipped_until = -math.inf
        assert isinstance(response.stream, httpx.AsyncByteStream)  # noqa: S101 - async transports
        response.stream = _Counted(response.stream, upstream)
        return response

    @property
    def _from(self) -> Upstream:
        """The B whose URL the client's base URL is (the first): requests start out aimed there."""
        return self.upstreams[0]

    async def aclose(self) -> None:
        """Close every B's transport."""
        for upstream in self.upstreams:
            await upstream.transport.aclose()


def _aim(request: httpx.Request, upstream: Upstream, first: Upstream) -> None:
    """Give `request` the origin, path prefix and Host of `upstream`.

    A request starts out under the client's base URL, the first B's; its path below that
    B's prefix is kept, so that aiming it again (after a failed connect) starts from it.
    """
    below = request.extensions.get(_BELOW_PREFIX)
    if below is None:
        below = request.url.raw_path
        if first.prefix and below.startswith(first.prefix.encode()):
            below = below[len(first.prefix) :]
        request.extensions[_BELOW_PREFIX] = below
    origin = upstream.origin
    request.url = request.url.copy_with(
        scheme=origin.scheme,
        host=origin.host,
        port=origin.port,
        raw_path=upstream.prefix.encode() + below,
    )
    request.headers["host"] = upstream.netloc.decode("ascii")


#: Request extension: the request's path (and query) below the prefix of the B's URL.
_BELOW_PREFIX: Final = "service_a.below_prefix"
