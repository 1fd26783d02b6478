"""B's schemas in contracts/ are what B's code produces, and both are valid documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from service_b.export_contracts import ASYNCAPI_FILE, COMMAND, OPENAPI_FILE, main, rendered
from tests.contracts.asyncapi_validation import errors
from tests.contracts.conftest import CONTRACTS


@pytest.mark.parametrize("name", [OPENAPI_FILE, ASYNCAPI_FILE])
def test_committed_schema_is_current(name: str) -> None:
    """The committed file is exactly what B's code generates now."""
    committed = (CONTRACTS / name).read_text()
    if committed != rendered()[name]:
        pytest.fail(f"contracts/{name} is out of date with B's code: run `{COMMAND}` and commit it")


def test_openapi_is_valid_openapi_3_1() -> None:
    """The OpenAPI document passes openapi-spec-validator."""
    document = json.loads((CONTRACTS / OPENAPI_FILE).read_text())
    assert "3.1.0" == document["openapi"]
    validate(document)


def test_asyncapi_is_valid_asyncapi_3() -> None:
    """The AsyncAPI document passes the specification's JSON Schema and its cross-object rules."""
    document = json.loads((CONTRACTS / ASYNCAPI_FILE).read_text())
    assert [] == errors(document)


def test_asyncapi_lists_every_endpoint_and_close_code() -> None:
    """Each WebSocket endpoint is a channel, with the close codes it uses."""
    document = json.loads((CONTRACTS / ASYNCAPI_FILE).read_text())
    codes = {
        channel["address"]: {close["code"] for close in channel["x-close-codes"]}
        for channel in document["channels"].values()
    }
    assert {
        "/ws/echo": {1003, 1009, 1013},
        "/ws/stream": {1008, 1009, 1013},
        "/ws/json": {1003, 1007, 1009, 1013},
        "/ws/broadcast": {1003, 1009, 1013},
        "/ws/v5/private": {1003, 1007, 1008, 1009, 1013},
    } == codes


def test_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command writes both files, then `--check` passes; a stale file fails it, named."""
    assert 0 == main(["--out", str(tmp_path)])
    assert rendered()[OPENAPI_FILE] == (tmp_path / OPENAPI_FILE).read_text()
    assert 0 == main(["--out", str(tmp_path), "--check"])
    (tmp_path / ASYNCAPI_FILE).write_text("{}\n")
    assert 1 == main(["--out", str(tmp_path), "--check"])
    assert ASYNCAPI_FILE in capsys.readouterr().err
    assert "{}\n" == (tmp_path / ASYNCAPI_FILE).read_text()
