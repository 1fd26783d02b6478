"""Fuzzing fixtures: Schemathesis' configuration, a count of the cases sent, and a summary."""

from __future__ import annotations

import json
import os
import time
import unittest
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.generation.stateful.state_machine import APIStateMachine
from starlette.types import ASGIApp, Receive, Scope, Send

CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")
CASES: Counter[str] = Counter()
#: WebSocket fuzzing sessions played, per channel (counted by test_websockets).
SESSIONS: Counter[str] = Counter()
SECONDS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run without Schemathesis' pytest plugin, which pyproject.toml turns off."""
    if not config.pluginmanager.has_plugin("schemathesis"):
        message = (
            "tests/fuzz needs Schemathesis' pytest plugin, off by default (see pyproject.toml): "
            "run `nox -s fuzz`, or pytest with `-p schemathesis` (or `--ignore=tests/fuzz`)"
        )
        raise pytest.UsageError(message)


def config() -> Any:
    """Give the Schemathesis configuration the live runs use too.

    `FUZZ_MAX_EXAMPLES` raises (or lowers) the budget and `FUZZ_SEED` replaces the seed, as
    `nox -s fuzz -- --max-examples N --seed S` does for the live runs (tests/fuzz/run.py).
    """
    loaded = schemathesis.Config.from_path(CONFIG_FILE)
    if budget := os.environ.get("FUZZ_MAX_EXAMPLES"):
        loaded.projects.default.generation.update(max_examples=int(budget))
    if seed := os.environ.get("FUZZ_SEED"):
        loaded.projects.default.seed = int(seed)
    return loaded


def stateful_test_case(machine: type[APIStateMachine]) -> type[unittest.TestCase]:
    """Give the unittest case that runs `machine` under the configuration, as the live runs do.

    Schemathesis' `TestCase` comes with Hypothesis settings of its own (no seed, 100
    scenarios, its own step count, Hypothesis' example database), so the configuration
    never reached it. This seeds the machine as `schemathesis run` seeds its stateful phase,
    and gives the case the settings that phase takes from the configuration: the budget
    (`max-examples` scenarios), `max-steps` steps each, and no example database.
    """
    project = machine.schema.config
    hypothesis.seed(project.seed)(machine)
    machine.rule_order_seed = project.seed
    test_case = machine.TestCase
    test_case.settings = hypothesis.settings(
        project.get_hypothesis_settings(phase="stateful", apply_ci_profile=False),
        # As Schemathesis' own state machine settings: an API scenario is slow by nature.
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    return test_case


def errors_as_responses(app: ASGIApp) -> ASGIApp:
    """Let Schemathesis see an unhandled error as the 500 the client got, not a test crash.

    Starlette sends the 500 and then re-raises the error for the server to log; in-process,
    that would end the test before Schemathesis could report the case (ST101) with its curl.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except Exception:
            if scope["type"] != "http":
                raise

    return wrapped


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:  # noqa: ARG001 - hook signature
    """Count each case sent, per service."""
    CASES[case.operation.schema.raw_schema["info"]["title"]] += 1


@pytest.fixture(autouse=True)
def _time_fuzzing(request: pytest.FixtureRequest) -> Any:
    started = time.perf_counter()
    yield
    title = getattr(request.module, "SERVICE_TITLE", None)
    if title is not None:
        SECONDS[title] = SECONDS.get(title, 0.0) + time.perf_counter() - started


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report the cases sent to each service, and how fast; the WebSocket sessions played.

    With `FUZZ_REPORT` set, the figures are also written there as JSON, for `nox -s fuzz`.
    """
    if report := os.environ.get("FUZZ_REPORT"):
        figures = {
            "http": {t: [CASES[t], SECONDS.get(t, 0.0)] for t in CASES},
            "ws": dict(SESSIONS),
        }
        Path(report).write_text(json.dumps(figures))
    for address, count in sorted(SESSIONS.items()):
        terminalreporter.write_line(f"websocket fuzzing, {address}: {count} sessions")
    for title, count in sorted(CASES.items()):
        seconds = SECONDS.get(title) or 1.0
        terminalreporter.write_line(
            f"schemathesis in-process, {title}: {count} cases in {seconds:.1f} s "
            f"({count / seconds:.0f} cases/s)"
        )
