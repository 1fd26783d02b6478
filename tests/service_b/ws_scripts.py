"""B's WebSocket API as scripts of frames sent and answers expected, run by several clients."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from httpx_ws import WebSocketDisconnect
from starlette.websockets import WebSocketDisconnect as StarletteDisconnect

from service_b.login_message import login_message
from tests.ws import connect_ws

MAX_MESSAGE = 1024 * 1024
STREAM_TEXT = "This is a periodic update from the server."
RECEIVE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Send:
    """Send a text frame."""

    text: str


@dataclass(frozen=True)
class SendBytes:
    """Send a binary frame."""

    data: bytes


@dataclass(frozen=True)
class SendLogin:
    """Send a login signed now (shifted by `skew` seconds), in seconds, milliseconds or decimal.

    B accepts a signature once, so the default is a timestamp to the microsecond: two
    logins a test sends in the same second (or millisecond) are then still two signatures.
    """

    api_key: str = "abc"
    secret: str = "def"
    skew: float = 0.0
    unit: str = "decimal"
    passphrase: str = "passphrase"

    def text(self) -> str:
        """Give the signed login message."""
        now = time.time() + self.skew
        timestamp = {
            "s": str(int(now)),
            "ms": str(int(now * 1000)),
            "decimal": f"{now:.6f}",
        }[self.unit]
        return login_message(self.api_key, self.secret, self.passphrase, timestamp)


@dataclass(frozen=True)
class Receive:
    """Expect exactly this text."""

    text: str


@dataclass(frozen=True)
class ReceiveJson:
    """Expect JSON equal to `value` (or, with `subset`, holding at least its keys and values)."""

    value: dict[str, Any]
    subset: bool = False


@dataclass(frozen=True)
class ReceiveStreamUpdate:
    """Expect one update of `/ws/stream`, stamped within the last few seconds."""


@dataclass(frozen=True)
class Closed:
    """Expect the server to close with this code, and a reason that contains `reason`."""

    code: int
    reason: str = ""


Step = Send | SendBytes | SendLogin | Receive | ReceiveJson | ReceiveStreamUpdate | Closed


@dataclass(frozen=True)
class Script:
    """A conversation with one endpoint."""

    id: str
    path: str
    steps: list[Step] = field(default_factory=list)


SUBSCRIBE = json.dumps({"op": "subscribe", "args": [{"channel": "items"}]})
SUBSCRIBED = {"event": "subscribe", "arg": {"channel": "items"}}
LOGGED_IN = {"event": "login", "success": True}
LOGIN_FAILED = {"event": "login", "success": False, "message": "Authentication failed"}
ERROR = {"event": "error"}


def _login(args: Any) -> str:
    return json.dumps({"op": "login", "args": args})


def _good_args(**changes: Any) -> list[dict[str, Any]]:
    timestamp = str(int(time.time()))
    args: dict[str, Any] = {
        "apiKey": "abc",
        "passphrase": "p",
        "timestamp": timestamp,
        "sign": json.loads(login_message("abc", "def", "p", timestamp))["args"][0]["sign"],
    }
    args.update(changes)
    return [{k: v for k, v in args.items() if v is not None}]


def _failed_login(script_id: str, text: str) -> Script:
    return Script(
        script_id,
        "/ws/v5/private",
        [Send(text), ReceiveJson(LOGIN_FAILED), Closed(1008, "authentication failed")],
    )


BAD_SIGNED_LOGINS: list[tuple[str, dict[str, Any]]] = [
    ("wrong secret", {"secret": "xyz"}),
    ("unknown key", {"api_key": "nobody"}),
    ("stale timestamp", {"skew": -31}),
    ("future timestamp", {"skew": 31}),
    ("future timestamp beyond the skew", {"skew": 7}),
    ("stale ms timestamp", {"skew": -60, "unit": "ms"}),
]

SCRIPTS = [
    # /ws/echo
    Script(
        "echo text",
        "/ws/echo",
        [
            Send("hello"),
            Receive("Echo: hello"),
            Send(""),
            Receive("Echo: "),
            Send("héllo ✓"),
            Receive("Echo: héllo ✓"),
        ],
    ),
    Script("echo binary", "/ws/echo", [SendBytes(b"\x00\x01"), Closed(1003, "binary")]),
    Script(
        "echo largest message",
        "/ws/echo",
        [Send("x" * MAX_MESSAGE), Receive("Echo: " + "x" * MAX_MESSAGE)],
    ),
    Script("echo too big", "/ws/echo", [Send("x" * (MAX_MESSAGE + 1)), Closed(1009)]),
    Script(
        "echo too big in bytes",
        "/ws/echo",
        [Send("é" * (MAX_MESSAGE // 2 + 1)), Closed(1009)],
    ),
    Script("echo binary too big", "/ws/echo", [SendBytes(b"x" * (MAX_MESSAGE + 1)), Closed(1009)]),
    # /ws/stream
    Script("stream default", "/ws/stream", [ReceiveStreamUpdate()]),
    Script(
        "stream fast",
        "/ws/stream?interval=0.01",
        [ReceiveStreamUpdate(), ReceiveStreamUpdate(), ReceiveStreamUpdate()],
    ),
    Script(
        "stream ignores input",
        "/ws/stream?interval=0.05",
        [Send("hello"), SendBytes(b"\x00"), ReceiveStreamUpdate(), ReceiveStreamUpdate()],
    ),
    Script(
        "stream input too big",
        "/ws/stream?interval=30",
        [ReceiveStreamUpdate(), Send("x" * (MAX_MESSAGE + 1)), Closed(1009)],
    ),
    *[
        Script(
            f"stream interval {value}", f"/ws/stream?interval={value}", [Closed(1008, "interval")]
        )
        for value in ("0", "0.009", "60.5", "-1", "abc", "nan", "inf", "")
    ],
    Script("stream interval 60", "/ws/stream?interval=60", [ReceiveStreamUpdate()]),
    # /ws/json
    Script(
        "json values",
        "/ws/json",
        [
            Send('{"a": [1, 2.5, null, true]}'),
            ReceiveJson({"message": "Received JSON data", "data": {"a": [1, 2.5, None, True]}}),
            Send("[]"),
            ReceiveJson({"message": "Received JSON data", "data": []}),
            Send("42"),
            ReceiveJson({"message": "Received JSON data", "data": 42}),
            Send('"ü"'),
            ReceiveJson({"message": "Received JSON data", "data": "ü"}),
            Send('"\\ud800"'),
            ReceiveJson({"message": "Received JSON data", "data": "\ud800"}),
        ],
    ),
    Script("json not json", "/ws/json", [Send("{oops"), Closed(1007, "JSON")]),
    Script("json NaN", "/ws/json", [Send("[NaN]"), Closed(1007, "JSON")]),
    Script("json deep", "/ws/json", [Send("[" * 100_000 + "]" * 100_000), Closed(1007, "JSON")]),
    Script("json huge integer", "/ws/json", [Send("1" * 5000), Closed(1007, "out of range")]),
    Script("json huge float", "/ws/json", [Send("[1, -1e400]"), Closed(1007, "out of range")]),
    Script(
        "json tiny float",
        "/ws/json",
        [Send("1e-400"), ReceiveJson({"message": "Received JSON data", "data": 0.0})],
    ),
    Script("json binary", "/ws/json", [SendBytes(b"{}"), Closed(1003, "binary")]),
    Script("json too big", "/ws/json", [Send(" " * (MAX_MESSAGE + 1)), Closed(1009)]),
    # /ws/v5/private
    Script(
        "private login and subscribe",
        "/ws/v5/private",
        [SendLogin(), ReceiveJson(LOGGED_IN), Send(SUBSCRIBE), ReceiveJson(SUBSCRIBED)],
    ),
    Script("private login in s", "/ws/v5/private", [SendLogin(unit="s"), ReceiveJson(LOGGED_IN)]),
    Script("private login in ms", "/ws/v5/private", [SendLogin(unit="ms"), ReceiveJson(LOGGED_IN)]),
    Script(
        "private login decimal",
        "/ws/v5/private",
        [SendLogin(unit="decimal"), ReceiveJson(LOGGED_IN)],
    ),
    Script(
        "private login 25 s late", "/ws/v5/private", [SendLogin(skew=-25), ReceiveJson(LOGGED_IN)]
    ),
    Script(
        "private login 3 s early", "/ws/v5/private", [SendLogin(skew=3), ReceiveJson(LOGGED_IN)]
    ),
    Script(
        "private ping",
        "/ws/v5/private",
        [
            Send("ping"),
            Receive("pong"),
            SendLogin(),
            ReceiveJson(LOGGED_IN),
            Send("ping"),
            Receive("pong"),
        ],
    ),
    *[
        Script(
            f"private {name}",
            "/ws/v5/private",
            [SendLogin(**login), ReceiveJson(LOGIN_FAILED), Closed(1008, "authentication failed")],
        )
        for name, login in BAD_SIGNED_LOGINS
    ],
    _failed_login("private args missing", json.dumps({"op": "login"})),
    _failed_login("private args empty", _login([])),
    _failed_login("private args not a list", _login("abc")),
    _failed_login("private args garbage", _login([1, 2])),
    _failed_login("private no sign", _login(_good_args(sign=None))),
    _failed_login("private sign not text", _login(_good_args(sign=12))),
    _failed_login("private sign surrogate", _login(_good_args(sign="\ud800"))),
    _failed_login("private timestamp words", _login(_good_args(timestamp="yesterday"))),
    _failed_login("private timestamp surrogate", _login(_good_args(timestamp="\ud800"))),
    _failed_login("private api key surrogate", _login(_good_args(apiKey="\ud800"))),
    _failed_login("private timestamp number", _login(_good_args(timestamp=int(time.time())))),
    _failed_login("private two logins in one", _login(_good_args() * 2)),
    Script(
        "private subscribe before login",
        "/ws/v5/private",
        [Send(SUBSCRIBE), ReceiveJson(ERROR, subset=True), Closed(1008, "login required")],
    ),
    Script(
        "private array before login",
        "/ws/v5/private",
        [Send("[1]"), ReceiveJson(ERROR, subset=True), Closed(1008, "login required")],
    ),
    Script("private not json", "/ws/v5/private", [Send("hello"), Closed(1007, "JSON")]),
    Script("private binary", "/ws/v5/private", [SendBytes(b"{}"), Closed(1003)]),
    Script(
        "private unknown op after login",
        "/ws/v5/private",
        [
            SendLogin(),
            ReceiveJson(LOGGED_IN),
            Send('{"op": "order"}'),
            ReceiveJson(ERROR, subset=True),
            Send('{"op": "\\ud800"}'),  # an op that UTF-8 cannot carry, quoted in the answer
            ReceiveJson(ERROR, subset=True),
            Send('{"op": "subscribe", "args": [{"channel": "trades"}]}'),
            ReceiveJson(ERROR, subset=True),
            Send("[]"),
            ReceiveJson(ERROR, subset=True),
            Send(SUBSCRIBE),
            ReceiveJson(SUBSCRIBED),
        ],
    ),
    Script(
        "private not json after login",
        "/ws/v5/private",
        [SendLogin(), ReceiveJson(LOGGED_IN), Send("{"), Closed(1007, "JSON")],
    ),
]


def check_json(step: ReceiveJson, text: str) -> None:
    """Assert that `text` is the JSON the step expects."""
    value = json.loads(text)
    if step.subset:
        assert step.value == {key: value.get(key) for key in step.value}, value
        if step.value == ERROR:
            assert isinstance(value["code"], str)
            assert isinstance(value["msg"], str)
    else:
        assert step.value == value


def check_stream_update(text: str) -> None:
    """Assert that `text` is a fresh update of `/ws/stream`."""
    update = json.loads(text)
    assert {"timestamp", "message"} == set(update)
    assert STREAM_TEXT == update["message"]
    stamped = datetime.fromisoformat(update["timestamp"])
    assert stamped.tzinfo is not None
    assert abs(datetime.now(UTC) - stamped) < timedelta(seconds=5)


def check_close(step: Closed, code: int, reason: str) -> None:
    """Assert that the session closed with the step's code and reason."""
    assert step.code == code, reason
    assert step.reason in reason


