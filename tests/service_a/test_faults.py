"""A's answers when B fails, simulated with respx in front of B's app in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import anyio
import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.transport import ReusedConnectionClosed
from tests.inprocess import B_URL, a_in_front_of_b

Faults = Callable[[respx.Router], object]
MakeA = Callable[[Faults], Awaitable[tuple[httpx.AsyncClient, respx.Router]]]

# The injected client's timeouts are what A waits for; short ones make a slow B quick to test.
SHORT = httpx.Timeout(0.2)


@pytest.fixture
def a_app() -> FastAPI:
    """Give A whose health check gives up on B quickly."""
    return create_a(ASettings(service_b_url=B_URL, status_timeout=0.2))


@pytest.fixture
async def faulty_a(a_app: FastAPI, b_running: LifespanManager) -> AsyncIterator[MakeA]:
    """Give a maker of A in front of a B whose answers the test's respx routes replace.

    Requests no route matches reach B's real app in-process, through `respx.ASGIHandler`.
    """
    async with AsyncExitStack() as stack:

        async def make(faults: Faults) -> tuple[httpx.AsyncClient, respx.Router]:
            router = respx.Router(base_url=B_URL, assert_all_called=False)
            faults(router)
            router.route().mock(side_effect=respx.ASGIHandler(b_running.app))
            b_client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.MockTransport(router.async_handler),
                    base_url=B_URL,
                    timeout=SHORT,
                )
            )
            client = await stack.enter_async_context(a_in_front_of_b(a_app, b_client))
            return client, router

        yield make
    a_app.dependency_overrides.clear()


def refused(request: httpx.Request) -> httpx.Response:
    """Fail as a connection to a port nobody listens on does."""
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


async def too_slow(_: httpx.Request) -> httpx.Response:
    """Answer long after A's read timeout."""
    await anyio.sleep(30)
    return httpx.Response(200, json={"item_id": 1, "name": "late"})  # pragma: no cover


@pytest.mark.anyio
async def test_refused_connection_gives_503(faulty_a: MakeA) -> None:
    """B refusing connections gives 503 `service B unavailable` and a Retry-After."""
    client, router = await faulty_a(lambda r: r.get("/items/1").mock(side_effect=refused))
    response = await client.get("/items/1")
    assert (503, {"detail": "service B unavailable"}) == (response.status_code, response.json())
    assert "1" == response.headers["retry-after"]
    assert 2 == router.calls.call_count  # retried once: nothing had been sent


@pytest.mark.anyio
async def test_get_is_retried_once_after_a_failed_connection(faulty_a: MakeA) -> None:
    """A GET whose first connection failed is sent again, and B's answer comes back."""
    client, router = await faulty_a(
        lambda r: r.get("/items/1").mock(
            side_effect=[
                httpx.ConnectError("refused"),
                httpx.Response(200, json={"item_id": 1, "name": "Second try"}),
            ]
        )
    )
    response = await client.get("/items/1")
    assert (200, {"item_id": 1, "name": "Second try"}) == (response.status_code, response.json())
    assert 2 == router.calls.call_count


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/items/1"), ("DELETE", "/items/1")], ids=["put", "delete"]
)
async def test_idempotent_writes_are_retried(method: str, path: str, faulty_a: MakeA) -> None:
    """PUT and DELETE are idempotent: a failed connection is retried once."""
    client, router = await faulty_a(
        lambda r: r.route(method=method, path=path).mock(side_effect=refused)
    )
    body = {"name": "x"} if method == "PUT" else None
    response = await client.request(method, path, json=body)
    assert 503 == response.status_code
    assert 2 == router.calls.call_count


def closed_by_b(request: httpx.Request) -> httpx.Response:
    """Fail as a kept-alive connection B had already closed does."""
    raise ReusedConnectionClosed("connection closed before any answer", request=request)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "body"), [("GET", None), ("PUT", {"name": "x"}), ("POST", {"name": "x"})]
)
async def test_request_on_a_connection_b_closed_is_not_retried(
    method: str, body: dict[str, str] | None, faulty_a: MakeA
) -> None:
    """A request sent on a kept-alive connection B then closed may have reached B: 502, once."""
    path = "/items" if method == "POST" else "/items/1"
    client, router = await faulty_a(
        lambda r: r.route(method=method, path=path).mock(side_effect=closed_by_b)
    )
    response = await client.request(method, path, json=body)
    assert (502, {"detail": "service B closed the connection without answering"}) == (
        response.status_code,
        response.json(),
    )
    assert 1 == router.calls.call_count


