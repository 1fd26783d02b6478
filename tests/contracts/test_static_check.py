"""The check without running anything: A's pact against B's OpenAPI and AsyncAPI documents."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.contracts.static_check import ASYNCAPI, OPENAPI, PACT, main, problems

Document = dict[str, Any]


def _load() -> tuple[Document, Document, Document]:
    pact, openapi, asyncapi = (json.loads(path.read_text()) for path in (PACT, OPENAPI, ASYNCAPI))
    return pact, openapi, asyncapi


def _interaction(pact: Document, description: str) -> Document:
    [found] = [i for i in pact["interactions"] if i["description"] == description]
    interaction: Document = found
    return interaction


def test_committed_pact_fits_bs_schemas() -> None:
    """Every interaction of A's pact is allowed by B's OpenAPI and AsyncAPI documents."""
    assert [] == problems(*_load())


def test_command_reports_success(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m tests.contracts.static_check` exits 0 and says how much it checked."""
    assert 0 == main([])
    assert capsys.readouterr().out.endswith("interactions checked, 0 problems\n")


def _rename_item_name(pact: Document, _: Document, __: Document) -> None:
    body = _interaction(pact, "a request for item 1")["response"]["body"]["content"]
    body["title"] = body.pop("name")


def _status_400(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a request for an item that does not exist")["response"]["status"] = 400


def _unknown_path(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a request for B's own answer")["request"]["path"] = "/bee/"


def _name_as_number(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a request to create an item")["request"]["body"]["content"]["name"] = 7


def _b_drops_b(_: Document, openapi: Document, __: Document) -> None:
    del openapi["paths"]["/b/"]


def _b_requires_a_field(_: Document, openapi: Document, __: Document) -> None:
    openapi["components"]["schemas"]["Item"]["required"].append("price")


def _other_echo(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "an echo of a text")["contents"]["content"] = "You said: hello"


def _login_shape(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a successful login")["contents"]["content"] = {"op": "login", "code": "0"}


def _unknown_channel(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a periodic update")["metadata"]["channel"] = "/ws/ticks"


def _b_changes_stream_message(_: Document, __: Document, asyncapi: Document) -> None:
    asyncapi["components"]["schemas"]["StreamUpdate"]["required"].append("sequence")


ITEM_ANSWERS = {
    "a request for item 1",
    "a request for a page of items",
    "a request to rename item 1",
    "a request to create an item",
}
MISMATCHES: list[tuple[Callable[[Document, Document, Document], None], set[str], str]] = [
    (_rename_item_name, {"a request for item 1"}, "'name' is a required property"),
    (_status_400, {"a request for an item that does not exist"}, "ResponseNotFound"),
    (_unknown_path, {"a request for B's own answer"}, "B's OpenAPI has no GET /bee/"),
    (_name_as_number, {"a request to create an item"}, ".name: 7 is not of type 'string'"),
    (_b_drops_b, {"a request for B's own answer"}, "B's OpenAPI has no GET /b/"),
    (_b_requires_a_field, ITEM_ANSWERS, "'price' is a required property"),
    (_other_echo, {"an echo of a text"}, "does not match '^Echo: '"),
    (_login_shape, {"a successful login"}, "fits no message"),
    (_unknown_channel, {"a periodic update"}, "'/ws/ticks' is not a channel of B"),
    (_b_changes_stream_message, {"a periodic update"}, "'sequence' is a required property"),
]


@pytest.mark.parametrize(
    ("change", "descriptions", "field"),
    [pytest.param(*mismatch, id=mismatch[0].__name__.strip("_")) for mismatch in MISMATCHES],
)
def test_mismatch_names_the_interaction_and_field(
    change: Callable[[Document, Document, Document], None], descriptions: set[str], field: str
) -> None:
    """A change to the pact or to B's schemas that breaks the fit is named, with the field."""
    documents = copy.deepcopy(_load())
    change(*documents)
    found = problems(*documents)
    named = {problem.split(": ", 1)[0] for problem in found}
    assert {repr(description) for description in descriptions} == named
    assert all(field in problem for problem in found), found
