"""Ordered session contracts: what A's callers do on a relayed WebSocket, and what they get.

A Pact message has contents, so the pact cannot hold a close that follows no message (a
binary frame on `/ws/echo` closes with 1003, `/ws/stream?interval=0` with 1008). A session
can: it is a list of steps, played in order by a client, each one line of
`contracts/sessions.json`:

    {"connect": "/ws/echo"}                      open the channel (with its query string)
    {"send_text": "hello"}                       send a text frame
    {"send_binary": "x"}                         send a binary frame (these bytes, UTF-8)
    {"send_text_of_bytes": 1048577}              send a text of that many bytes ("xxx...")
    {"login": "valid"}                           send a login signed now ("wrong secret": badly)
    {"expect_text": "Echo: hello"}               the next message is this text
    {"expect_json": {...}}                       the next message is JSON with these fields
    {"expect_close": 1003, "reason": "..."}      the next thing is a close with this code,
                                                 its reason matching (`*` is any text)
    {"http": "POST /items", "json": {...}, "status": 201}   an HTTP request, its status

In `expect_json`, an object needs the fields shown (others are ignored, as Pact ignores
them), a list the items shown, `"<string>"` is any string, and `"{item_id}"` the id of the
item the last `POST /items` created (also in an `http` path). A step with `"as": NAME`
is that client's (a session with two clients, for the broadcast); the default is `client`.

The sessions are A's: `SESSIONS` below, written to `contracts/sessions.json` by A's consumer
test (`test_consumer_sessions.py`, through `nox -s contracts -- --update`) and verified
against B in-process, live, and through A by `play`, which never raises for a failure: it
gives the step that failed and why.
"""

from __future__ import annotations

import fnmatch
import json
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import wsproto.events
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect

from service_b.login_message import login_message
from service_b.settings import DEMO_API_KEY, DEMO_API_SECRET
from tests.contracts.failures import Failed, describe, is_a_failure
from tests.ws import connect_ws

SESSIONS_NAME = "sessions.json"
COMMITTED_SESSIONS = Path(__file__).parents[2] / "contracts" / SESSIONS_NAME
#: How long one step may wait for B (or A) before it fails.
STEP_SECONDS = 5.0
#: B's and A's default largest WebSocket message (SERVICE_B_WS_MAX_MESSAGE_BYTES and
#: SERVICE_A_WS_MAX_MESSAGE_BYTES); one byte more closes with 1009.
MAX_MESSAGE_BYTES = 1024 * 1024
TOO_BIG = MAX_MESSAGE_BYTES + 1
BINARY_REFUSED = "binary frames are not supported; send text"
TOO_BIG_REASON = f"message is larger than {MAX_MESSAGE_BYTES} bytes"
NOT_JSON = "message is not valid JSON"

Step = dict[str, Any]


def login_text(secret: str = DEMO_API_SECRET) -> str:
    """Give a login for B's demo key signed now with `secret` (as `providers.login_text`).

    Not imported from there: that module loads Pact's verifier, which A's consumer tests
    of the sessions do not need (1 s of imports in their pytest process).
    """
    return login_message(DEMO_API_KEY, secret, "pact", f"{time.time():.6f}")


@dataclass(frozen=True)
class Session:
    """One ordered session: its name, the channel, and its steps."""

    name: str
    channel: str
    steps: tuple[Step, ...]

    def as_json(self) -> dict[str, Any]:
        """Give the session as it is written in contracts/sessions.json."""
        return {"name": self.name, "channel": self.channel, "steps": list(self.steps)}


def _refused(channel: str, send: Step, code: int, reason: str) -> tuple[Step, ...]:
    return ({"connect": channel}, send, {"expect_close": code, "reason": reason})


def _after_login(*steps: Step) -> tuple[Step, ...]:
    return (
        {"connect": "/ws/v5/private"},
        {"login": "valid"},
        {"expect_json": {"event": "login", "success": True}},
        *steps,
    )


_BINARY: Step = {"send_binary": "x"}
_TOO_BIG: Step = {"send_text_of_bytes": TOO_BIG}
_PUSHED = {"arg": {"channel": "items"}, "data": [{"item_id": "{item_id}"}]}

