"""B as a real process: `python -m service_b` on a free port, spoken to over real sockets."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import trustme
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, WebSocketUpgradeError

from tests.live import ServiceProcess, run_service
from tests.service_b.http_cases import CASES, HttpCase, check_response
from tests.service_b.ws_scripts import Script, by_script, run_with_httpx_ws
from tests.ws import connect_ws

pytestmark = pytest.mark.live


@pytest.fixture
def anyio_backend() -> str:
    """Run the test's client on asyncio only: the services under test run their own loops."""
    return "asyncio"


# Requests that leave the store as it was, so they can share one running B.
READ_ONLY = [case for case in CASES if case.method == "GET" or case.status >= 400]


@pytest.fixture(scope="module")
def live_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """Run B on a free port with its own database file, for the whole module."""
    database = tmp_path_factory.mktemp("live-b") / "items.sqlite3"
    env = {
        "SERVICE_B_DATABASE_PATH": str(database),
        "SERVICE_B_WS_QUEUE_SIZE": "4",
        # Every script's failed login comes from this one address: keep them all checked.
        "SERVICE_B_LOGIN_FAILURES_BURST": "1000",
    }
    with run_service("service_b", env=env) as service:
        yield service


@pytest.fixture
async def client(live_b: ServiceProcess) -> AsyncIterator[httpx.AsyncClient]:
    """Give an httpx client on the live B."""
    async with httpx.AsyncClient(base_url=live_b.base_url, timeout=10) as client:
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in READ_ONLY])
async def test_answer(case: HttpCase, client: httpx.AsyncClient) -> None:
    """Each read-only or refused request gets its documented answer over real HTTP."""
    check_response(case, await client.request(case.method, case.path, **case.request_kwargs()))


@pytest.mark.anyio
async def test_item_lifecycle(client: httpx.AsyncClient) -> None:
    """Create, read, update and delete work over real HTTP."""
    created = await client.post("/items", json={"name": "Live"})
    assert 201 == created.status_code
    location = created.headers["location"]
    assert "Live" == (await client.get(location)).json()["name"]
    assert "Still live" == (await client.put(location, json={"name": "Still live"})).json()["name"]
    assert 204 == (await client.delete(location)).status_code
    assert 404 == (await client.get(location)).status_code


@pytest.mark.anyio
@by_script
async def test_script(script: Script, client: httpx.AsyncClient) -> None:
    """Each WebSocket conversation gets its documented answers and close codes over TCP."""
    await run_with_httpx_ws(script, client)


@pytest.mark.anyio
async def test_foreign_origin_gets_403(client: httpx.AsyncClient) -> None:
    """A real server refuses a foreign origin's handshake with HTTP 403, in JSON."""
    with pytest.raises(WebSocketUpgradeError) as refused:
        async with connect_ws("/ws/echo", client, headers={"origin": "http://evil.example"}):
            pass  # pragma: no cover - the handshake fails
    assert 403 == refused.value.response.status_code
    assert "application/json" == refused.value.response.headers["content-type"]


@pytest.mark.anyio
async def test_push_after_http_change(client: httpx.AsyncClient) -> None:
    """A change made over HTTP by another client is pushed to a subscriber."""
    from tests.service_b.ws_scripts import LOGGED_IN, SUBSCRIBE, SUBSCRIBED, SendLogin  # noqa: PLC0415

    async with connect_ws("/ws/v5/private", client) as ws:
        await ws.send_text(SendLogin().text())
        assert LOGGED_IN == json.loads(await ws.receive_text(5))
        await ws.send_text(SUBSCRIBE)
        assert SUBSCRIBED == json.loads(await ws.receive_text(5))
        async with httpx.AsyncClient(base_url=str(client.base_url)) as other:
            item = (await other.post("/items", json={"name": "Seen"})).json()["item_data"]
        push = json.loads(await ws.receive_text(5))
    assert {"arg": {"channel": "items"}, "action": "created", "data": [item]} == push


