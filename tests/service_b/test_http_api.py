"""B's HTTP API, in-process, through httpx's ASGI transport and through Starlette's TestClient."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.service_b.http_cases import CASES, HttpCase, check_response

by_id = pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])


@pytest.mark.anyio
@by_id
async def test_answer_through_asgi_transport(case: HttpCase, b_client: httpx.AsyncClient) -> None:
    """Each request gets its documented status, body and headers from httpx.AsyncClient."""
    check_response(case, await b_client.request(case.method, case.path, **case.request_kwargs()))


@by_id
def test_answer_through_testclient(case: HttpCase, b_testclient: TestClient) -> None:
    """Each request gets its documented status, body and headers from TestClient."""
    check_response(case, b_testclient.request(case.method, case.path, **case.request_kwargs()))


@pytest.mark.anyio
async def test_item_lifecycle(b_client: httpx.AsyncClient) -> None:
    """An item can be created, read, listed, updated and deleted, and is gone afterwards."""
    created = await b_client.post("/items", json={"name": "Cup"})
    item_id = created.json()["item_data"]["item_id"]
    assert f"/items/{item_id}" == created.headers["location"]

    assert {"item_id": item_id, "name": "Cup"} == (await b_client.get(f"/items/{item_id}")).json()
    listed = (await b_client.get("/items")).json()
    assert [1, item_id] == [item["item_id"] for item in listed]

    updated = await b_client.put(f"/items/{item_id}", json={"name": "Mug", "is_offer": True})
    assert {"item_id": item_id, "name": "Mug", "is_offer": True} == updated.json()

    assert 204 == (await b_client.delete(f"/items/{item_id}")).status_code
    assert 404 == (await b_client.get(f"/items/{item_id}")).status_code


@pytest.mark.anyio
async def test_ids_are_never_reused(b_client: httpx.AsyncClient) -> None:
    """After the newest item is deleted, the next item gets a new id, not the freed one."""
    first = (await b_client.post("/items", json={"name": "a"})).json()["item_data"]["item_id"]
    await b_client.delete(f"/items/{first}")
    second = (await b_client.post("/items", json={"name": "b"})).json()["item_data"]["item_id"]
    assert first + 1 == second


@pytest.mark.anyio
async def test_pages_follow_id_order(b_client: httpx.AsyncClient) -> None:
    """`limit` and `offset` cut the id-ordered list into pages."""
    for name in ("a", "b", "c", "d"):
        await b_client.post("/items", json={"name": name})
    page = (await b_client.get("/items", params={"limit": 2, "offset": 1})).json()
    assert [2, 3] == [item["item_id"] for item in page]
    default_page = (await b_client.get("/items")).json()
    assert [1, 2, 3, 4, 5] == [item["item_id"] for item in default_page]


@pytest.mark.anyio
async def test_default_page_is_twenty(b_client: httpx.AsyncClient) -> None:
    """Without `limit`, a page holds 20 items; `limit=100` gets them all."""
    for number in range(25):
        await b_client.post("/items", json={"name": f"item {number}"})
    assert 20 == len((await b_client.get("/items")).json())
    assert 26 == len((await b_client.get("/items", params={"limit": 100})).json())


class ChunkedBody(httpx.AsyncByteStream):
    """A request body of many chunks and no length, iterated without an async generator.

    (An async generator left unfinished when the server stops reading is never closed on trio.)
    """

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> ChunkedBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None


@pytest.mark.anyio
async def test_streamed_body_over_limit_is_refused(b_client: httpx.AsyncClient) -> None:
    """A body sent in chunks, without Content-Length, is cut off at the limit with a JSON 413."""
    request = b_client.build_request("POST", "/items", headers={"content-type": "application/json"})
    request.stream = ChunkedBody(b'{"name": "', *[b"x" * 65536] * 20, b'"}')
    del request.headers["content-length"]
    response = await b_client.send(request)
    assert 413 == response.status_code
    assert {"detail": "Request body is larger than 1048576 bytes"} == response.json()


@pytest.mark.anyio
async def test_validation_error_quotes_input_safely(b_client: httpx.AsyncClient) -> None:
    """A 422 quoting a body with a NUL character is JSON that round-trips the NUL."""
    response = await b_client.post("/items", json="a\x00b")
    assert 422 == response.status_code
    assert (["body"], "a\x00b") == (
        response.json()["detail"][0]["loc"],
        response.json()["detail"][0]["input"],
    )


@pytest.mark.anyio
async def test_nul_in_name_is_stored(b_client: httpx.AsyncClient) -> None:
    """A name with a NUL character is stored and read back unchanged."""
    created = (await b_client.post("/items", json={"name": "a\x00b"})).json()
    item_id = created["item_data"]["item_id"]
    assert "a\x00b" == (await b_client.get(f"/items/{item_id}")).json()["name"]


@pytest.mark.anyio
async def test_openapi_documents_every_status(b_client: httpx.AsyncClient) -> None:
    """B's OpenAPI document lists the statuses each item operation can answer."""
    paths = (await b_client.get("/openapi.json")).json()["paths"]
    documented = {
        (path, method): set(operation["responses"])
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    edge = {"400", "408", "414", "431", "503"}  # service_b.protocol, on every operation
    assert {"200", "422"} | edge == documented["/items", "get"]
    assert {"201", "400", "413", "422"} | edge == documented["/items", "post"]
    assert {"200", "404", "422"} | edge == documented["/items/{item_id}", "get"]
    assert {"200", "400", "404", "413", "422"} | edge == documented["/items/{item_id}", "put"]
    assert {"204", "404", "422"} | edge == documented["/items/{item_id}", "delete"]
