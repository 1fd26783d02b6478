"""A in front of two real Bs: requests take turns; one B killed, A answers through the other."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.live import ServiceProcess, run_service
from tests.ws import connect_ws

pytestmark = pytest.mark.live


@pytest.fixture
def anyio_backend() -> str:
    """Run the test's client on asyncio only: the services under test run their own loops."""
    return "asyncio"


@pytest.fixture
def a_and_two_bs() -> Iterator[tuple[ServiceProcess, ServiceProcess, ServiceProcess]]:
    """Run two Bs, each with its own SQLite file, and A in front of both; give (B1, B2, A)."""
    with (
        run_service("service_b", env={"SERVICE_B_DATABASE_PATH": ":memory:"}) as one,
        run_service("service_b", env={"SERVICE_B_DATABASE_PATH": ":memory:"}) as two,
        run_service(
            "service_a",
            env={
                "SERVICE_A_SERVICE_B_URL": f"{one.base_url},{two.base_url}",
                "SERVICE_A_B_RETRY_AFTER_SECONDS": "60",
            },
        ) as a,
    ):
        yield one, two, a


def _names(items: list[dict[str, object]]) -> set[object]:
    return {item["name"] for item in items}


@pytest.mark.anyio
async def test_a_spreads_and_outlives_a_b(
    a_and_two_bs: tuple[ServiceProcess, ServiceProcess, ServiceProcess],
) -> None:
    """Each B's own items show through A in turn; B1 killed, every answer comes from B2."""
    one, two, a = a_and_two_bs
    async with httpx.AsyncClient(timeout=10) as client:
        for b, name in ((one, "only on one"), (two, "only on two")):
            created = await client.post(f"{b.base_url}/items", json={"name": name})
            assert created.status_code == 201
        seen = [_names((await client.get(f"{a.base_url}/items")).json()) for _ in range(4)]
        assert sum("only on one" in names for names in seen) == 2
        assert sum("only on two" in names for names in seen) == 2
        status = (await client.get(f"{a.base_url}/status")).json()
        assert [b["status"] for b in status["service_bs"]] == ["ok", "ok"]

        one.kill()
        answers = [await client.get(f"{a.base_url}/items") for _ in range(6)]
        assert [answer.status_code for answer in answers] == [200] * 6
        assert all("only on two" in _names(answer.json()) for answer in answers)
        status = (await client.get(f"{a.base_url}/status")).json()
        assert (status["status"], [b["status"] for b in status["service_bs"]]) == (
            "ok",
            ["unavailable", "ok"],
        )
        for _ in range(3):  # every relayed session opens on the live B
            async with connect_ws(f"{a.base_url.replace('http', 'ws')}/ws/echo", client) as ws:
                await ws.send_text("hi")
                assert await ws.receive_text() == "Echo: hi"
    assert "Traceback" not in a.log()
