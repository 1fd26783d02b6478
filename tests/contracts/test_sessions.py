"""The session contracts against B: today's B plays them all, altered Bs fail them by name.

Each altered B that changes a close code or a close reason, or drops a push, fails the
session that holds it, and the failure names the session and the step; every compatible
change passes them all.
"""

from __future__ import annotations

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.contracts.alterations import BREAKING, COMPATIBLE
from tests.contracts.catch_rate import sessions_of
from tests.contracts.pipeline import run, sessions_check, table
from tests.contracts.sessions import COMMITTED_SESSIONS, SESSIONS, load, render

#: For each altered B the sessions must catch: each session that fails, and its step.
CAUGHT = {
    "echo closes a binary frame with 1008": (
        "echo: a text is echoed, a binary frame closes with 1003",
        "step 5",
    ),
    "json closes text that is not JSON with 1003": (
        "json: a JSON text is answered, text that is not JSON closes with 1007",
        "step 5",
    ),
    "private closes a too-big message with 1011": (
        "private: a message over the size limit closes with 1009",
        "step 3",
    ),
    "broadcast closes a binary frame with 1011, undocumented": (
        "broadcast: a text reaches another client, a binary frame closes with 1003",
        "step 6",
    ),
    "deleted push dropped": (
        "private: login, ping, subscribe, then created, updated and deleted pushes",
        "step 13",
    ),
    "login-required close reason reworded": (
        "private: a request before login is answered, then closes with 1008",
        "step 4",
    ),
    "stream refusal closes with another code": (
        "stream: interval=0 closes with 1008, naming the interval",
        "step 2",
    ),
    "failed-login close code changes": (
        "private: a failed login is answered, then closes with 1008",
        "step 4",
        # B closes a request before login with the same code.
        "private: a request before login is answered, then closes with 1008",
        "step 4",
    ),
    "pong renamed": (
        "private: login, ping, subscribe, then created, updated and deleted pushes",
        "step 5",
    ),
}


def test_committed_sessions_are_a_s() -> None:
    """contracts/sessions.json is what A's sessions write (`nox -s contracts -- --update`)."""
    assert render() == COMMITTED_SESSIONS.read_text()
    assert [s.name for s in load()] == [s.name for s in SESSIONS]


def test_today_s_b_plays_every_session() -> None:
    """B as it is plays every session."""
    assert sessions_of(lambda app: app) == []


@pytest.mark.parametrize("name", list(CAUGHT))
def test_altered_b_fails_the_session_that_holds_the_change(name: str) -> None:
    """The altered B fails exactly the sessions named, each at the step named."""
    expected = CAUGHT[name]
    failed = sessions_of(BREAKING[name][0])
    assert [line.split(", step")[0] for line in failed] == [
        f"session {session!r}" for session in expected[::2]
    ]
    for line, step in zip(failed, expected[1::2], strict=True):
        assert f", {step} " in line


@pytest.mark.parametrize("name", list(COMPATIBLE))
def test_compatible_b_plays_every_session(name: str) -> None:
    """A change that breaks nobody fails no session."""
    assert sessions_of(COMPATIBLE[name]) == []


def test_a_failed_session_is_a_failed_row_naming_session_and_step() -> None:
    """In `nox -s contracts`, B failing a session is a FAILED row naming it and the step."""
    failed = sessions_of(BREAKING["echo closes a binary frame with 1008"][0])
    [row] = run(
        "sessions: B in-process plays every session", lambda: sessions_check(failed, "B"), []
    )
    assert not row.passed
    assert row.broke == failed
    assert "'echo: a text is echoed, a binary frame closes with 1003', step 5" in table([row])


def _refusing(app: ASGIApp) -> ASGIApp:
    async def refused(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await app(scope, receive, send)
            return
        await receive()  # the handshake
        await send({"type": "websocket.close", "code": 1008})  # before accepting: HTTP 403

    return refused


def test_a_refused_handshake_is_a_failed_step_not_a_crash() -> None:
    """A B that refuses every WebSocket fails each session at its first step, by name."""
    failed = sessions_of(_refusing)
    assert len(failed) == len(SESSIONS)
    assert all(", step 1 connect " in line for line in failed)
