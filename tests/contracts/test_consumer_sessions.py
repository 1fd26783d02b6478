"""A's consumer sessions: the ordered WebSocket sessions A's callers rely on, written down.

`tests/contracts/sessions.py` holds them (`SESSIONS`); this writes them where the pact is
written (`nox -s contracts` compares the file with contracts/sessions.json, and `--update`
replaces it), checks that they cover every close code B documents for a channel A relays,
every push action and `ping`/`pong`, and plays each session on one socket through A's real
relay in front of a stand-in for B that does B's part of it: A's client must see exactly
what the session says, closes included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.relay import RELAYED_PATHS
from tests.conftest import Backend, use_service_b
from tests.contracts.conftest import CONTRACTS
from tests.contracts.sessions import (
    LEFT_TO_BEHAVIOURAL_TESTS,
    SESSIONS,
    SESSIONS_NAME,
    Session,
    play,
    render,
)
from tests.ws import InProcessWebSocketTransport

ASYNCAPI = CONTRACTS / "service_b.asyncapi.json"


def test_sessions_are_written(pact_dir: Path) -> None:
    """The sessions land beside the pact, one line per step, as JSON a reader can load."""
    written = pact_dir / SESSIONS_NAME
    written.write_text(render())
    assert [s["name"] for s in json.loads(written.read_text())["sessions"]] == [
        s.name for s in SESSIONS
    ]


def _closes(session: Session) -> set[int]:
    return {step["expect_close"] for step in session.steps if "expect_close" in step}


def test_every_documented_close_of_a_relayed_channel_is_covered() -> None:
    """Each close code B documents for a relayed channel is a session's, or left, with why."""
    asyncapi = json.loads(ASYNCAPI.read_text())
    missing = []
    for channel in asyncapi["channels"].values():
        path = channel["address"]
        if path not in RELAYED_PATHS:
            continue
        covered = {code for s in SESSIONS if s.channel == path for code in _closes(s)}
        for close in channel.get("x-close-codes", []):
            code = close["code"]
            if code not in covered and (path, code) not in LEFT_TO_BEHAVIOURAL_TESTS:
                missing.append((path, code))
    assert missing == []


def _expected_json(session: Session) -> list[Any]:
    return [step["expect_json"] for step in session.steps if "expect_json" in step]


def test_every_push_action_and_ping_are_covered() -> None:
    """Every action of B's items push, and `ping` answered with `pong`, are in a session."""
    asyncapi = json.loads(ASYNCAPI.read_text())
    actions = set(asyncapi["components"]["schemas"]["ItemsPush"]["properties"]["action"]["enum"])
    pushed = {
        value["action"]
        for s in SESSIONS
        for value in _expected_json(s)
        if isinstance(value, dict) and "action" in value
    }
    assert actions <= pushed
    steps = [step for s in SESSIONS for step in s.steps]
    ping = steps.index({"send_text": "ping"})
    assert steps[ping + 1] == {"expect_text": "pong"}


def _example(value: Any) -> Any:
    if value == "<string>":
        return "text"
    if isinstance(value, dict):
        return {key: _example(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_example(item) for item in value]
    return value


async def _b_part(websocket: WebSocket, session: Session) -> None:
    """Do B's part of `session`: take each message sent, send each expected, close as told."""
    await websocket.accept()
    try:
        for step in session.steps[1:]:
            if "expect_close" in step:
                await websocket.close(step["expect_close"], step["reason"].replace("*", ""))
                return
            if "expect_text" in step:
                await websocket.send_text(step["expect_text"])
            elif "expect_json" in step:
                await websocket.send_text(json.dumps(_example(step["expect_json"])))
            elif (await websocket.receive())["type"] == "websocket.disconnect":
                return  # A closed the session itself (a message over its own size limit)
        await websocket.receive()
    except WebSocketDisconnect:
        return


#: The sessions of one client on one socket, which a stand-in for B can play alone.
ALONE = [s for s in SESSIONS if not any("http" in step or "as" in step for step in s.steps)]


def test_every_session_is_relayed_as_written(anyio_backend: Backend) -> None:
    """Through A, in front of a B doing its part, A's client sees each session as written.

    One A and one stand-in for B play the sessions one after another (an A per session
    would cost 1.5 s of CPU more in `nox -s contracts`); the stand-in plays the current one.
    """
    b_app = FastAPI()
    current: list[Session] = []

    async def endpoint(websocket: WebSocket) -> None:
        await _b_part(websocket, current[-1])

    for path in RELAYED_PATHS:
        b_app.add_api_websocket_route(path, endpoint)

    async def through_a() -> dict[str, str]:
        a_app = create_a(ASettings())
        failed = {}
        async with httpx.AsyncClient(
            transport=InProcessWebSocketTransport(b_app), base_url="http://b"
        ) as b_client:
            use_service_b(a_app, b_client)
            async with (
                LifespanManager(a_app) as manager,
                httpx.AsyncClient(
                    transport=InProcessWebSocketTransport(manager.app), base_url="http://a"
                ) as client,
            ):
                for session in ALONE:
                    current.append(session)
                    problem = await play(session, client)
                    if problem is not None:
                        failed[session.name] = problem
        return failed

    assert len(ALONE) >= 10
    assert anyio.run(through_a, backend=anyio_backend) == {}