async def run_with_httpx_ws(script: Script, client: httpx.AsyncClient, **kwargs: Any) -> None:
    """Play `script` through httpx-ws on `client` (in-process or over the network)."""
    async with connect_ws(
        script.path, client, max_message_size_bytes=4 * MAX_MESSAGE, **kwargs
    ) as ws:
        for step in script.steps:
            match step:
                case Send(text):
                    await ws.send_text(text)
                case SendBytes(data):
                    await ws.send_bytes(data)
                case SendLogin():
                    await ws.send_text(step.text())
                case Receive(text):
                    assert text == await ws.receive_text(RECEIVE_TIMEOUT)
                case ReceiveJson():
                    check_json(step, await ws.receive_text(RECEIVE_TIMEOUT))
                case ReceiveStreamUpdate():
                    check_stream_update(await ws.receive_text(RECEIVE_TIMEOUT))
                case Closed():
                    with pytest.raises(WebSocketDisconnect) as closed:
                        await ws.receive_text(RECEIVE_TIMEOUT)
                    check_close(step, closed.value.code, closed.value.reason)


def run_with_testclient(script: Script, client: TestClient) -> None:
    """Play `script` through Starlette's TestClient."""
    with client.websocket_connect(script.path) as ws:
        for step in script.steps:
            match step:
                case Send(text):
                    ws.send_text(text)
                case SendBytes(data):
                    ws.send_bytes(data)
                case SendLogin():
                    ws.send_text(step.text())
                case Receive(text):
                    assert text == ws.receive_text()
                case ReceiveJson():
                    check_json(step, ws.receive_text())
                case ReceiveStreamUpdate():
                    check_stream_update(ws.receive_text())
                case Closed():
                    with pytest.raises(StarletteDisconnect) as closed:
                        ws.receive_text()
                    check_close(step, closed.value.code, closed.value.reason)


by_script = pytest.mark.parametrize("script", [pytest.param(s, id=s.id) for s in SCRIPTS])