@pytest.mark.anyio
async def test_second_failure_is_not_retried_again(faulty_a: MakeA) -> None:
    """At most one retry: a GET whose connection fails twice gives 503 after two attempts."""
    client, router = await faulty_a(
        lambda r: r.get("/items/1").mock(side_effect=[httpx.ConnectError("refused")] * 3)
    )
    response = await client.get("/items/1")
    assert 503 == response.status_code
    assert 2 == router.calls.call_count


@pytest.mark.anyio
async def test_post_is_never_retried(faulty_a: MakeA) -> None:
    """A POST is sent once, even when its connection failed."""
    client, router = await faulty_a(lambda r: r.post("/items").mock(side_effect=refused))
    response = await client.post("/items", json={"name": "once"})
    assert (503, {"detail": "service B unavailable"}) == (response.status_code, response.json())
    assert 1 == router.calls.call_count


@pytest.mark.anyio
async def test_read_timeout_gives_504_without_retry(faulty_a: MakeA) -> None:
    """B not answering in time gives 504; the request may have reached B, so no retry."""
    client, router = await faulty_a(
        lambda r: r.get("/items/1").mock(side_effect=httpx.ReadTimeout("slow"))
    )
    response = await client.get("/items/1")
    assert (504, {"detail": "service B timed out"}) == (response.status_code, response.json())
    assert 1 == router.calls.call_count


@pytest.mark.anyio
async def test_slow_answer_gives_504_instead_of_a_hang(faulty_a: MakeA) -> None:
    """An answer that takes longer than A's timeouts is given up on: 504, long before it comes."""
    client, _ = await faulty_a(lambda r: r.get("/items/1").mock(side_effect=too_slow))
    with anyio.fail_after(10):  # a guard against a hang, not a speed check
        response = await client.get("/items/1")
    assert (504, {"detail": "service B timed out"}) == (response.status_code, response.json())


@pytest.mark.anyio
async def test_connect_timeout_gives_503(faulty_a: MakeA) -> None:
    """A connection that cannot be made in time is B being unavailable: 503."""
    client, router = await faulty_a(
        lambda r: r.get("/b/").mock(side_effect=httpx.ConnectTimeout("no answer"))
    )
    response = await client.get("/a/call_b")
    assert (503, {"detail": "service B unavailable"}) == (response.status_code, response.json())
    assert 1 == router.calls.call_count


@pytest.mark.anyio
async def test_pool_timeout_gives_503(faulty_a: MakeA) -> None:
    """No free connection to B in time gives 503."""
    client, _ = await faulty_a(
        lambda r: r.get("/items").mock(side_effect=httpx.PoolTimeout("busy"))
    )
    response = await client.get("/items")
    assert 503 == response.status_code
    assert response.json()["detail"].startswith("service B unavailable")


@pytest.mark.anyio
@pytest.mark.parametrize("code", [500, 502, 504])
async def test_server_error_gives_502(code: int, faulty_a: MakeA) -> None:
    """B answering a 5xx it does not document gives 502, naming what B answered."""
    client, _ = await faulty_a(lambda r: r.get("/items/1").respond(code, json={"detail": "boom"}))
    response = await client.get("/items/1")
    assert (502, {"detail": f"service B's answer to GET /items/1 is an error: {code}"}) == (
        response.status_code,
        response.json(),
    )


@pytest.mark.anyio
async def test_body_not_json_gives_502(faulty_a: MakeA) -> None:
    """A body that is not JSON gives 502 saying so."""
    client, _ = await faulty_a(lambda r: r.get("/b/").respond(200, text="<html>oops</html>"))
    response = await client.get("/a/call_b")
    assert (502, {"detail": "service B's answer to GET /b/ (200) is not JSON"}) == (
        response.status_code,
        response.json(),
    )


@pytest.mark.anyio
async def test_wrong_shape_gives_502_naming_the_field(faulty_a: MakeA) -> None:
    """A body of the wrong shape gives 502 naming the field A expected."""
    client, _ = await faulty_a(
        lambda r: r.get("/items/1").respond(200, json={"item_id": 1, "title": "x"})
    )
    response = await client.get("/items/1")
    assert 502 == response.status_code
    expected = "service B's answer to GET /items/1 (200) does not match what A expects"
    assert f"{expected}: name: Field required" == response.json()["detail"]


@pytest.mark.anyio
async def test_wrong_shape_in_a_list_names_the_position(faulty_a: MakeA) -> None:
    """A list with one bad item gives 502 naming the item and the field."""
    client, _ = await faulty_a(
        lambda r: r.get("/items").respond(
            200, json=[{"item_id": 1, "name": "ok"}, {"item_id": "two", "name": "x"}]
        )
    )
    response = await client.get("/items")
    assert 502 == response.status_code
    assert "1.item_id: Input should be a valid integer" in response.json()["detail"]


