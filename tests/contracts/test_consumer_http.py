"""A's consumer contract with B over HTTP: A's real code against Pact's mock of B.

Each test declares what A sends B and what A needs back, then runs A's own routes (or, for
B's 422 answers, which A's own checks never let through, A's client layer with the very
expectations its routes use, `EXPECTED`) with the B-client dependency pointed at the Pact
mock server. The interactions land in the pact file.

Only requests A may send are described: A refuses an id out of 1..2^63-1 itself, so no
interaction asks B for item 0 or -1 (B's OpenAPI does not allow them either, and PactFlow's
comparator would refuse the pact). The 422 interactions keep the shape of B's refusal, which
A passes on should B ever be stricter than A; their requests fit B's OpenAPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pact import Pact, match

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.b_client import call_service_b
from service_a.http_api import EXPECTED
from tests.conftest import use_service_b

JSON = "application/json"
ITEM_1 = {"item_id": match.int(1), "name": match.str("The One Item")}
VALIDATION_ERRORS = {
    "detail": match.each_like(
        {
            "type": match.str("missing"),
            "loc": match.each_like(match.str("body")),
            "msg": match.str("Field required"),
        }
    )
}
MISSING_999 = {"detail": match.str("Item with ID 999 not found.")}


@pytest.fixture
def pact(pact_dir: Path) -> Iterator[Pact]:
    """Give a fresh Pact between A and B; its interactions are merged into the pact file."""
    pact = Pact("service-a", "service-b").with_specification("V4")
    yield pact
    pact.write_file(pact_dir, overwrite=False)


@pytest.fixture
def a_app() -> Iterator[FastAPI]:
    """Give A, whose dependency override is cleared afterwards."""
    app = create_a(ASettings())
    yield app
    app.dependency_overrides.clear()


@asynccontextmanager
async def a_against(pact: Pact, a_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Serve `pact`'s mock of B and give a client on A pointed at it.

    Leaving the block checks that A made exactly the requests the interactions describe.
    """
    with pact.serve(addr="127.0.0.1") as mock_b:
        async with httpx.AsyncClient(base_url=str(mock_b.url)) as b_client:
            use_service_b(a_app, b_client)
            async with (
                LifespanManager(a_app) as manager,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(manager.app), base_url="http://a"
                ) as client,
            ):
                yield client


@asynccontextmanager
async def b_client_against(pact: Pact) -> AsyncIterator[httpx.AsyncClient]:
    """Serve `pact`'s mock of B and give a client on it, for A's client layer."""
    with pact.serve(addr="127.0.0.1") as mock_b:
        async with httpx.AsyncClient(base_url=str(mock_b.url)) as client:
            yield client


def _answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json() if response.content else None


@pytest.mark.anyio
async def test_call_b(pact: Pact, a_app: FastAPI) -> None:
    """`GET /a/call_b` needs B's `GET /b/` to answer 200 with a string `b`."""
    (
        pact.upon_receiving("a request for B's own answer")
        .with_request("GET", "/b/")
        .will_respond_with(200)
        .with_body({"b": match.str("b")}, content_type=JSON)
    )
    async with a_against(pact, a_app) as client:
        response = await client.get("/a/call_b")
    assert (200, {"b": "b"}) == _answer(response)


@pytest.mark.anyio
async def test_status(pact: Pact, a_app: FastAPI) -> None:
    """A's health check needs B's `GET /status` to answer exactly `{"status": "ok"}`."""
    (
        pact.upon_receiving("a health check")
        .with_request("GET", "/status")
        .will_respond_with(200)
        .with_body({"status": "ok"}, content_type=JSON)
    )
    async with a_against(pact, a_app) as client:
        response = await client.get("/status")
    assert (200, "ok") == (response.status_code, response.json()["service_b"]["status"])


@pytest.mark.anyio
async def test_list_items(pact: Pact, a_app: FastAPI) -> None:
    """Listing passes A's page on to B and needs a list of items back."""
    (
        pact.upon_receiving("a request for a page of items")
        .given("item 1 exists")
        .with_request("GET", "/items")
        .with_query_parameters({"limit": "20", "offset": "0"})
        .will_respond_with(200)
        .with_body(match.each_like(ITEM_1), content_type=JSON)
    )
    async with a_against(pact, a_app) as client:
        response = await client.get("/items")
    assert (200, [{"item_id": 1, "name": "The One Item"}]) == _answer(response)


@pytest.mark.anyio
async def test_list_items_refused(pact: Pact) -> None:
    """B refuses a page it cannot give with FastAPI's 422; A's client layer accepts that shape."""
    (
        pact.upon_receiving("a request for a page of zero items")
        .with_request("GET", "/items")
        .with_query_parameters({"limit": "0", "offset": "0"})
        .will_respond_with(422)
        .with_body(VALIDATION_ERRORS, content_type=JSON)
    )
    async with b_client_against(pact) as b_client:
        response = await call_service_b(
            b_client,
            "GET",
            "/items",
            expect=EXPECTED["list_items"],
            headers=[],
            params={"limit": 0, "offset": 0},
        )
    assert 422 == response.status_code


@pytest.mark.anyio
async def test_get_item(pact: Pact, a_app: FastAPI) -> None:
    """Reading an item needs B's item with an integer id and a string name."""
    (
        pact.upon_receiving("a request for item 1")
        .given("item 1 exists")
        .with_request("GET", "/items/1")
        .will_respond_with(200)
        .with_body(ITEM_1, content_type=JSON)
    )
    async with a_against(pact, a_app) as client:
        response = await client.get("/items/1")
    assert (200, {"item_id": 1, "name": "The One Item"}) == _answer(response)


