"""A and B as real processes: traffic through A, and A while B stops, fails and comes back."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError

from tests.live import ServiceProcess, run_service
from tests.service_a.test_gateway import FORWARDED
from tests.service_a.test_relay import THROUGH_A
from tests.service_b.http_cases import HttpCase, check_response
from tests.service_b.ws_scripts import LOGGED_IN, Script, SendLogin, run_with_httpx_ws
from tests.ws import connect_ws

pytestmark = pytest.mark.live


@pytest.fixture
def anyio_backend() -> str:
    """Run the test's client on asyncio only: the services under test run their own loops."""
    return "asyncio"


READ_ONLY = [case for case in FORWARDED if case.method == "GET" or case.status >= 400]


def _b_env(database: Path) -> dict[str, str]:
    # Every script's failed login reaches B from A's one address: keep them all checked.
    return {"SERVICE_B_DATABASE_PATH": str(database), "SERVICE_B_LOGIN_FAILURES_BURST": "1000"}


def _a_env(b: ServiceProcess) -> dict[str, str]:
    return {"SERVICE_A_SERVICE_B_URL": b.base_url}


@pytest.fixture(scope="module")
def live_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """Run B and A on free ports for the module; give A."""
    database = tmp_path_factory.mktemp("live-pair") / "items.sqlite3"
    with (
        run_service("service_b", env=_b_env(database)) as b,
        run_service("service_a", env=_a_env(b)) as a,
    ):
        yield a


@pytest.fixture
async def client(live_pair: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    """Give an httpx client on the live A."""
    async with httpx.AsyncClient(base_url=live_pair.base_url, timeout=10) as client:
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in READ_ONLY])
async def test_answer_through_a(case: HttpCase, client: httpx.AsyncClient) -> None:
    """Each read-only or refused item request through A gets B's answer over real HTTP."""
    check_response(case, await client.request(case.method, case.path, **case.request_kwargs()))


@pytest.mark.anyio
async def test_lifecycle_and_status(client: httpx.AsyncClient) -> None:
    """Items can be created, changed and deleted through A; A reports B healthy."""
    created = await client.post("/items", json={"name": "Live via A"})
    location = created.headers["location"]
    assert "Live via A" == (await client.get(location)).json()["name"]
    assert 200 == (await client.put(location, json={"name": "x"})).status_code
    assert 204 == (await client.delete(location)).status_code
    status = await client.get("/status")
    assert (200, "ok") == (status.status_code, status.json()["service_b"]["status"])
    assert {"b": "b"} == (await client.get("/a/call_b")).json()


@pytest.mark.anyio
@pytest.mark.parametrize("script", [pytest.param(s, id=s.id) for s in THROUGH_A])
async def test_script_through_a(script: Script, client: httpx.AsyncClient) -> None:
    """Each WebSocket conversation through A gets B's answers and close codes over TCP."""
    await run_with_httpx_ws(script, client)


@pytest.mark.anyio
async def test_request_id_reaches_the_log(
    client: httpx.AsyncClient, live_pair: ServiceProcess
) -> None:
    """A logs one line for the request, with the caller's id."""
    request_id = f"live-{uuid.uuid4().hex}"
    await client.get("/items/1", headers={"x-request-id": request_id})
    with anyio.fail_after(5):
        while f"request_id={request_id}" not in live_pair.log():  # noqa: ASYNC110 - a file
            await anyio.sleep(0.05)
    lines = [line for line in live_pair.log().splitlines() if request_id in line]
    assert 1 == len(lines)
    assert '"GET /items/1" 200' in lines[0]


@pytest.mark.anyio
async def test_outage_and_recovery(tmp_path_factory: pytest.TempPathFactory) -> None:
    """While B is down A answers 503 at once and refuses WebSockets; when B is back, A is too.

    A session open when B crashes is closed with 1011 and a reason as soon as B's connection
    drops (the 5 s bounds only a hang: A's own timeouts towards B are longer).
    """
    database = tmp_path_factory.mktemp("outage") / "items.sqlite3"
    b_env = {"SERVICE_B_DATABASE_PATH": str(database)}
    with (
        run_service("service_b", env=b_env) as b,
        run_service("service_a", env=_a_env(b)) as a,
    ):
        async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as client:
            async with connect_ws("/ws/v5/private", client) as ws:
                await ws.send_text(SendLogin().text())
                assert LOGGED_IN == json.loads(await ws.receive_text(5))
                b.kill()
                with anyio.fail_after(5), pytest.raises(WebSocketDisconnect) as closed:
                    await ws.receive_text()
            assert (1011, "service B went away") == (closed.value.code, closed.value.reason)

            with anyio.fail_after(5):
                item = await client.get("/items/1")
            assert (503, {"detail": "service B unavailable"}) == (item.status_code, item.json())
            status = await client.get("/status")
            assert (503, "degraded") == (status.status_code, status.json()["status"])
            with pytest.raises(WebSocketUpgradeError) as refused:
                async with connect_ws("/ws/echo", client):
                    pass  # pragma: no cover - the handshake fails
            assert 503 == refused.value.response.status_code

            with run_service("service_b", port=b.port, env=b_env):  # back where it was
                assert 200 == (await client.get("/status")).status_code
                assert {"item_id": 1, "name": "The One Item"} == (
                    await client.get("/items/1")
                ).json()
                async with connect_ws("/ws/echo", client) as ws:
                    await ws.send_text("back")
                    assert "Echo: back" == await ws.receive_text(5)


@pytest.mark.anyio
async def test_graceful_stop_passes_bs_close_code() -> None:
    """When B shuts down cleanly, its close code reaches the client through A."""
    b_env = {"SERVICE_B_DATABASE_PATH": ":memory:"}
    with run_service("service_b", env=b_env) as b, run_service("service_a", env=_a_env(b)) as a:
        async with (
            httpx.AsyncClient(base_url=a.base_url, timeout=10) as client,
            connect_ws("/ws/echo", client) as ws,
        ):
            await ws.send_text("hi")
            assert "Echo: hi" == await ws.receive_text(5)
            with anyio.fail_after(5):
                await anyio.to_thread.run_sync(b.stop)
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive_text(5)
    assert 1012 == closed.value.code


@pytest.mark.anyio
async def test_a_on_httpx_transport() -> None:
    """With SERVICE_A_TRANSPORT=httpx, A works the same over httpx's own transport."""
    with (
        run_service("service_b", env={"SERVICE_B_DATABASE_PATH": ":memory:"}) as b,
        run_service("service_a", env={**_a_env(b), "SERVICE_A_TRANSPORT": "httpx"}) as a,
    ):
        async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as client:
            created = await client.post("/items", json={"name": "via httpx"})
            assert 201 == created.status_code
            assert "via httpx" == (await client.get(created.headers["location"])).json()["name"]
            assert 404 == (await client.get("/items/999")).status_code
            async with connect_ws("/ws/echo", client) as ws:
                await ws.send_text("hi")
                assert "Echo: hi" == await ws.receive_text(5)
