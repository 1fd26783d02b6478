"""B's SQLite store: concurrent writes, persistence across restarts, and the lifespan's files."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from service_b import Settings, create_app
from service_b.resources import Resources
from service_b.store import ItemChange, ItemStore
from service_b.topics import Topic


@pytest.mark.anyio
async def test_concurrent_creates_all_land(db_path: Path) -> None:
    """Fifty creates sent at once all succeed, with distinct ids, and all are stored."""
    app = create_app(Settings(database_path=str(db_path)))
    ids: list[int] = []
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(manager.app), base_url="http://service-b"
        ) as client,
    ):

        async def create(number: int) -> None:
            response = await client.post("/items", json={"name": f"item {number}"})
            assert 201 == response.status_code
            ids.append(response.json()["item_data"]["item_id"])

        async with anyio.create_task_group() as group:
            for number in range(50):
                group.start_soon(create, number)
        listed = (await client.get("/items", params={"limit": 100})).json()

    assert list(range(2, 52)) == sorted(ids)
    assert 51 == len(listed)


@pytest.mark.anyio
async def test_items_survive_a_restart(db_path: Path) -> None:
    """Items acknowledged before shutdown are there after a restart on the same file."""
    settings = Settings(database_path=str(db_path))
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            await client.post("/items", json={"name": "Kept", "is_offer": False})
            await client.put("/items/1", json={"name": "Changed"})

    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            listed = (await client.get("/items")).json()
    assert [
        {"item_id": 1, "name": "Changed"},
        {"item_id": 2, "name": "Kept", "is_offer": False},
    ] == listed


@pytest.mark.anyio
async def test_deleted_seed_stays_deleted_after_restart(db_path: Path) -> None:
    """Only a new store is seeded: a deleted item 1 does not come back."""
    async with ItemStore.open(str(db_path), Topic[ItemChange](4)) as store:
        await store.delete(1)
    async with ItemStore.open(str(db_path), Topic[ItemChange](4)) as store:
        assert [] == await store.page(10, 0)


@pytest.mark.anyio
async def test_reset_restores_a_fresh_store(db_path: Path) -> None:
    """`reset` leaves only the seed item, and ids start again after it."""
    async with ItemStore.open(str(db_path), Topic[ItemChange](4)) as store:
        await store.create("a", None)
        await store.delete(1)
        await store.reset()
        assert ["The One Item"] == [item.name for item in await store.page(10, 0)]
        assert 2 == (await store.create("b", None)).item_id


@pytest.mark.anyio
async def test_changes_are_published_after_commit(db_path: Path) -> None:
    """Each committed create, update and delete is published once; a miss publishes nothing."""
    changes = Topic[ItemChange](8, render=lambda change: change.action)
    async with ItemStore.open(str(db_path), changes) as store:
        with changes.subscribe() as subscription:
            item = await store.create("x", True)
            await store.update(item.item_id, "y", None)
            assert await store.update(999, "z", None) is None
            await store.delete(item.item_id)
            assert await store.delete(item.item_id) is None
            actions = [(await subscription.next()).text for _ in range(3)]
            assert subscription.next_nowait() is None
    assert ["created", "updated", "deleted"] == actions


@pytest.mark.anyio
async def test_data_file_lives_with_the_lifespan() -> None:
    """The static file exists in a private temporary directory while B runs, and not after."""
    app = create_app(Settings(database_path=":memory:"))
    async with LifespanManager(app) as manager:
        resources: Resources = manager._state["resources"]  # noqa: SLF001 - lifespan state
        data_file = resources.static_dir / "data.txt"
        assert "This is a test file served by FastAPI." == data_file.read_text()
        assert Path.cwd() not in data_file.parents
    assert not data_file.exists()
    assert not resources.static_dir.exists()


@pytest.mark.anyio
async def test_demo_credentials_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Starting with the demo key pair logs a warning naming it."""
    async with LifespanManager(create_app(Settings(database_path=":memory:"))):
        pass
    assert any(
        record.levelname == "WARNING" and "demo API key" in record.getMessage()
        for record in caplog.records
    )


@pytest.mark.anyio
async def test_own_credentials_are_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Starting with other credentials logs no demo warning."""
    settings = Settings(database_path=":memory:", api_keys={"team": SecretStr("long-secret")})
    async with LifespanManager(create_app(settings)):
        pass
    assert not [record for record in caplog.records if "demo" in record.getMessage()]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SERVICE_B_* variable reaches the settings."""
    monkeypatch.setenv("SERVICE_B_DATABASE_PATH", "/tmp/x.sqlite3")
    monkeypatch.setenv("SERVICE_B_API_KEYS", '{"k": "s"}')
    monkeypatch.setenv("SERVICE_B_ALLOWED_ORIGINS", '["https://app.example"]')
    monkeypatch.setenv("SERVICE_B_WS_MAX_MESSAGE_BYTES", "2048")
    monkeypatch.setenv("SERVICE_B_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("SERVICE_B_WS_QUEUE_SIZE", "3")
    monkeypatch.setenv("SERVICE_B_LOGIN_MAX_CLOCK_SKEW_SECONDS", "5")
    monkeypatch.setenv("SERVICE_B_ENABLE_PACT_PROVIDER_STATES", "true")
    settings = Settings()
    assert "/tmp/x.sqlite3" == settings.database_path
    assert {"k": "s"} == {k: v.get_secret_value() for k, v in settings.api_keys.items()}
    assert ["https://app.example"] == settings.allowed_origins
    assert (2048, 4096, 3) == (
        settings.ws_max_message_bytes,
        settings.max_body_bytes,
        settings.ws_queue_size,
    )
    assert 5.0 == settings.login_max_clock_skew_seconds
    assert settings.enable_pact_provider_states
    assert not settings.uses_demo_credentials()
