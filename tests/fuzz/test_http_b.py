"""Schemathesis on B in-process: every check, valid and invalid data, coverage and stateful."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.python import asgi

from service_b import Settings, create_app
from tests.fuzz.conftest import config, errors_as_responses, stateful_test_case

SERVICE_TITLE = "Service B"

# from_asgi runs B's lifespan itself, one per test (and per stateful scenario, see below).
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    errors_as_responses(create_app(Settings(database_path=":memory:"))),
    config=config(),
)


@schema.parametrize()
def test_every_answer_keeps_the_schema(case: schemathesis.Case[Any]) -> None:
    """Every answer of B, to valid and invalid requests, is what its OpenAPI document says."""
    case.call_and_validate()


class ItemLifecycle(schema.as_state_machine()):  # type: ignore[misc]
    """Sequences that follow B's links: create, then read, update and delete the new item."""

    def setup(self) -> None:
        """Start each scenario on a fresh store, so Hypothesis can replay it exactly."""
        asgi.shutdown_lifespans()


TestItemLifecycle = stateful_test_case(ItemLifecycle)
