"""The check without running anything: A's pact against B's OpenAPI and AsyncAPI documents."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import FormatChecker

from tests.contracts import static_check
from tests.contracts.static_check import (
    ASYNCAPI,
    OPENAPI,
    PACT,
    CannotCheck,
    main,
    problems,
    sent_contents,
)

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


def _write(path: Path, document: Document) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def test_command_takes_one_file_as_the_pact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A single file given is the pact, checked against the committed OpenAPI and AsyncAPI."""
    pact, openapi, asyncapi = _load()
    _rename_item_name(pact, openapi, asyncapi)
    assert 1 == main([_write(tmp_path / "pact.json", pact)])
    lines = capsys.readouterr().out.splitlines()
    assert "'a request for item 1'" == lines[0].split(": ", 1)[0]
    assert f"{len(pact['interactions'])} interactions checked, 1 problems" == lines[-1]


def test_command_takes_three_files_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three files given are the pact, the OpenAPI and the AsyncAPI document, in that order."""
    pact, openapi, asyncapi = _load()
    _b_changes_stream_message(pact, openapi, asyncapi)
    names = ("pact.json", "openapi.json", "asyncapi.json")
    argv = [_write(tmp_path / n, d) for n, d in zip(names, (pact, openapi, asyncapi), strict=True)]
    assert 1 == main(argv)
    lines = capsys.readouterr().out.splitlines()
    assert "'a periodic update'" == lines[0].split(": ", 1)[0]
    assert f"{len(pact['interactions'])} interactions checked, 1 problems" == lines[-1]


WRONG_FILES = [
    ([str(OPENAPI)], "pact {0}: not a Pact file (no 'interactions' at the top)"),
    ([str(PACT), str(PACT)], "openapi {0}: not an OpenAPI document (no 'openapi', 'paths'"),
    ([str(PACT), str(OPENAPI), str(OPENAPI)], "asyncapi {0}: not an AsyncAPI document"),
    (["missing.json"], "pact {0}: cannot read it: No such file or directory"),
    ([str(OPENAPI.parent / "README.md")], "pact {0}: not JSON: Expecting value"),
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [pytest.param(*case, id=f"{len(case[0])}-{Path(case[0][-1]).name}") for case in WRONG_FILES],
)
def test_command_refuses_a_wrong_file(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file or one of the wrong kind exits 2 with one line naming it, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert 2 == exit_info.value.code
    captured = capsys.readouterr()
    assert "" == captured.out
    assert message.format(argv[-1]) in captured.err.splitlines()[-1]
    assert "Traceback" not in captured.err


def test_check_refuses_to_run_without_date_time_checks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """If jsonschema cannot check `date-time`, the check fails loudly instead of passing."""
    monkeypatch.setattr(static_check, "FORMAT_CHECKER", FormatChecker(formats=()))
    with pytest.raises(CannotCheck, match="install rfc3339-validator"):
        problems(*_load())
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert 2 == exit_info.value.code
    assert "install rfc3339-validator" in capsys.readouterr().err


def _rename_item_name(pact: Document, _: Document, __: Document) -> None:
    body = _interaction(pact, "a request for item 1")["response"]["body"]["content"]
    body["title"] = body.pop("name")


def _status_418(pact: Document, _: Document, __: Document) -> None:
    # Not 400: the edge (service_b.protocol) may answer 400 on every operation.
    _interaction(pact, "a request for an item that does not exist")["response"]["status"] = 418


def _unknown_path(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a request for B's own answer")["request"]["path"] = "/bee/"


def _name_as_number(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a request to create an item")["request"]["body"]["content"]["name"] = 7


def _limit(value: str) -> Callable[[Document, Document, Document], None]:
    def change(pact: Document, _: Document, __: Document) -> None:
        _interaction(pact, "a request for a page of items")["request"]["query"]["limit"] = [value]

    change.__name__ = f"_limit_{value}"
    return change


def _b_caps_limit_at_10(_: Document, openapi: Document, __: Document) -> None:
    [limit] = [p for p in openapi["paths"]["/items"]["get"]["parameters"] if p["name"] == "limit"]
    limit["schema"] |= {"maximum": 10, "default": 10}


def _body_on_204(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a request to delete item 1")["response"]["body"] = {
        "content": {"detail": "deleted"},
        "contentType": "application/json",
        "encoded": False,
    }


def _stream_timestamp_yesterday(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a periodic update")["contents"]["content"]["timestamp"] = "yesterday"


def _b_drops_b(_: Document, openapi: Document, __: Document) -> None:
    del openapi["paths"]["/b/"]


def _b_requires_a_field(_: Document, openapi: Document, __: Document) -> None:
    openapi["components"]["schemas"]["Item"]["required"].append("price")


def _other_echo(pact: Document, _: Document, __: Document) -> None:
    sent_contents(_interaction(pact, "an echo of a text"))["content"] = "You said: hello"


def _login_shape(pact: Document, _: Document, __: Document) -> None:
    reply = sent_contents(_interaction(pact, "a successful login"))
    reply["content"] = {"op": "login", "code": "0"}


def _unknown_channel(pact: Document, _: Document, __: Document) -> None:
    _interaction(pact, "a periodic update")["metadata"]["channel"] = "/ws/ticks"


def _b_changes_stream_message(_: Document, __: Document, asyncapi: Document) -> None:
    del asyncapi["components"]["schemas"]["StreamUpdate"]["properties"]["timestamp"]


def _b_adds_a_stream_field(_: Document, __: Document, asyncapi: Document) -> None:
    update = asyncapi["components"]["schemas"]["StreamUpdate"]
    update["properties"]["sequence"] = {"type": "integer"}
    update["required"].append("sequence")


def _b_rewords_created(_: Document, openapi: Document, __: Document) -> None:
    message = openapi["components"]["schemas"]["ItemCreated"]["properties"]["message"]
    message["const"] = message["default"] = "Created"


def _b_rewords_stream(_: Document, __: Document, asyncapi: Document) -> None:
    message = asyncapi["components"]["schemas"]["StreamUpdate"]["properties"]["message"]
    message["const"] = message["default"] = "tick"


def _b_created_message_a_number(_: Document, openapi: Document, __: Document) -> None:
    openapi["components"]["schemas"]["ItemCreated"]["properties"]["message"] = {"type": "integer"}


def _b_item_id_a_string(_: Document, openapi: Document, __: Document) -> None:
    openapi["components"]["schemas"]["Item"]["properties"]["item_id"] = {"type": "string"}


def _b_login_event_renamed(_: Document, __: Document, asyncapi: Document) -> None:
    schemas = asyncapi["components"]["schemas"]
    for schema in schemas.values():
        event = schema.get("properties", {}).get("event", {})
        if event.get("const") == "login":
            event["const"] = event["default"] = "signin"


def _b_rewords_failed_login(_: Document, __: Document, asyncapi: Document) -> None:
    message = asyncapi["components"]["schemas"]["LoginFailed"]["properties"]["message"]
    message["const"] = message["default"] = "Wrong credentials"


ITEM_ANSWERS = {
    "a request for item 1",
    "a request for a page of items",
    "a request to rename item 1",
    "a request to create an item",
}
PAGE = {"a request for a page of items"}
MISMATCHES: list[tuple[Callable[[Document, Document, Document], None], set[str], str]] = [
    (_rename_item_name, {"a request for item 1"}, ".title: not a field of B's schema"),
    (_status_418, {"a request for an item that does not exist"}, "ResponseNotFound"),
    (_unknown_path, {"a request for B's own answer"}, "B's OpenAPI has no GET /bee/"),
    (_name_as_number, {"a request to create an item"}, ".name: 7 is not of type 'string'"),
    (_b_drops_b, {"a request for B's own answer"}, "B's OpenAPI has no GET /b/"),
    (_limit("500"), PAGE, "query parameter 'limit': .: 500 is greater than the maximum of 100"),
    (_limit("abc"), PAGE, "query parameter 'limit': Failed to cast value to integer type: abc"),
    (_b_caps_limit_at_10, PAGE, "query parameter 'limit': .: 20 is greater than the maximum of 10"),
    (_body_on_204, {"a request to delete item 1"}, "response 204: body: a 204 answer has no body"),
    (_other_echo, {"an echo of a text"}, "does not match '^Echo: '"),
    (_login_shape, {"a successful login"}, "fits no message"),
    (_unknown_channel, {"a periodic update"}, "'/ws/ticks' is not a channel of B"),
    (_b_changes_stream_message, {"a periodic update"}, ".timestamp: not a field of B's schema"),
    (
        _b_created_message_a_number,
        {"a request to create an item"},
        "body .message: B may send ['integer'] where A's pact requires ['string']",
    ),
    (_b_item_id_a_string, ITEM_ANSWERS, ".item_id: "),
    (
        _b_login_event_renamed,
        {"a successful login", "a failed login"},
        ".event: 'signin' was expected",
    ),
    (_b_rewords_failed_login, {"a failed login"}, ".message: 'Wrong credentials' was expected"),
    (_stream_timestamp_yesterday, {"a periodic update"}, ".timestamp: 'yesterday' is not a"),
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


#: Changes to B that A's pact does not mind: a wording it matches by type, a new field.
FITS: list[Callable[[Document, Document, Document], None]] = [
    _b_rewords_created,
    _b_rewords_stream,
    _b_requires_a_field,
    _b_adds_a_stream_field,
]


@pytest.mark.parametrize("change", [pytest.param(c, id=c.__name__.strip("_")) for c in FITS])
def test_what_a_does_not_match_exactly_may_change(
    change: Callable[[Document, Document, Document], None],
) -> None:
    """B rewording a text A matches by type, or adding a field, still fits A's pact.

    The example alone would fail: B pins the text as a constant, or requires the new field.
    """
    documents = copy.deepcopy(_load())
    change(*documents)
    assert [] == problems(*documents)
