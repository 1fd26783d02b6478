"""The compatibility gate: changes to B's documents, breaking or not, used by A or not."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.relay import RELAYED_PATHS
from tests.contracts.compat import Finding, a_uses, gate, main, report
from tests.contracts.conftest import COMMITTED_PACT
from tests.contracts.static_check import ASYNCAPI, OPENAPI

Document = dict[str, Any]
Change = Callable[[Document, Document], None]


@cache
def _documents() -> tuple[str, str, str, str]:
    a_openapi = json.dumps(create_a(ASettings()).openapi())
    return OPENAPI.read_text(), ASYNCAPI.read_text(), COMMITTED_PACT.read_text(), a_openapi


def _gate(change: Change) -> list[Finding]:
    openapi_text, asyncapi_text, pact_text, a_text = _documents()
    old_openapi, old_asyncapi = json.loads(openapi_text), json.loads(asyncapi_text)
    new_openapi, new_asyncapi = copy.deepcopy(old_openapi), copy.deepcopy(old_asyncapi)
    change(new_openapi, new_asyncapi)
    a_openapi = json.loads(a_text)
    uses = a_uses(json.loads(pact_text), a_openapi, new_openapi, frozenset(RELAYED_PATHS))
    return gate(old_openapi, new_openapi, old_asyncapi, new_asyncapi, uses, a_openapi)


def _schema(openapi: Document, name: str) -> Document:
    schema: Document = openapi["components"]["schemas"][name]
    return schema


def _param(openapi: Document, name: str) -> Document:
    parameters: list[Document] = openapi["paths"]["/items"]["get"]["parameters"]
    [found] = [p for p in parameters if p["name"] == name]
    return found


def _name_limit_50(openapi: Document, _: Document) -> None:
    _schema(openapi, "ItemIn")["properties"]["name"]["maxLength"] = 50


def _page_limit_50(openapi: Document, _: Document) -> None:
    _param(openapi, "limit")["schema"]["maximum"] = 50


def _login_close_4003(_: Document, asyncapi: Document) -> None:
    closes = asyncapi["channels"]["private"]["x-close-codes"]
    [refusal] = [close for close in closes if close["code"] == 1008]
    refusal["code"] = 4003


def _deleted_renamed(_: Document, asyncapi: Document) -> None:
    asyncapi["components"]["schemas"]["ItemsPush"]["properties"]["action"]["enum"][2] = "removed"


def _no_pong(_: Document, asyncapi: Document) -> None:
    del asyncapi["channels"]["private"]["messages"]["pong"]


def _item_name_removed(openapi: Document, _: Document) -> None:
    item = _schema(openapi, "Item")
    del item["properties"]["name"]
    item["required"].remove("name")


def _id_as_string(openapi: Document, _: Document) -> None:
    _schema(openapi, "Item")["properties"]["item_id"] = {"type": "string"}


def _stream_wording(_: Document, asyncapi: Document) -> None:
    message = asyncapi["components"]["schemas"]["StreamUpdate"]["properties"]["message"]
    message["const"] = message["default"] = "tick"


def _failed_login_wording(_: Document, asyncapi: Document) -> None:
    message = asyncapi["components"]["schemas"]["LoginFailed"]["properties"]["message"]
    message["const"] = message["default"] = "Wrong credentials"


def _stream_message_a_number(_: Document, asyncapi: Document) -> None:
    asyncapi["components"]["schemas"]["StreamUpdate"]["properties"]["message"] = {"type": "integer"}


#: Changes that break A: each fails the gate, naming what of A's it hits.
BREAKING: dict[str, tuple[Change, str, str]] = {
    "B's name limit 200 to 50": (
        _name_limit_50,
        "POST /items: request body .name: A's POST /items accepts more: maxLength 200 became 50",
        "A's POST /items",
    ),
    "B's largest page 100 to 50": (
        _page_limit_50,
        "GET /items: query limit: maximum 100 became 50",
        "interaction 'a request for a page of items'",
    ),
    "failed-login close 1008 to 4003": (
        _login_close_4003,
        "channel /ws/v5/private: close 1008: removed",
        "interaction 'a failed login'",
    ),
    "deleted push renamed": (
        _deleted_renamed,
        "channel /ws/v5/private: message itemsPush .action: enum gained [\"'removed'\"]",
        "relayed channel /ws/v5/private",
    ),
    "pong dropped": (
        _no_pong,
        "channel /ws/v5/private: message pong: removed",
        "relayed channel /ws/v5/private",
    ),
    "item name removed": (
        _item_name_removed,
        "GET /items/{item_id}: response 200 body .name: removed",
        "A's GET /items/{item_id}",
    ),
    "failed-login wording A matches exactly": (
        _failed_login_wording,
        "channel /ws/v5/private: message loginFailed .message: constant 'Authentication failed'",
        "relayed channel /ws/v5/private",
    ),
    "stream update's message a number": (
        _stream_message_a_number,
        "channel /ws/stream: message update .message: type ['string'] became ['integer']",
        "relayed channel /ws/stream",
    ),
    "item id as a string": (
        _id_as_string,
        "GET /items/{item_id}: response 200 body .item_id: type ['integer'] became ['string']",
        "interaction 'a request for item 1'",
    ),
}


def _created_wording(openapi: Document, _: Document) -> None:
    message = _schema(openapi, "ItemCreated")["properties"]["message"]
    message["const"] = message["default"] = "Created"


def _status_version(openapi: Document, _: Document) -> None:
    status = _schema(openapi, "Status")
    status["properties"]["version"] = {"type": "string"}
    status["required"].append("version")


def _stream_sequence(_: Document, asyncapi: Document) -> None:
    update = asyncapi["components"]["schemas"]["StreamUpdate"]
    update["properties"]["sequence"] = {"type": "integer"}
    update["required"].append("sequence")


def _item_colour(openapi: Document, _: Document) -> None:
    _schema(openapi, "Item")["properties"]["colour"] = {"type": "string"}


def _root_message_removed(openapi: Document, _: Document) -> None:
    del openapi["paths"]["/"]


def _longer_names(openapi: Document, _: Document) -> None:
    _schema(openapi, "ItemIn")["properties"]["name"]["maxLength"] = 500


#: Changes that break nobody: each passes the gate (a warning at most).
COMPATIBLE: dict[str, Change] = {
    "wording of the created message A matches by type": _created_wording,
    "wording of the stream update A matches by type": _stream_wording,
    "a version on /status": _status_version,
    "a sequence number on stream updates": _stream_sequence,
    "a new optional field on Item": _item_colour,
    "GET / removed (A does not use it)": _root_message_removed,
    "longer names accepted": _longer_names,
}


@pytest.mark.parametrize(("change", "told", "use"), list(BREAKING.values()), ids=list(BREAKING))
def test_breaking_change_fails_naming_the_use(change: Change, told: str, use: str) -> None:
    """A breaking change to something A uses fails the gate, naming the change and the use."""
    findings = _gate(change)
    failed = [f for f in findings if f.fails]
    rendered = report(findings)
    assert any(
        told in line and use in line for line in rendered.splitlines() if "FAILED" in line
    ), rendered
    assert failed


@pytest.mark.parametrize("change", list(COMPATIBLE.values()), ids=list(COMPATIBLE))
def test_compatible_change_passes(change: Change) -> None:
    """A compatible change, or a breaking one to what A does not use, does not fail the gate."""
    findings = _gate(change)
    assert [] == [report([f]) for f in findings if f.fails]
    assert findings, "the change should be seen"


def test_unused_breaking_change_is_a_warning() -> None:
    """Removing an operation A does not use is breaking, reported as a warning, not a failure."""
    [finding] = _gate(_root_message_removed)
    assert (True, False) == (finding.difference.breaking, finding.fails)
    assert report([finding]).startswith("warning  GET /: operation: removed")


def test_a_changed_close_description_is_compatible() -> None:
    """A new wording of when B closes with a code is documentation: the code is unchanged."""

    def reworded(_: Document, asyncapi: Document) -> None:
        asyncapi["channels"]["stream"]["x-close-codes"][0]["reason"] = "a bad interval"

    [finding] = _gate(reworded)
    assert (False, False) == (finding.difference.breaking, finding.fails)


def test_a_reworded_close_reason_on_the_wire_fails() -> None:
    """A reason B sends (`x-reasons`) in other words is breaking: a client may tell them apart."""

    def reworded(_: Document, asyncapi: Document) -> None:
        for close in asyncapi["channels"]["private"]["x-close-codes"]:
            close["x-reasons"] = [
                "log in first" if r == "login required" else r for r in close.get("x-reasons", [])
            ]

    findings = _gate(reworded)
    assert sorted((f.difference.change, f.fails) for f in findings) == [
        ("reason 'log in first' added", False),
        ("reason 'login required' removed", True),
    ]


def test_no_change_is_no_difference() -> None:
    """B's documents as they are against themselves: nothing to report."""
    assert "no difference" == report(_gate(lambda _, __: None))


def test_command_reports_bs_contract_against_head(capsys: pytest.CaptureFixture[str]) -> None:
    """The command prints the gate's report and exits 1 exactly when a line is FAILED."""
    code = main(["--base", "HEAD"])
    out = capsys.readouterr().out
    assert (1 if "FAILED" in out else 0) == code
    assert out.strip()
