"""B takes ids, queries and bodies in one spelling only: plain decimal integers, UTF-8 JSON."""

from __future__ import annotations

import httpx
import pytest

from tests.service_b.http_cases import HttpCase, check_response
from tests.service_b.strict_cases import STRICT_CASES

SEED = [{"item_id": 1, "name": "The One Item"}]


@pytest.mark.anyio
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in STRICT_CASES])
async def test_lax_input_is_refused(case: HttpCase, b_client: httpx.AsyncClient) -> None:
    """Each lax spelling of an id, a query or a body gets a JSON refusal, and changes nothing."""
    check_response(case, await b_client.request(case.method, case.path, **case.request_kwargs()))
    assert SEED == (await b_client.get("/items")).json()


@pytest.mark.anyio
async def test_duplicate_key_is_named(b_client: httpx.AsyncClient) -> None:
    """A 422 for a duplicate key says which key, where its object starts."""
    response = await b_client.post(
        "/items",
        content=b'{"name": "x", "is_offer": {"a": 1, "a": 2}}',
        headers={"content-type": "application/json"},
    )
    assert 422 == response.status_code
    [error] = response.json()["detail"]
    assert ("json_invalid", ["body", 26]) == (error["type"], error["loc"])
    assert "Duplicate key 'a'" == error["ctx"]["error"]


@pytest.mark.anyio
async def test_utf8_body_is_taken(b_client: httpx.AsyncClient) -> None:
    """A UTF-8 body with characters beyond ASCII is stored as sent."""
    response = await b_client.post(
        "/items",
        content='{"name": "caf\u00e9 \u2603 \U0001f600"}'.encode(),
        headers={"content-type": "application/json"},
    )
    assert 201 == response.status_code
    assert "caf\u00e9 \u2603 \U0001f600" == response.json()["item_data"]["name"]


@pytest.mark.anyio
async def test_openapi_keeps_ids_integers(b_client: httpx.AsyncClient) -> None:
    """The id is still documented as an integer in 1..2**63-1, its spelling said in words."""
    paths = (await b_client.get("/openapi.json")).json()["paths"]
    for method in ("get", "put", "delete"):
        [parameter] = paths["/items/{item_id}"][method]["parameters"]
        schema = parameter["schema"]
        assert ("integer", 1, 2**63 - 1) == (schema["type"], schema["minimum"], schema["maximum"])
        assert "decimal digits" in parameter["description"]


@pytest.mark.anyio
async def test_deep_duplicate_key_is_refused(b_client: httpx.AsyncClient) -> None:
    """A key repeated 400 objects deep is still a 422, though its object's offset is not found."""
    body = b'{"a":' * 400 + b'{"b": 1, "b": 2}' + b"}" * 400
    response = await b_client.post(
        "/items", content=body, headers={"content-type": "application/json"}
    )
    assert 422 == response.status_code
    [error] = response.json()["detail"]
    assert (["body", 0], "Duplicate key 'b'") == (error["loc"], error["ctx"]["error"])
