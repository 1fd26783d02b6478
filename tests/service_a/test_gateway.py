"""A in front of B, both in-process: every route, B's answers passed on unchanged."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import HTTPConnection

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.b_client import build_client, request_for_b
from service_a.dependencies import get_service_b_client
from service_a.transport import PooledHTTP11Transport
from tests.inprocess import A_URL, serve_in_process
from tests.live import refused_port
from tests.service_b.http_cases import CASES, HttpCase, check_response

# B's own table, for the item operations A forwards: through A, every answer is the same.
FORWARDED = [case for case in CASES if case.path.startswith("/items")]


@pytest.mark.anyio
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in FORWARDED])
async def test_item_answers_are_bs(case: HttpCase, a_client: httpx.AsyncClient) -> None:
    """Each item request through A gets exactly the answer B gives."""
    check_response(case, await a_client.request(case.method, case.path, **case.request_kwargs()))


@pytest.mark.anyio
async def test_a_answers_itself(a_client: httpx.AsyncClient) -> None:
    """`GET /a/` is A's own answer."""
    response = await a_client.get("/a/")
    assert (200, {"a": "a"}) == (response.status_code, response.json())


@pytest.mark.anyio
async def test_call_b(a_client: httpx.AsyncClient) -> None:
    """`GET /a/call_b` gives B's `GET /b/` body."""
    response = await a_client.get("/a/call_b")
    assert (200, {"b": "b"}) == (response.status_code, response.json())


@pytest.mark.anyio
async def test_status_reports_b_and_its_latency(a_client: httpx.AsyncClient) -> None:
    """`GET /status` is ok, with B's status and a latency, while B answers."""
    response = await a_client.get("/status")
    body = response.json()
    assert 200 == response.status_code
    assert {
        "status": "ok",
        "service_b": {"status": "ok", "latency_ms": body["service_b"]["latency_ms"]},
    } == body
    assert isinstance(body["service_b"]["latency_ms"], float)
    assert body["service_b"]["latency_ms"] >= 0


@pytest.mark.anyio
async def test_item_lifecycle_through_a(a_client: httpx.AsyncClient) -> None:
    """Create, read, list, update and delete through A reach B's store."""
    created = await a_client.post("/items", json={"name": "Via A", "is_offer": True})
    assert 201 == created.status_code
    location = created.headers["location"]
    assert {"item_id": 2, "name": "Via A", "is_offer": True} == (
        await a_client.get(location)
    ).json()
    assert 2 == len((await a_client.get("/items")).json())
    updated = await a_client.put(location, json={"name": "Changed"})
    assert {"item_id": 2, "name": "Changed"} == updated.json()
    assert 204 == (await a_client.delete(location)).status_code
    assert 404 == (await a_client.get(location)).status_code


@pytest.mark.anyio
async def test_a_refuses_bad_bodies_without_calling_b(
    a_app: FastAPI, a_client: httpx.AsyncClient
) -> None:
    """A checks a body itself: a 422 for a bad body comes without any call to B."""
    calls: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    recorder = httpx.AsyncClient(transport=httpx.MockTransport(record), base_url="http://b")
    a_app.dependency_overrides[get_service_b_client] = lambda: recorder
    for body in ({"name": 123}, {"name": ""}, {}, {"name": "x", "extra": 1}, [1]):
        response = await a_client.post("/items", json=body)
        assert 422 == response.status_code, body
        assert isinstance(response.json()["detail"], list)
    assert 422 == (await a_client.get("/items/0")).status_code
    assert 422 == (await a_client.put("/items/1", json={"name": None})).status_code
    assert [] == calls


@pytest.mark.anyio
async def test_request_id_is_kept(a_client: httpx.AsyncClient) -> None:
    """A caller's X-Request-ID comes back unchanged."""
    response = await a_client.get("/items/1", headers={"x-request-id": "abc-123"})
    assert "abc-123" == response.headers["x-request-id"]


@pytest.mark.anyio
@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "bad\u00e9"])
async def test_request_id_is_made_when_missing_or_unsafe(
    given: str | None, a_client: httpx.AsyncClient
) -> None:
    """Without a usable X-Request-ID, A makes a new one and returns it."""
    headers = {} if given is None else {b"x-request-id": given.encode()}
    response = await a_client.get("/a/", headers=headers)
    made = response.headers["x-request-id"]
    assert re.fullmatch("[0-9a-f]{32}", made), made


@pytest.mark.anyio
async def test_every_answer_carries_a_request_id(a_client: httpx.AsyncClient) -> None:
    """Errors carry the id too: a 404 from B, a 422 from A, an unknown path."""
    for path in ("/items/999", "/items/abc", "/nowhere"):
        response = await a_client.get(path, headers={"x-request-id": f"id{len(path)}"})
        assert f"id{len(path)}" == response.headers["x-request-id"]