#: Every session A's callers rely on, in the order they are written.
SESSIONS: tuple[Session, ...] = (
    Session(
        "echo: a text is echoed, a binary frame closes with 1003",
        "/ws/echo",
        (
            {"connect": "/ws/echo"},
            {"send_text": "hello"},
            {"expect_text": "Echo: hello"},
            _BINARY,
            {"expect_close": 1003, "reason": BINARY_REFUSED},
        ),
    ),
    Session(
        "echo: a message over the size limit closes with 1009",
        "/ws/echo",
        _refused("/ws/echo", _TOO_BIG, 1009, TOO_BIG_REASON),
    ),
    Session(
        "stream: interval=0 closes with 1008, naming the interval",
        "/ws/stream",
        ({"connect": "/ws/stream?interval=0"}, {"expect_close": 1008, "reason": "interval*"}),
    ),
    Session(
        "stream: a message over the size limit closes with 1009",
        "/ws/stream",
        (
            {"connect": "/ws/stream?interval=60"},
            {"expect_json": {"timestamp": "<string>", "message": "<string>"}},
            _TOO_BIG,
            {"expect_close": 1009, "reason": TOO_BIG_REASON},
        ),
    ),
    Session(
        "json: a JSON text is answered, text that is not JSON closes with 1007",
        "/ws/json",
        (
            {"connect": "/ws/json"},
            {"send_text": '{"a": [1, 2]}'},
            {"expect_json": {"message": "<string>", "data": {"a": [1, 2]}}},
            {"send_text": "{not json"},
            {"expect_close": 1007, "reason": NOT_JSON},
        ),
    ),
    Session(
        "json: a binary frame closes with 1003",
        "/ws/json",
        _refused("/ws/json", _BINARY, 1003, BINARY_REFUSED),
    ),
    Session(
        "json: a message over the size limit closes with 1009",
        "/ws/json",
        _refused("/ws/json", _TOO_BIG, 1009, TOO_BIG_REASON),
    ),
    Session(
        "broadcast: a text reaches another client, a binary frame closes with 1003",
        "/ws/broadcast",
        (
            {"connect": "/ws/broadcast", "as": "listener"},
            {"connect": "/ws/broadcast", "as": "sender"},
            {"send_text": "hi all", "as": "sender"},
            {"expect_text": "New message: hi all", "as": "listener"},
            {"send_binary": "x", "as": "sender"},
            {"expect_close": 1003, "reason": BINARY_REFUSED, "as": "sender"},
        ),
    ),
    Session(
        "broadcast: a message over the size limit closes with 1009",
        "/ws/broadcast",
        _refused("/ws/broadcast", _TOO_BIG, 1009, TOO_BIG_REASON),
    ),
    Session(
        "private: login, ping, subscribe, then created, updated and deleted pushes",
        "/ws/v5/private",
        _after_login(
            {"send_text": "ping"},
            {"expect_text": "pong"},
            {"send_json": {"op": "subscribe", "args": [{"channel": "items"}]}},
            {"expect_json": {"event": "subscribe", "arg": {"channel": "items"}}},
            {"http": "POST /items", "json": {"name": "Pushed"}, "status": 201},
            {"expect_json": {**_PUSHED, "action": "created"}},
            {"http": "PUT /items/{item_id}", "json": {"name": "Renamed"}, "status": 200},
            {"expect_json": {**_PUSHED, "action": "updated"}},
            {"http": "DELETE /items/{item_id}", "status": 204},
            {"expect_json": {**_PUSHED, "action": "deleted"}},
        ),
    ),
    Session(
        "private: a failed login is answered, then closes with 1008",
        "/ws/v5/private",
        (
            {"connect": "/ws/v5/private"},
            {"login": "wrong secret"},
            {"expect_json": {"event": "login", "success": False}},
            {"expect_close": 1008, "reason": "authentication failed"},
        ),
    ),
    Session(
        "private: a request before login is answered, then closes with 1008",
        "/ws/v5/private",
        (
            {"connect": "/ws/v5/private"},
            {"send_json": {"op": "subscribe", "args": [{"channel": "items"}]}},
            {"expect_json": {"event": "error", "code": "60011"}},
            {"expect_close": 1008, "reason": "login required"},
        ),
    ),
    Session(
        "private: a binary frame after login closes with 1003",
        "/ws/v5/private",
        _after_login(_BINARY, {"expect_close": 1003, "reason": BINARY_REFUSED}),
    ),
    Session(
        "private: text that is not JSON after login closes with 1007",
        "/ws/v5/private",
        _after_login({"send_text": "{not json"}, {"expect_close": 1007, "reason": NOT_JSON}),
    ),
    Session(
        "private: a message over the size limit closes with 1009",
        "/ws/v5/private",
        _refused("/ws/v5/private", _TOO_BIG, 1009, TOO_BIG_REASON),
    ),
)

