"""B's Pact provider-state endpoint: off by default, and when on, it sets up the states."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service_b import Settings, create_app
from tests.inprocess import B_URL, serve_in_process

STATES = "/_pact/provider_states"


@pytest.fixture
async def verifying_b() -> AsyncIterator[httpx.AsyncClient]:
    """Give a client on a B started for contract verification."""
    app = create_app(Settings(database_path=":memory:", enable_pact_provider_states=True))
    async with serve_in_process(app, base_url=B_URL) as client:
        yield client


@pytest.mark.anyio
async def test_endpoint_is_off_by_default(b_client: httpx.AsyncClient) -> None:
    """A B started normally has no provider-state endpoint."""
    response = await b_client.post(STATES, json={"state": "item 1 exists", "action": "setup"})
    assert 404 == response.status_code


@pytest.mark.anyio
async def test_endpoint_is_never_documented(verifying_b: httpx.AsyncClient) -> None:
    """Even when on, the endpoint is not in B's OpenAPI document."""
    assert STATES not in (await verifying_b.get("/openapi.json")).json()["paths"]


@pytest.mark.anyio
async def test_item_1_exists_restores_a_fresh_store(verifying_b: httpx.AsyncClient) -> None:
    """`item 1 exists` puts the store back to its fresh state, whatever happened before."""
    await verifying_b.delete("/items/1")
    await verifying_b.post("/items", json={"name": "extra"})
    body = {"state": "item 1 exists", "params": {}, "action": "setup"}
    assert {"result": "set up"} == (await verifying_b.post(STATES, json=body)).json()
    assert [{"item_id": 1, "name": "The One Item"}] == (await verifying_b.get("/items")).json()


@pytest.mark.anyio
async def test_item_999_does_not_exist(verifying_b: httpx.AsyncClient) -> None:
    """`item 999 does not exist` leaves no item 999."""
    body = {"state": "item 999 does not exist", "action": "setup"}
    assert 200 == (await verifying_b.post(STATES, json=body)).status_code
    assert 404 == (await verifying_b.get("/items/999")).status_code


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        {"state": "item 1 exists", "action": "teardown"},
        {"state": "a client sent a text on /ws/echo", "params": {"text": "x"}, "action": "setup"},
        {"state": "", "params": {}, "action": "setup"},
    ],
    ids=["teardown", "message state", "no state"],
)
async def test_other_calls_change_nothing(
    body: dict[str, object], verifying_b: httpx.AsyncClient
) -> None:
    """Teardowns, and states that need no data, are answered 200 and change nothing."""
    await verifying_b.post("/items", json={"name": "kept"})
    response = await verifying_b.post(STATES, json=body)
    assert (200, {"result": "nothing to do"}) == (response.status_code, response.json())
    assert 2 == len((await verifying_b.get("/items")).json())


@pytest.mark.anyio
async def test_bad_call_is_a_422(verifying_b: httpx.AsyncClient) -> None:
    """An action that is neither setup nor teardown is refused with a JSON 422."""
    response = await verifying_b.post(STATES, json={"state": "x", "action": "explode"})
    assert 422 == response.status_code