@pytest.mark.anyio
async def test_get_missing_item(pact: Pact, a_app: FastAPI) -> None:
    """A missing item is B's 404 with a string detail, which A passes on unchanged."""
    (
        pact.upon_receiving("a request for an item that does not exist")
        .given("item 999 does not exist")
        .with_request("GET", "/items/999")
        .will_respond_with(404)
        .with_body(MISSING_999, content_type=JSON)
    )
    async with a_against(pact, a_app) as client:
        response = await client.get("/items/999")
    assert (404, {"detail": "Item with ID 999 not found."}) == _answer(response)


@pytest.mark.anyio
async def test_create_item(pact: Pact, a_app: FastAPI) -> None:
    """Creating needs B's 201 with the new item and its URL in `Location`."""
    (
        pact.upon_receiving("a request to create an item")
        .with_request("POST", "/items")
        .with_body({"name": "Spoon", "is_offer": True}, content_type=JSON)
        .will_respond_with(201)
        .with_header("Location", match.regex("/items/2", regex=r"^/items/[0-9]+$"))
        .with_body(
            {
                "message": match.str("Item created successfully"),
                "item_data": {"item_id": match.int(2), "name": "Spoon", "is_offer": True},
            },
            content_type=JSON,
        )
    )
    async with a_against(pact, a_app) as client:
        response = await client.post("/items", json={"name": "Spoon", "is_offer": True})
    assert 201 == response.status_code
    assert "/items/2" == response.headers["location"]
    assert {"item_id": 2, "name": "Spoon", "is_offer": True} == response.json()["item_data"]


@pytest.mark.anyio
async def test_create_item_refused(pact: Pact) -> None:
    """B refuses a body without a name with 422; A's client layer accepts that shape."""
    (
        pact.upon_receiving("a request to create an item without a name")
        .with_request("POST", "/items")
        .with_body({"is_offer": True}, content_type=JSON)
        .will_respond_with(422)
        .with_body(VALIDATION_ERRORS, content_type=JSON)
    )
    async with b_client_against(pact) as b_client:
        response = await call_service_b(
            b_client,
            "POST",
            "/items",
            expect=EXPECTED["create_item"],
            headers=[],
            body={"is_offer": True},
        )
    assert 422 == response.status_code


@pytest.mark.anyio
async def test_update_item(pact: Pact, a_app: FastAPI) -> None:
    """Updating needs B's updated item back."""
    (
        pact.upon_receiving("a request to rename item 1")
        .given("item 1 exists")
        .with_request("PUT", "/items/1")
        .with_body({"name": "Renamed"}, content_type=JSON)
        .will_respond_with(200)
        .with_body({"item_id": 1, "name": "Renamed"}, content_type=JSON)
    )
    async with a_against(pact, a_app) as client:
        response = await client.put("/items/1", json={"name": "Renamed"})
    assert (200, {"item_id": 1, "name": "Renamed"}) == _answer(response)


@pytest.mark.anyio
async def test_update_missing_item(pact: Pact, a_app: FastAPI) -> None:
    """Updating a missing item is B's 404, passed on."""
    (
        pact.upon_receiving("a request to rename an item that does not exist")
        .given("item 999 does not exist")
        .with_request("PUT", "/items/999")
        .with_body({"name": "Renamed"}, content_type=JSON)
        .will_respond_with(404)
        .with_body(MISSING_999, content_type=JSON)
    )
    async with a_against(pact, a_app) as client:
        response = await client.put("/items/999", json={"name": "Renamed"})
    assert (404, {"detail": "Item with ID 999 not found."}) == _answer(response)


@pytest.mark.anyio
async def test_update_item_refused(pact: Pact) -> None:
    """B refuses an empty name with 422; A's client layer accepts that shape."""
    (
        pact.upon_receiving("a request to give item 1 an empty name")
        .given("item 1 exists")
        .with_request("PUT", "/items/1")
        .with_body({"name": ""}, content_type=JSON)
        .will_respond_with(422)
        .with_body(VALIDATION_ERRORS, content_type=JSON)
    )
    async with b_client_against(pact) as b_client:
        response = await call_service_b(
            b_client,
            "PUT",
            "/items/1",
            expect=EXPECTED["update_item"],
            headers=[],
            body={"name": ""},
        )
    assert 422 == response.status_code


@pytest.mark.anyio
async def test_delete_item(pact: Pact, a_app: FastAPI) -> None:
    """Deleting needs B's 204 with no body."""
    (
        pact.upon_receiving("a request to delete item 1")
        .given("item 1 exists")
        .with_request("DELETE", "/items/1")
        .will_respond_with(204)
    )
    async with a_against(pact, a_app) as client:
        response = await client.delete("/items/1")
    assert (204, b"") == (response.status_code, response.content)


@pytest.mark.anyio
async def test_delete_missing_item(pact: Pact, a_app: FastAPI) -> None:
    """Deleting a missing item is B's 404, passed on."""
    (
        pact.upon_receiving("a request to delete an item that does not exist")
        .given("item 999 does not exist")
        .with_request("DELETE", "/items/999")
        .will_respond_with(404)
        .with_body(MISSING_999, content_type=JSON)
    )
    async with a_against(pact, a_app) as client:
        response = await client.delete("/items/999")
    assert (404, {"detail": "Item with ID 999 not found."}) == _answer(response)