#: Close codes B documents for a relayed channel that no session plays, and why: each
#: needs a client that stops reading for the send timeout, or many logins at once, and
#: is the subject of behavioural tests of its own.
LEFT_TO_BEHAVIOURAL_TESTS: dict[tuple[str, int], str] = {
    (channel, 1013): "a client that stops reading: tests/service_b/test_slow_clients.py, "
    "tests/service_a/test_slow_clients.py"
    for channel in ("/ws/echo", "/ws/stream", "/ws/json", "/ws/broadcast", "/ws/v5/private")
}


def document() -> dict[str, Any]:
    """Give contracts/sessions.json as A's sessions write it."""
    return {
        "consumer": "service-a",
        "provider": "service-b",
        "about": "Ordered WebSocket sessions A's callers rely on; see contracts/README.md.",
        "sessions": [session.as_json() for session in SESSIONS],
        "notCovered": [
            {"channel": channel, "closeCode": code, "why": why}
            for (channel, code), why in LEFT_TO_BEHAVIOURAL_TESTS.items()
        ],
    }


def render() -> str:
    """Give contracts/sessions.json's text: one line per step, so a reader sees the order."""
    lines = ["{"]
    doc = document()
    lines.extend(
        f"  {json.dumps(key)}: {json.dumps(doc[key])},"
        for key in doc
        if key not in ("sessions", "notCovered")
    )
    lines.append('  "sessions": [')
    for i, session in enumerate(doc["sessions"]):
        lines.append("    {")
        lines.append(f'      "name": {json.dumps(session["name"])},')
        lines.append(f'      "channel": {json.dumps(session["channel"])},')
        lines.append('      "steps": [')
        steps = [f"        {json.dumps(step)}" for step in session["steps"]]
        lines.append(",\n".join(steps))
        lines.append("      ]")
        lines.append("    }" + ("," if i < len(doc["sessions"]) - 1 else ""))
    lines.append("  ],")
    lines.append('  "notCovered": [')
    lines.append(",\n".join(f"    {json.dumps(row)}" for row in doc["notCovered"]))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def load(path: Path = COMMITTED_SESSIONS) -> list[Session]:
    """Read the sessions of `path` (contracts/sessions.json)."""
    return [
        Session(s["name"], s["channel"], tuple(s["steps"]))
        for s in json.loads(path.read_text())["sessions"]
    ]


class Mismatch(Failed):
    """A step met something other than what the session expects."""


def _filled(value: Any, saved: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        name = value[1:-1]
        if name in saved:
            return saved[name]
    if isinstance(value, dict):
        return {key: _filled(item, saved) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, saved) for item in value]
    return value