@pytest.mark.anyio
async def test_one_log_line_per_request(
    a_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Each request logs exactly one access line, with its method, path, status and id."""
    caplog.set_level("INFO", logger="service_a.access")
    await a_client.get("/items/999", headers={"x-request-id": "trace-me"})
    lines = [r.getMessage() for r in caplog.records if r.name == "service_a.access"]
    assert 1 == len(lines)
    assert '"GET /items/999" 404' in lines[0]
    assert lines[0].endswith("request_id=trace-me")


@pytest.mark.anyio
async def test_openapi_documents_every_status(a_client: httpx.AsyncClient) -> None:
    """A's OpenAPI document lists what each route can answer, gateway errors included."""
    paths = (await a_client.get("/openapi.json")).json()["paths"]
    documented = {
        (path, method): set(operation["responses"])
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    gateway = {"502", "503", "504"}
    edge = {"400", "408", "414", "431", "503"}  # service_a.protocol, on every operation
    assert {"200"} | edge == documented["/a/", "get"]
    assert {"200"} | edge | gateway == documented["/a/call_b", "get"]
    assert {"200", "503"} | edge == documented["/status", "get"]
    assert {"200", "422"} | edge | gateway == documented["/items", "get"]
    assert {"201", "400", "413", "422"} | edge | gateway == documented["/items", "post"]
    assert {"200", "404", "422"} | edge | gateway == documented["/items/{item_id}", "get"]
    put = {"200", "400", "404", "413", "422"}
    assert put | edge | gateway == documented["/items/{item_id}", "put"]
    assert {"204", "404", "422"} | edge | gateway == documented["/items/{item_id}", "delete"]


@pytest.mark.parametrize(
    ("name", "transport_type"),
    [("fast", PooledHTTP11Transport), ("httpx", httpx.AsyncHTTPTransport)],
)
def test_transport_is_chosen_by_setting(name: str, transport_type: type) -> None:
    """SERVICE_A_TRANSPORT picks what carries A's requests; the client stays an AsyncClient."""
    client = build_client(ASettings.model_validate({"transport": name}))
    assert isinstance(client, httpx.AsyncClient)
    assert isinstance(client._transport, transport_type)  # noqa: SLF001
    assert 0.5 == client.timeout.connect


async def _broken_dependency() -> httpx.AsyncClient:
    raise RuntimeError("a bug in A")


@pytest.mark.anyio
async def test_unexpected_error_is_a_json_500_with_the_request_id(
    a_app: FastAPI, a_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug gives a JSON 500 without the traceback, still carrying the id and its log line."""
    caplog.set_level("INFO", logger="service_a.access")
    a_app.dependency_overrides[get_service_b_client] = _broken_dependency
    response = await a_client.get("/items/1", headers={"x-request-id": "bug-1"})
    assert (500, {"detail": "Internal server error"}) == (response.status_code, response.json())
    assert "bug-1" == response.headers["x-request-id"]
    lines = [r.getMessage() for r in caplog.records if r.name == "service_a.access"]
    assert any('"GET /items/1" 500' in line and "request_id=bug-1" in line for line in lines)
    assert "a bug in A" not in response.text


@pytest.mark.anyio
async def test_one_client_for_the_lifespan_closed_at_shutdown() -> None:
    """Every request gets the lifespan's one client for B; shutdown closes it."""
    with refused_port() as port:  # B is down
        app = create_a(ASettings(service_b_url=f"http://127.0.0.1:{port}"))
        seen: list[httpx.AsyncClient] = []

        async def spy(connection: HTTPConnection) -> httpx.AsyncClient:
            client = await get_service_b_client(connection)
            seen.append(client)
            return client

        app.dependency_overrides[get_service_b_client] = spy
        async with serve_in_process(app, base_url=A_URL) as a:
            for _ in range(3):
                assert 503 == (await a.get("/a/call_b")).status_code
            assert not seen[0].is_closed
    app.dependency_overrides.clear()
    assert 3 == len(seen)
    assert all(client is seen[0] for client in seen)
    assert seen[0].is_closed


def test_request_for_b_is_what_build_request_would_make() -> None:
    """A's request for B has build_request's URL, headers and timeouts, but no cookies."""
    client = httpx.AsyncClient(
        base_url="http://b.example/prefix", headers={"x-client": "a"}, timeout=3.0
    )
    client.cookies.set("session", "of-another-caller", domain="b.example")
    request = request_for_b(
        client,
        "POST",
        "/items",
        headers=[(b"user-agent", b"caller/1"), (b"x-tag", b"1"), (b"x-tag", b"2")],
        body={"name": "Zürich"},
        params={"limit": 5},
    )
    built = client.build_request(
        "POST", "/items", headers=[(b"user-agent", b"caller/1")], params={"limit": 5}
    )
    assert built.url == request.url
    assert "caller/1" == request.headers["user-agent"]
    assert "a" == request.headers["x-client"]
    assert ["1", "2"] == request.headers.get_list("x-tag")
    assert "cookie" in built.headers
    assert "cookie" not in request.headers
    assert built.extensions["timeout"] == request.extensions["timeout"]
    assert ("application/json", '{"name":"Zürich"}'.encode()) == (
        request.headers["content-type"],
        request.content,
    )
