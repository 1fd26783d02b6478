"""A's limit on relayed WebSocket sessions: its own, apart from the HTTP pool to B.

A runs in-process with the client its own lifespan opens; B is a real process, so each
relayed session holds a real connection from A to B, as in production.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from service_a import Settings as ASettings
from service_a import create_app as create_a
from tests.inprocess import Backend, a_reaching
from tests.live import ServiceProcess, run_service
from tests.ws import connect_ws

SESSIONS = 101  # one more than A's HTTP pool held by default


@pytest.fixture(scope="module")
def real_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """Run B as a process on a free port for the module."""
    database = Path(tmp_path_factory.mktemp("b")) / "items.sqlite3"
    with run_service(
        "service_b", env={"SERVICE_B_DATABASE_PATH": str(database)}, args=["--log-level", "warning"]
    ) as service:
        yield service


@pytest.mark.anyio
async def test_sessions_do_not_take_http_connections(real_b: ServiceProcess) -> None:
    """With 2 HTTP connections to B, 101 sessions are relayed and HTTP requests still go."""
    # The test is about pools, not timeouts: on a loaded 2-core machine A's default 0.5 s
    # connect timeout to B was seen to run out while this process waited for the CPU.
    async with (
        a_reaching(real_b.base_url, max_connections=2, connect_timeout=30) as a,
        contextlib.AsyncExitStack() as sessions,
    ):
        opened = [
            await sessions.enter_async_context(connect_ws("/ws/echo", a)) for _ in range(SESSIONS)
        ]
        for number, ws in enumerate(opened):
            await ws.send_text(f"hello {number}")
        answers = [await ws.receive_text(30) for ws in opened]
        assert answers == [f"Echo: hello {number}" for number in range(SESSIONS)]

        created: list[int] = []

        async def create(number: int) -> None:
            answer = await a.post("/items", json={"name": f"while relaying {number}"})
            created.append(answer.status_code)

        async with anyio.create_task_group() as group:
            for number in range(5):  # more than the pool: they take turns
                group.start_soon(create, number)
        assert created == [201] * 5


def test_session_limit_refuses_with_503(real_b: ServiceProcess, anyio_backend: Backend) -> None:
    """At its session limit A refuses the next handshake with 503, saying it is A's limit."""
    settings = ASettings(service_b_url=real_b.base_url, max_ws_sessions=2)
    with TestClient(create_a(settings), backend=anyio_backend) as client:
        with client.websocket_connect("/ws/echo") as first, client.websocket_connect("/ws/echo"):
            with (
                pytest.raises(WebSocketDenialResponse) as refused,
                client.websocket_connect("/ws/echo"),
            ):
                pass  # pragma: no cover - the handshake is refused
            first.send_text("still here")
            assert first.receive_text() == "Echo: still here"
        # The two closed: their places are free again.
        with client.websocket_connect("/ws/echo") as again:
            again.send_text("again")
            assert again.receive_text() == "Echo: again"
    assert refused.value.status_code == 503
    assert refused.value.headers.get("retry-after") == "1"
    assert refused.value.json() == {
        "detail": "A is at its limit of 2 WebSocket sessions; try again later"
    }
