"""A's client for B: no cookie jar, and B's `Set-Cookie` still reaches A's caller."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.b_client import build_client
from tests.raw_server import RawServer, send

pytestmark = pytest.mark.anyio

_ITEM = b'{"item_id": 1, "name": "With cookie"}'
ANSWERS = {
    "/items/1": send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Set-Cookie: session=b-says; Path=/\r\nSet-Cookie: other=2; Path=/\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(_ITEM), _ITEM)
    ),
}


@pytest.fixture(scope="module")
def b_with_cookies() -> Iterator[RawServer]:
    """Give a B whose answer sets cookies."""
    server = RawServer(ANSWERS)
    yield server
    server.close()


@contextlib.asynccontextmanager
async def a_in_front_of(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Run A, with the client its lifespan opens, in front of the B at `url`."""
    app = create_a(ASettings(service_b_url=url))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(manager.app), base_url="http://a") as a,
    ):
        yield a


@pytest.mark.parametrize("transport", ["fast", "httpx"])
async def test_client_keeps_no_cookies(b_with_cookies: RawServer, transport: str) -> None:
    """B's Set-Cookie is in the answer, and never in the client's jar nor in the next request."""
    settings = ASettings(service_b_url=b_with_cookies.url, transport=transport)
    async with build_client(settings) as client:
        first = await client.get("/items/1")
        assert first.headers.get_list("set-cookie") == [
            "session=b-says; Path=/",
            "other=2; Path=/",
        ]
        assert len(client.cookies.jar) == 0
        assert list(client.cookies.items()) == []
        await client.get("/items/1")
    assert b"cookie:" not in b"".join(b_with_cookies.requests).lower()
    with pytest.raises(AttributeError):
        client.cookies = {"x": "1"}


async def test_set_cookie_is_relayed_to_the_caller(b_with_cookies: RawServer) -> None:
    """A's caller gets B's Set-Cookie headers unchanged."""
    async with a_in_front_of(b_with_cookies.url) as a:
        answer = await a.get("/items/1")
    assert answer.status_code == 200
    assert answer.headers.get_list("set-cookie") == ["session=b-says; Path=/", "other=2; Path=/"]