# A passes B's bytes on, so B's answer must be what A's OpenAPI promises, type for type:
# each is a value a lenient check would convert (a string of digits, a number for a flag).
WRONG_TYPES = {
    "id as a string": ("GET", "/items/1", {"item_id": "1", "name": "x"}, 200, "item_id"),
    "id as a float": ("GET", "/items/1", {"item_id": 1.0, "name": "x"}, 200, "item_id"),
    "flag as a number": (
        "GET",
        "/items/1",
        {"item_id": 1, "name": "x", "is_offer": 1},
        200,
        "is_offer",
    ),
    "flag as a string in a list": (
        "GET",
        "/items",
        [{"item_id": 1, "name": "x", "is_offer": "true"}],
        200,
        "0.is_offer",
    ),
    "updated id as a string": ("PUT", "/items/1", {"item_id": "1", "name": "x"}, 200, "item_id"),
    "created id as a string": (
        "POST",
        "/items",
        {"message": "Item created successfully", "item_data": {"item_id": "2", "name": "x"}},
        201,
        "item_data.item_id",
    ),
}
SHOULD_BE = {"item_id": "a valid integer", "is_offer": "a valid boolean"}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(WRONG_TYPES.values()), ids=list(WRONG_TYPES))
async def test_wrong_json_type_gives_502_naming_the_field(
    case: tuple[str, str, object, int, str], faulty_a: MakeA
) -> None:
    """A value of the wrong JSON type in B's answer is a 502 naming the field, never passed on."""
    method, path, body, code, field = case
    client, _ = await faulty_a(lambda r: r.route(method=method, path=path).respond(code, json=body))
    sent = {"name": "x"} if method in {"PUT", "POST"} else None
    response = await client.request(method, path, json=sent)
    expected = (
        f"service B's answer to {method} {path} ({code}) does not match what A expects: "
        f"{field}: Input should be {SHOULD_BE[field.rsplit('.', 1)[-1]]}"
    )
    assert (502, expected) == (response.status_code, response.json()["detail"])


@pytest.mark.anyio
async def test_unexpected_status_gives_502(faulty_a: MakeA) -> None:
    """A status A does not expect for the operation gives 502."""
    client, _ = await faulty_a(lambda r: r.get("/items/1").respond(418, json={"detail": "teapot"}))
    response = await client.get("/items/1")
    assert (
        502,
        {"detail": "service B's answer to GET /items/1 has an unexpected status: 418"},
    ) == (
        response.status_code,
        response.json(),
    )


@pytest.mark.anyio
async def test_broken_connection_gives_502(faulty_a: MakeA) -> None:
    """B dropping the connection mid-answer gives 502; the request was sent, so no retry."""
    client, router = await faulty_a(
        lambda r: r.get("/items/1").mock(
            side_effect=httpx.RemoteProtocolError("Server disconnected")
        )
    )
    response = await client.get("/items/1")
    assert 502 == response.status_code
    assert response.json()["detail"].startswith("service B broke the connection")
    assert 1 == router.calls.call_count


@pytest.mark.anyio
# httpx abandons its own body generators when its decoder raises; trio, which has no
# async-generator finaliser, reports them as unraisable when they are collected.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_answer_that_cannot_be_decoded_gives_502(faulty_a: MakeA) -> None:
    """B claiming gzip for a body that is not gzip gives 502, not a 500."""
    # A stream, so that the body is decoded only when A reads it, as on the wire.
    not_gzip = httpx.Response(
        200, stream=httpx.ByteStream(b"not gzip"), headers={"content-encoding": "gzip"}
    )
    client, _ = await faulty_a(lambda r: r.get("/b/").mock(return_value=not_gzip))
    response = await client.get("/a/call_b")
    assert 502 == response.status_code
    assert response.json()["detail"].startswith("service B's answer cannot be decoded")


@pytest.mark.anyio
async def test_new_optional_field_from_b_is_passed_on(faulty_a: MakeA) -> None:
    """B adding a field A does not know breaks nothing: A passes B's body on as it is."""
    body = {"item_id": 1, "name": "x", "colour": "red"}
    client, _ = await faulty_a(lambda r: r.get("/items/1").respond(200, json=body))
    response = await client.get("/items/1")
    assert (200, body) == (response.status_code, response.json())


