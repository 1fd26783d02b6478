"""The AsyncAPI checks themselves: they catch what breaks the specification."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from service_b.asyncapi import asyncapi_document
from tests.contracts.asyncapi_validation import errors

Document = dict[str, Any]


def _version(doc: Document) -> None:
    doc["asyncapi"] = "3.0"


def _action(doc: Document) -> None:
    doc["operations"]["receiveEchoText"]["action"] = "publish"


def _missing_channel(doc: Document) -> None:
    doc["operations"]["sendStreamUpdate"]["channel"] = {"$ref": "#/channels/nope"}


def _foreign_message(doc: Document) -> None:
    doc["operations"]["sendStreamUpdate"]["messages"] = [{"$ref": "#/channels/echo/messages/echo"}]


def _dangling_schema(doc: Document) -> None:
    doc["components"]["schemas"]["ItemsPush"]["properties"]["data"]["items"] = {
        "$ref": "#/$defs/Item"
    }


def _query_in_address(doc: Document) -> None:
    doc["channels"]["stream"]["address"] = "/ws/stream?interval=1"


def _bad_binding(doc: Document) -> None:
    doc["channels"]["stream"]["bindings"]["ws"]["method"] = "PUT"


BREAKS: list[tuple[Callable[[Document], None], str]] = [
    (_version, "/asyncapi"),
    (_action, "/operations/receiveEchoText/action"),
    (_missing_channel, "'#/channels/nope' does not resolve"),
    (_foreign_message, "not a message of #/channels/stream"),
    (_dangling_schema, "'#/$defs/Item' does not resolve"),
    (_query_in_address, "/channels/stream/address"),
    (_bad_binding, "/channels/stream/bindings/ws/method"),
]


def test_generated_document_is_valid() -> None:
    """B's document, as generated, has no error."""
    assert [] == errors(json.loads(json.dumps(asyncapi_document())))


@pytest.mark.parametrize(
    ("change", "where"), [pytest.param(*b, id=b[0].__name__.strip("_")) for b in BREAKS]
)
def test_break_is_caught(change: Callable[[Document], None], where: str) -> None:
    """A document that breaks AsyncAPI 3.0 is reported, at the place it breaks."""
    document = copy.deepcopy(asyncapi_document())
    change(document)
    found = errors(document)
    assert any(where in error for error in found), found
