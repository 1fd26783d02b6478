"""A in front of an altered B, both in-process: a value of the wrong JSON type is a 502.

A passes B's bytes on to its callers, so it must check them as strictly as its own OpenAPI
promises them: a string of digits is not an integer, and 0 or 1 is not a boolean.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.contracts.alterations import a_in_front_of, flags_as_numbers, ids_as_strings

WHAT = "does not match what A expects"
INTEGER, BOOLEAN = "Input should be a valid integer", "Input should be a valid boolean"


@pytest.fixture
async def a_before_string_ids(a_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Give a client on A in front of a B that sends its item ids as strings."""
    async with a_in_front_of(ids_as_strings, a_app) as client:
        yield client


@pytest.fixture
async def a_before_number_flags(a_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Give a client on A in front of a B that sends its offer flags as 0 or 1."""
    async with a_in_front_of(flags_as_numbers, a_app) as client:
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        pytest.param("GET", "/items/1", None, "item_id", id="read"),
        pytest.param("GET", "/items", None, "0.item_id", id="list"),
        pytest.param("PUT", "/items/1", {"name": "x"}, "item_id", id="update"),
        pytest.param("POST", "/items", {"name": "x"}, "item_data.item_id", id="create"),
    ],
)
async def test_id_as_a_string_is_a_502_naming_it(
    method: str, path: str, body: object, field: str, a_before_string_ids: httpx.AsyncClient
) -> None:
    """B sending `"item_id": "1"` gives A's caller a 502 naming the field, not B's bytes."""
    response = await a_before_string_ids.request(method, path, json=body)
    code = 201 if method == "POST" else 200
    expected = f"service B's answer to {method} {path} ({code}) {WHAT}: {field}: {INTEGER}"
    assert (502, expected) == (response.status_code, response.json()["detail"])


@pytest.mark.anyio
async def test_flag_as_a_number_is_a_502_naming_it(
    a_before_number_flags: httpx.AsyncClient,
) -> None:
    """B sending `"is_offer": 1` gives A's caller a 502 naming the field."""
    response = await a_before_number_flags.post("/items", json={"name": "x", "is_offer": True})
    expected = f"service B's answer to POST /items (201) {WHAT}: item_data.is_offer: {BOOLEAN}"
    assert (502, expected) == (response.status_code, response.json()["detail"])


@pytest.mark.anyio
async def test_answers_without_the_field_still_pass(
    a_before_number_flags: httpx.AsyncClient,
) -> None:
    """The altered B is B otherwise: an item without a flag passes through A unchanged."""
    response = await a_before_number_flags.get("/items/1")
    assert (200, {"item_id": 1, "name": "The One Item"}) == (response.status_code, response.json())