@pytest.mark.anyio
async def test_request_id_and_end_to_end_headers_reach_b(faulty_a: MakeA) -> None:
    """B receives the request id and the caller's own headers, but no hop-by-hop header."""
    client, router = await faulty_a(lambda r: r.get("/items/1", name="item"))
    await client.get(
        "/items/1",
        headers={
            "x-request-id": "req-42",
            "x-tenant": "blue",
            "connection": "keep-alive, x-private",
            "x-private": "for A only",
            "te": "trailers",
            "keep-alive": "timeout=5",
            "proxy-authorization": "Basic abc",
            "upgrade": "h2c",
        },
    )
    sent = router["item"].calls.last.request.headers
    assert ["req-42"] == sent.get_list("x-request-id")
    assert "blue" == sent["x-tenant"]
    for hop_by_hop in ("x-private", "te", "keep-alive", "proxy-authorization", "upgrade"):
        assert hop_by_hop not in sent
    assert sent.get("connection") != "keep-alive, x-private"


@pytest.mark.anyio
async def test_header_bytes_reach_b_unchanged(faulty_a: MakeA) -> None:
    """A header value that is not ASCII, and a repeated header, reach B as the caller sent them."""
    item = {"item_id": 1, "name": "x"}
    client, router = await faulty_a(lambda r: r.get("/items/1", name="item").respond(json=item))
    response = await client.get(
        "/items/1", headers=[(b"x-city", b"Z\xfcrich"), (b"x-tag", b"a"), (b"x-tag", b"b")]
    )
    assert 200 == response.status_code
    sent = router["item"].calls.last.request.headers
    assert [(b"x-city", b"Z\xfcrich")] == [h for h in sent.raw if h[0].lower() == b"x-city"]
    assert ["a", "b"] == sent.get_list("x-tag")


@pytest.mark.anyio
async def test_hop_by_hop_headers_from_b_are_not_returned(faulty_a: MakeA) -> None:
    """Headers B sends for its own connection stay on it; end-to-end ones come back."""
    headers = {
        "x-b-trace": "t1",
        "connection": "close, x-b-private",
        "x-b-private": "no",
        "keep-alive": "timeout=1",
    }
    client, _ = await faulty_a(
        lambda r: r.get("/items/1").respond(200, json={"item_id": 1, "name": "x"}, headers=headers)
    )
    response = await client.get("/items/1")
    assert "t1" == response.headers["x-b-trace"]
    for hop_by_hop in ("x-b-private", "keep-alive", "connection"):
        assert hop_by_hop not in response.headers


@pytest.mark.anyio
async def test_b_header_that_is_not_ascii_comes_back_unchanged(faulty_a: MakeA) -> None:
    """B's header bytes reach the caller as B sent them, even beyond ASCII."""
    headers = [(b"x-b-city", "Zürich".encode())]
    client, _ = await faulty_a(
        lambda r: r.get("/items/1").respond(200, json={"item_id": 1, "name": "x"}, headers=headers)
    )
    response = await client.get("/items/1")
    assert [(b"x-b-city", "Zürich".encode())] == [
        h for h in response.headers.raw if h[0] == b"x-b-city"
    ]


@pytest.mark.anyio
async def test_status_degraded_while_b_is_down(faulty_a: MakeA) -> None:
    """`GET /status` is 503 `degraded` while B cannot be reached."""
    client, _ = await faulty_a(lambda r: r.get("/status").mock(side_effect=refused))
    response = await client.get("/status")
    assert 503 == response.status_code
    assert {
        "status": "degraded",
        "service_b": {"status": "unavailable", "detail": "service B unavailable"},
    } == response.json()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (httpx.Response(500), "service B answered 500"),
        (httpx.Response(200, json={"status": "starting"}), "service B's status is not ok"),
        (httpx.ReadTimeout("slow"), "service B timed out"),
    ],
    ids=["500", "not ok", "timeout"],
)
async def test_status_degraded_while_b_is_unwell(
    answer: httpx.Response | Exception, detail: str, faulty_a: MakeA
) -> None:
    """`GET /status` is 503 `degraded` when B errs, is not ok, or is too slow."""
    client, _ = await faulty_a(lambda r: r.get("/status").mock(side_effect=[answer]))
    response = await client.get("/status")
    assert (503, "degraded", detail) == (
        response.status_code,
        response.json()["status"],
        response.json()["service_b"]["detail"],
    )


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path"), [("GET", "/items/1"), ("POST", "/items")])
async def test_b_store_unavailable_is_passed_on(faulty_a: MakeA, method: str, path: str) -> None:
    """B's 503 for an unreachable item store reaches A's caller as B sent it, not as 502."""
    detail = {"detail": "The item store is unavailable; try again later."}
    client, _ = await faulty_a(
        lambda router: router.route(path=path).mock(return_value=httpx.Response(503, json=detail))
    )
    response = await client.request(method, path, json={"name": "Spoon"})
    assert (503, detail) == (response.status_code, response.json())
