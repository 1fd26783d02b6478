"""Schemathesis on A in-process, with B in-process behind it through A's dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import schemathesis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from schemathesis.python import asgi
from starlette.requests import HTTPConnection

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.dependencies import get_service_b_client
from service_b import Settings as BSettings
from service_b import create_app as create_b
from tests.fuzz.conftest import config, errors_as_responses, stateful_test_case

SERVICE_TITLE = "Service A"

a_app = create_a(ASettings())
a_lifespan = a_app.router.lifespan_context


@asynccontextmanager
async def lifespan_with_b(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    """Run B in-process beside A, on the event loop Schemathesis runs A on."""
    b_app = create_b(BSettings(database_path=":memory:"))
    async with (
        a_lifespan(app) as a_state,
        LifespanManager(b_app) as b,
        httpx.AsyncClient(transport=httpx.ASGITransport(b.app), base_url="http://b") as client,
    ):
        yield {**(a_state or {}), "b_in_process": client}


a_app.router.lifespan_context = lifespan_with_b


async def b_in_process(connection: HTTPConnection) -> httpx.AsyncClient:
    """Give A the client on B in-process that its lifespan opened."""
    client: httpx.AsyncClient = connection.state.b_in_process
    return client


@pytest.fixture(autouse=True)
def _a_reaches_b_in_process() -> Iterator[None]:
    a_app.dependency_overrides[get_service_b_client] = b_in_process
    yield
    a_app.dependency_overrides.clear()


schema = schemathesis.openapi.from_asgi(
    "/openapi.json", errors_as_responses(a_app), config=config()
)


@schema.parametrize()
def test_every_answer_keeps_the_schema(case: schemathesis.Case[Any]) -> None:
    """Every answer of A in front of B is what A's OpenAPI document says."""
    case.call_and_validate()


class ItemLifecycle(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences that follow A's links: create, then read, update and delete the new item."""

    def setup(self) -> None:
        """Start each scenario on fresh services, so Hypothesis can replay it exactly."""
        asgi.shutdown_lifespans()


TestItemLifecycle = stateful_test_case(ItemLifecycle)