@pytest.mark.anyio
async def test_stalled_broadcast_client_is_closed_and_others_go_on(
    client: httpx.AsyncClient,
) -> None:
    """A client that stops reading is closed with 1013; a reading client gets every message.

    The sender waits until the reading client has each message, so only the stalled
    client falls behind: its socket buffers fill, then its queue of 4 (set for this B).
    """
    message = "m" * (512 * 1024)
    count = 64
    received: list[str] = []
    async with (
        connect_ws("/ws/broadcast", client, queue_size=1) as stalled,
        connect_ws("/ws/broadcast", client) as reader,
        connect_ws("/ws/broadcast", client) as sender,
    ):
        with anyio.fail_after(30):
            for number in range(count):
                await sender.send_text(f"{number}:{message}")
                received.append(await reader.receive_text(10))
            # Now drain the stalled client: what was queued, then the close.
            with pytest.raises(WebSocketDisconnect) as closed:
                await _drain(stalled)
    assert 1013 == closed.value.code
    assert [f"New message: {n}:{message}" for n in range(count)] == received


async def _drain(ws: AsyncWebSocketSession) -> None:
    while True:
        await ws.receive_text(10)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path, Path]:
    """Make a CA, and a certificate it signs for localhost and 127.0.0.1."""
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(certfile))
    certificate.private_key_pem.write_to_path(str(keyfile))
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context, certfile, keyfile


@pytest.mark.anyio
async def test_https_and_wss(tls: tuple[ssl.SSLContext, Path, Path]) -> None:
    """With a certificate and key, B serves https and wss."""
    context, certfile, keyfile = tls
    args = ["--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)]
    env = {"SERVICE_B_DATABASE_PATH": ":memory:"}
    with run_service("service_b", env=env, args=args, verify=context) as service:
        assert service.base_url.startswith("https://")
        async with httpx.AsyncClient(base_url=service.base_url, verify=context) as client:
            assert {"b": "b"} == (await client.get("/b/")).json()
            async with connect_ws("/ws/echo", client) as ws:
                await ws.send_text("secure")
                assert "Echo: secure" == await ws.receive_text(5)


def test_clean_shutdown_frees_the_port_and_removes_the_file(tmp_path: Path) -> None:
    """Ctrl+C stops B with exit status 0; its temporary directory is gone afterwards."""
    temp = tmp_path / "tmp"  # B's private temporary directory is made in here
    temp.mkdir()
    env = {"SERVICE_B_DATABASE_PATH": str(tmp_path / "b.sqlite3"), "TMPDIR": str(temp)}
    with run_service("service_b", env=env) as service:
        body = httpx.get(service.base_url + "/static/data.txt").text
        assert "This is a test file served by FastAPI." == body
        (private,) = temp.iterdir()
        assert ["data.txt"] == [path.name for path in private.iterdir()]
    assert 0 == service.process.returncode
    assert [] == list(temp.iterdir())
    log = service.log()
    assert "Application shutdown complete" in log
    assert "demo API key" in log


# A burst of 10 that refills one token in 1,000 s: however slow the machine, no refill.
_LIMITED = {"SERVICE_B_DATABASE_PATH": ":memory:", "SERVICE_B_LOGIN_FAILURES_PER_SECOND": "0.001"}


async def _failed_logins_answers(base_url: str, count: int) -> list[str]:
    """Send `count` wrong logins, each of another key and naming another X-Forwarded-For."""
    from service_b.login_message import login_message  # noqa: PLC0415

    answers = []
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for number in range(count):
            headers = {"x-forwarded-for": f"10.0.0.{number}"}
            async with connect_ws("/ws/v5/private", client, headers=headers) as ws:
                await ws.send_text(login_message(f"key{number}", "wrong", "p", "1700000000"))
                answers.append(json.loads(await ws.receive_text(5)).get("code", "failed"))
    return answers


@pytest.mark.anyio
async def test_a_forged_forwarded_for_does_not_escape_the_failure_limit() -> None:
    """B counts failed logins per peer address; X-Forwarded-For is believed from no one."""
    with run_service("service_b", env=_LIMITED) as service:
        answers = await _failed_logins_answers(service.base_url, 11)
    assert ["failed"] * 10 + ["60014"] == answers


@pytest.mark.anyio
async def test_a_configured_proxy_names_the_client_address() -> None:
    """With SERVICE_B_FORWARDED_ALLOW_IPS, each address that proxy names has its own allowance."""
    env = {**_LIMITED, "SERVICE_B_FORWARDED_ALLOW_IPS": '["127.0.0.1"]'}
    with run_service("service_b", env=env) as service:
        answers = await _failed_logins_answers(service.base_url, 11)
    assert ["failed"] * 11 == answers
