"""Two Bs on one Redis: what is sent or changed on one reaches the clients of the other.

Both Bs run in-process (two `create_app` with the same `SERVICE_B_REDIS_URL` and channel
prefix), against a real redis-server (tests/redis_server.py) and, for the items, one real
PostgreSQL database (tests/postgres.py). Without the Redis fan-out (on the old code), each B
fans out to its own clients only, and every test here fails.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import coredis
import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx_ws import AsyncWebSocketSession

from service_b import Settings, create_app
from tests.redis_server import RedisServer, fanout_settings
from tests.service_b.ws_scripts import LOGGED_IN, SUBSCRIBE, SUBSCRIBED, SendLogin
from tests.ws import InProcessWebSocketTransport, connect_ws

RECEIVE_TIMEOUT = 5
BURST = 300


@asynccontextmanager
async def running_b(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Run a B in-process with `settings`; give an HTTP and WebSocket client on it."""
    async with LifespanManager(create_app(settings)) as manager:
        transport = InProcessWebSocketTransport(manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            yield client


@asynccontextmanager
async def two_bs(**settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Run two Bs with the same `settings` (one Redis, one channel prefix)."""
    async with running_b(Settings(**settings)) as one, running_b(Settings(**settings)) as two:
        yield one, two


def _sqlite(tmp_path: Path) -> list[dict[str, Any]]:
    return [{"database_path": str(tmp_path / name)} for name in ("one.db", "two.db")]


async def _subscribe_items(ws: AsyncWebSocketSession) -> None:
    await ws.send_text(SendLogin().text())
    assert LOGGED_IN == json.loads(await ws.receive_text(RECEIVE_TIMEOUT))
    await ws.send_text(SUBSCRIBE)
    assert SUBSCRIBED == json.loads(await ws.receive_text(RECEIVE_TIMEOUT))


async def _wait_for_status(client: httpx.AsyncClient, code: int) -> httpx.Response:
    with anyio.fail_after(30):
        # The subscriber reconnects on its own schedule: /status is the event to wait for.
        while (response := await client.get("/status")).status_code != code:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return response


@pytest.mark.anyio
async def test_a_broadcast_on_one_b_reaches_the_other_and_not_its_sender(
    redis_fanout: dict[str, Any], tmp_path: Path
) -> None:
    """A burst sent to one B reaches a listener of each B, complete and in order; not the sender.

    The sender's first message afterwards is one sent from the other B: had its own burst
    come back to it, that would have come first (one Redis delivers in publish order).
    """
    with anyio.fail_after(30):
        async with (
            running_b(Settings(**redis_fanout, **_sqlite(tmp_path)[0])) as one,
            running_b(Settings(**redis_fanout, **_sqlite(tmp_path)[1])) as two,
            connect_ws("/ws/broadcast", one) as sender,
            connect_ws("/ws/broadcast", one) as near,
            connect_ws("/ws/broadcast", two) as far,
            connect_ws("/ws/broadcast", two) as other_sender,
        ):
            texts = [f"m{number}" for number in range(BURST)]
            for text in texts:
                await sender.send_text(text)
            expected = [f"New message: {text}" for text in texts]
            assert expected == [await far.receive_text(RECEIVE_TIMEOUT) for _ in texts]
            assert expected == [await near.receive_text(RECEIVE_TIMEOUT) for _ in texts]
            assert expected == [await other_sender.receive_text(RECEIVE_TIMEOUT) for _ in texts]
            await other_sender.send_text("from two")
            assert "New message: from two" == await sender.receive_text(RECEIVE_TIMEOUT)
            assert "New message: from two" == await far.receive_text(RECEIVE_TIMEOUT)


@pytest.mark.anyio
async def test_an_item_created_through_one_b_is_pushed_to_a_subscriber_of_the_other(
    redis_fanout: dict[str, Any], postgres_url: str
) -> None:
    """Two Bs on one PostgreSQL and one Redis: a change made through one is pushed by both.

    Each push comes once the change is committed: the other B reads the item when its
    push has arrived.
    """
    with anyio.fail_after(30):
        async with (
            two_bs(**redis_fanout, database_url=postgres_url) as (one, two),
            connect_ws("/ws/v5/private", two) as far,
            connect_ws("/ws/v5/private", one) as near,
        ):
            await _subscribe_items(far)
            await _subscribe_items(near)
            created = await one.post("/items", json={"name": "made on one"})
            assert 201 == created.status_code
            item = created.json()["item_data"]
            for subscriber in (far, near):
                push = json.loads(await subscriber.receive_text(RECEIVE_TIMEOUT))
                assert ("created", [item]) == (push["action"], push["data"])
            read = await two.get(f"/items/{item['item_id']}")
            assert (200, item) == (read.status_code, read.json())

            deleted = await two.delete(f"/items/{item['item_id']}")
            assert 204 == deleted.status_code
            for subscriber in (far, near):
                push = json.loads(await subscriber.receive_text(RECEIVE_TIMEOUT))
                assert ("deleted", [item]) == (push["action"], push["data"])


@pytest.mark.anyio
async def test_redis_lost_is_degraded_and_delivery_comes_back_by_itself(
    own_redis_server: RedisServer, tmp_path: Path
) -> None:
    """Redis killed: both Bs say degraded and serve their own clients; restarted: all is well.

    While Redis is away, a broadcast reaches the clients of the B it was sent to (what the
    other B's clients miss is lost: Redis keeps nothing for them).
    """
    redis = fanout_settings(own_redis_server)
    settings = [
        {**redis, **sqlite, "redis_reconnect_max_seconds": 0.2} for sqlite in _sqlite(tmp_path)
    ]
    with anyio.fail_after(60):
        async with (
            running_b(Settings(**settings[0])) as one,
            running_b(Settings(**settings[1])) as two,
            connect_ws("/ws/broadcast", one) as sender,
            connect_ws("/ws/broadcast", one) as near,
            connect_ws("/ws/broadcast", two) as far,
        ):
            ok = {"status": "ok", "store": {"kind": "sqlite", "status": "ok"}}
            for b in (one, two):
                status = await b.get("/status")
                assert (200, {**ok, "fanout": {"kind": "redis", "status": "ok"}}) == (
                    status.status_code,
                    status.json(),
                )

            own_redis_server.stop()
            for b in (one, two):
                degraded = await _wait_for_status(b, 503)
                assert {
                    "status": "degraded",
                    "store": {"kind": "sqlite", "status": "ok"},
                    "fanout": {"kind": "redis", "status": "unavailable"},
                } == degraded.json()
            await sender.send_text("while away")
            assert "New message: while away" == await near.receive_text(RECEIVE_TIMEOUT)

            own_redis_server.start()
            for b in (one, two):
                await _wait_for_status(b, 200)
            await sender.send_text("back")
            assert "New message: back" == await near.receive_text(RECEIVE_TIMEOUT)
            # The first message `far` gets is the one sent after the restart.
            assert "New message: back" == await far.receive_text(RECEIVE_TIMEOUT)


@pytest.mark.anyio
async def test_b_starts_without_redis_degraded_and_subscribes_once_it_is_there(
    own_redis_server: RedisServer, tmp_path: Path
) -> None:
    """A B whose Redis is down at startup starts anyway, degraded, and subscribes later."""
    own_redis_server.stop()
    settings = {**fanout_settings(own_redis_server), "redis_reconnect_max_seconds": 0.2}
    with anyio.fail_after(60):
        async with (
            two_bs(**settings, database_path=str(tmp_path / "b.db")) as (one, two),
            connect_ws("/ws/broadcast", two) as far,
        ):
            assert 503 == (await one.get("/status")).status_code
            own_redis_server.start()
            await _wait_for_status(one, 200)
            await _wait_for_status(two, 200)
            async with connect_ws("/ws/broadcast", one) as sender:
                await sender.send_text("hello")
                assert "New message: hello" == await far.receive_text(RECEIVE_TIMEOUT)


@pytest.mark.anyio
async def test_a_message_on_the_channel_not_sent_by_a_b_is_ignored(
    redis_fanout: dict[str, Any],
) -> None:
    """Text published on B's channel by something else is not passed on to B's clients."""
    settings = Settings(**redis_fanout, database_path=":memory:")
    channel = f"{settings.redis_channel_prefix}:broadcast"
    with anyio.fail_after(30):
        async with (
            running_b(settings) as b,
            connect_ws("/ws/broadcast", b) as sender,
            connect_ws("/ws/broadcast", b) as listener,
            coredis.Redis.from_url(redis_fanout["redis_url"], decode_responses=True) as other,
        ):
            assert 1 == await other.publish(channel, "not from a B")
            await sender.send_text("from a B")
            assert "New message: from a B" == await listener.receive_text(RECEIVE_TIMEOUT)


def test_a_redis_url_must_name_redis() -> None:
    """SERVICE_B_REDIS_URL refuses a URL of another scheme at startup."""
    with pytest.raises(ValueError, match="redis://"):
        Settings(redis_url="http://localhost:6379")
