"""`nox -s contracts` never crashes: whatever a check meets is a FAILED row naming what broke."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from httpx_ws import WebSocketUpgradeError

from tests.contracts.alterations import BREAKING, a_in_front_of
from tests.contracts.conftest import COMMITTED_PACT
from tests.contracts.failures import Failed
from tests.contracts.pipeline import Row, comparator_command, comparator_findings, run, table
from tests.contracts.smoke import CHECKS, smoke


def _bare_assertion() -> str:
    # What `assert 201 == status` raises outside pytest's rewriting: no message at all.
    raise AssertionError


def _group() -> str:
    raise ExceptionGroup("a task group", [AssertionError("pushed item differs"), KeyError("data")])


def _pytest_raises_outside_pytest() -> str:
    with pytest.raises(ZeroDivisionError):
        pass
    return "-"  # pragma: no cover


def _upgrade_refused() -> str:
    request = httpx.Request("GET", "http://a/ws/echo")
    raise WebSocketUpgradeError(httpx.Response(403, request=request))


def _never_healthy() -> str:
    raise RuntimeError("http://127.0.0.1:8001/status did not become healthy")


def _key_error() -> str:
    return {"status": "ok"}["service_b"]


def _named() -> str:
    raise Failed("live B fails", ["a request for item 1"])


@pytest.mark.parametrize(
    ("check", "told"),
    [
        pytest.param(
            _bare_assertion,
            "assertion failed at tests/contracts/test_pipeline.py:",
            id="bare AssertionError",
        ),
        pytest.param(_group, "pushed item differs; KeyError: 'data'", id="ExceptionGroup"),
        pytest.param(_pytest_raises_outside_pytest, "DID NOT RAISE", id="pytest's Failed"),
        pytest.param(_upgrade_refused, "WebSocketUpgradeError", id="httpx-ws upgrade refused"),
        pytest.param(_never_healthy, "did not become healthy", id="A never healthy"),
        pytest.param(_key_error, "KeyError: 'service_b'", id="KeyError"),
        pytest.param(_named, "a request for item 1", id="a named failure"),
    ],
)
def test_any_failure_is_a_failed_row_saying_what_broke(
    check: Callable[[], str], told: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A check's failure of any kind is its FAILED row, with what broke under it."""
    [row] = run("the check", check, [])
    assert (False, "-") == (row.passed, row.interactions)
    assert told in " ".join(row.broke)
    assert "FAILED: " in capsys.readouterr().out
    rendered = table([row])
    assert "FAILED" in rendered
    assert told in rendered


def test_an_interruption_is_not_a_failure() -> None:
    """Ctrl+C stops the run instead of becoming a row."""

    def interrupted() -> str:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run("the check", interrupted, [])


def test_a_passing_check_has_nothing_under_it() -> None:
    """A check that passes is one ok line."""
    rows: list[Row] = run("the check", lambda: "3", [])
    assert [("3", True, [])] == [(row.interactions, row.passed, row.broke) for row in rows]
    assert 2 == len(table(rows).splitlines())


@pytest.mark.anyio
async def test_smoke_passes_on_a_in_front_of_b(a_app: FastAPI) -> None:
    """Every smoke check passes on A in front of B as it is."""
    async with a_in_front_of(lambda app: app, a_app) as client:
        results = await smoke(client)
    assert [(name, None) for name in CHECKS] == [(r.check, r.problem) for r in results]


@pytest.mark.anyio
async def test_smoke_names_each_check_an_altered_b_fails(a_app: FastAPI) -> None:
    """A B without `/b/` and with another echo prefix fails those two checks, by name, only."""
    without_b, _ = BREAKING["no /b/"]
    other_echo, _ = BREAKING["another echo prefix"]
    async with a_in_front_of(lambda app: other_echo(without_b(app)), a_app) as client:
        results = await smoke(client)
    problems = {r.check: r.problem for r in results if r.problem is not None}
    assert ["GET /a/call_b", "relay /ws/echo"] == sorted(problems)
    assert "expected 'Echo: smoke', got 'You said: smoke'" in problems["relay /ws/echo"]
    assert "GET /a/call_b: expected (200, {'b': 'b'}), got (502," in problems["GET /a/call_b"]


@pytest.fixture
def opc() -> str:
    """Give PactFlow's comparator command; skip where it is not installed (nox installs it)."""
    command = comparator_command()
    if command is None:
        pytest.skip("PactFlow's comparator (opc) is not installed; nox -s contracts installs it")
    return command


def test_pactflow_comparator_accepts_the_pact(opc: str) -> None:
    """PactFlow's comparator finds no error in the committed pact against both documents."""
    errors, _ = comparator_findings(opc)
    assert [] == errors


def test_pactflow_comparator_names_what_it_refuses(opc: str, tmp_path: Path) -> None:
    """A message without its AsyncAPI reference, and a request B does not allow, are named."""
    pact = json.loads(COMMITTED_PACT.read_text())
    for interaction in pact["interactions"]:
        if interaction["description"] == "a periodic update":
            del interaction["comments"]["references"]
        if interaction["description"] == "a request for item 1":
            interaction["request"]["path"] = "/items/0"
    changed = tmp_path / "pact.json"
    changed.write_text(json.dumps(pact))
    errors, _ = comparator_findings(opc, changed)
    assert [
        "'a periodic update': message.references.missing",
        "'a request for item 1': request.path-or-method.unknown",
    ] == sorted(": ".join(error.split(": ")[:2]) for error in errors)