def fits(expected: Any, got: Any) -> bool:
    """Tell whether `got` has what `expected` shows (fields, items, `<string>` for any text)."""
    if expected == "<string>":
        return isinstance(got, str)
    if isinstance(expected, dict):
        return isinstance(got, dict) and all(
            key in got and fits(value, got[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(got, list)
            and len(expected) == len(got)
            and all(fits(e, g) for e, g in zip(expected, got, strict=True))
        )
    return type(expected) is type(got) and bool(expected == got)


async def _next(ws: AsyncWebSocketSession) -> str | bytes:
    try:
        message = await ws.receive(STEP_SECONDS)
    except TimeoutError:
        raise Mismatch(f"nothing came within {STEP_SECONDS:g} s") from None
    if isinstance(message, wsproto.events.BytesMessage):
        return bytes(message.data)
    if isinstance(message, wsproto.events.TextMessage):
        return message.data
    raise Mismatch(f"expected a message or a close, got {message!r}")


#: What each sending step puts on the socket: a text, or bytes.
_SENT: dict[str, Any] = {
    "send_text": lambda value: value,
    "send_json": json.dumps,
    "send_binary": lambda value: value.encode(),
    "send_text_of_bytes": lambda size: "x" * size,
    "login": lambda how: login_text() if how == "valid" else login_text("wrong"),
}


async def _http(step: Step, client: httpx.AsyncClient, saved: dict[str, Any]) -> None:
    method, _, path = step["http"].partition(" ")
    for name, value in saved.items():
        path = path.replace(f"{{{name}}}", str(value))
    response = await client.request(method, path, json=step.get("json"))
    if response.status_code != step["status"]:
        raise Mismatch(f"expected status {step['status']}, got {response.status_code}")
    if method == "POST":
        saved["item_id"] = response.json()["item_data"]["item_id"]


async def _expect_close(step: Step, ws: AsyncWebSocketSession) -> None:
    try:
        got = await _next(ws)
    except WebSocketDisconnect as closed:
        code, reason = closed.code, closed.reason or ""
        wanted = (step["expect_close"], step["reason"])
        if code != wanted[0] or not fnmatch.fnmatchcase(reason, wanted[1]):
            raise Mismatch(f"expected close {wanted}, got close {(int(code), reason)}") from None
        return
    raise Mismatch(f"expected close {step['expect_close']}, got the message {got!r:.80}")


async def _step(
    step: Step,
    client: httpx.AsyncClient,
    sockets: dict[str, AsyncWebSocketSession],
    stack: AsyncExitStack,
    saved: dict[str, Any],
) -> None:
    who = step.get("as", "client")
    if "connect" in step:
        sockets[who] = await stack.enter_async_context(connect_ws(step["connect"], client))
    elif "http" in step:
        await _http(step, client, saved)
    elif sending := [kind for kind in _SENT if kind in step]:
        sent = _SENT[sending[0]](step[sending[0]])
        await (
            sockets[who].send_bytes(sent)
            if isinstance(sent, bytes)
            else sockets[who].send_text(sent)
        )
    elif "expect_close" in step:
        await _expect_close(step, sockets[who])
    else:
        await _expect_message(step, sockets[who], saved)


async def _expect_message(step: Step, ws: AsyncWebSocketSession, saved: dict[str, Any]) -> None:
    try:
        got = await _next(ws)
    except WebSocketDisconnect as closed:
        raise Mismatch(f"expected a message, got close {(closed.code, closed.reason)}") from None
    if "expect_text" in step:
        if got != step["expect_text"]:
            raise Mismatch(f"expected {step['expect_text']!r}, got {got!r:.80}")
        return
    expected = _filled(step["expect_json"], saved)
    try:
        value = json.loads(got)
    except ValueError:
        raise Mismatch(f"expected JSON like {expected}, got {got!r:.80}") from None
    if not fits(expected, value):
        raise Mismatch(f"expected JSON like {json.dumps(expected)}, got {got!r:.120}")


def _shown(step: Step) -> str:
    """Name a step in a few words: its kind and the start of its value (`expect_close 1003`)."""
    kind = next(iter(step))
    value = json.dumps(step[kind])
    return f"{kind} {value if len(value) <= 24 else value[:21] + '...'}"


async def play(session: Session, client: httpx.AsyncClient) -> str | None:
    """Play `session` through `client` (on B, or on A); give None, or the failed step and why."""
    saved: dict[str, Any] = {}
    number, step = 0, session.steps[0]
    try:
        with anyio.fail_after(STEP_SECONDS * len(session.steps) + STEP_SECONDS):
            async with AsyncExitStack() as stack:
                sockets: dict[str, AsyncWebSocketSession] = {}
                for number, step in enumerate(session.steps, 1):  # noqa: B007 - told below
                    if "connect" in step:
                        # A session's task group lives on: no cancel scope of its own here.
                        await _step(step, client, sockets, stack, saved)
                        continue
                    with anyio.fail_after(STEP_SECONDS * 2):
                        await _step(step, client, sockets, stack, saved)
    except TimeoutError:
        return f"step {number} {_shown(step)}: not done within {STEP_SECONDS * 2:g} s"
    except BaseException as exc:
        if not is_a_failure(exc):
            raise
        return f"step {number} {_shown(step)}: {describe(exc)}"
    return None


async def play_all(client: httpx.AsyncClient, sessions: list[Session]) -> list[str]:
    """Play every session through `client`; give one line per failure, naming session and step."""
    failed = []
    for session in sessions:
        problem = await play(session, client)
        if problem is not None:
            failed.append(f"session {session.name!r}, {problem}")
    return failed
