"""B's item stores, SQLite and PostgreSQL, with the same behaviour; and the lifespan's files.

Every store test runs on both engines (`store_settings` is parametrised), PostgreSQL being a
real throwaway server (`tests/postgres.py`). B's HTTP table runs on PostgreSQL here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr, ValidationError

from service_b import Settings, create_app
from service_b.resources import Resources, open_store
from service_b.store import ItemChange, ItemStore, StoreUnavailable
from service_b.store_pg import MIGRATIONS, SchemaTooNew
from service_b.topics import Topic
from tests.inprocess import B_URL, serve_in_process
from tests.live import refused_port, run_service
from tests.postgres import PostgresServer
from tests.service_b.http_cases import CASES, HttpCase, check_response


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Give B's settings for a new store in SQLite (a file) or in PostgreSQL (a database)."""
    if request.param == "sqlite":
        return Settings(database_path=str(tmp_path / "items.sqlite3"))
    url: str = request.getfixturevalue("postgres_url")
    return Settings(database_url=SecretStr(url))


@asynccontextmanager
async def opened(
    settings: Settings, changes: Topic[ItemChange] | None = None
) -> AsyncIterator[ItemStore]:
    """Open the store `settings` name, as B's lifespan does."""
    topic = Topic[ItemChange](8) if changes is None else changes
    async with open_store(settings, topic) as store:
        yield store


@asynccontextmanager
async def b_on(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Run B with `settings`; give an httpx client on it."""
    async with serve_in_process(create_app(settings), base_url=B_URL) as client:
        yield client


@pytest.mark.anyio
async def test_concurrent_creates_all_land(store_settings: Settings) -> None:
    """Fifty creates sent at once all succeed, with distinct ids, and all are stored."""
    ids: list[int] = []
    async with b_on(store_settings) as client:

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
async def test_items_survive_a_restart(store_settings: Settings) -> None:
    """Items acknowledged before shutdown are there after a restart on the same store."""
    async with b_on(store_settings) as client:
        await client.post("/items", json={"name": "Kept", "is_offer": False})
        await client.put("/items/1", json={"name": "Changed"})

    async with b_on(store_settings) as client:
        listed = (await client.get("/items")).json()
    assert [
        {"item_id": 1, "name": "Changed"},
        {"item_id": 2, "name": "Kept", "is_offer": False},
    ] == listed


@pytest.mark.anyio
async def test_deleted_seed_stays_deleted_after_restart(store_settings: Settings) -> None:
    """Only a new store is seeded: a deleted item 1 does not come back."""
    async with opened(store_settings) as store:
        assert [1] == [item.item_id for item in await store.page(10, 0)]
        await store.delete(1)
    async with opened(store_settings) as store:
        assert [] == await store.page(10, 0)


@pytest.mark.anyio
async def test_ids_are_never_reused_even_across_a_restart(store_settings: Settings) -> None:
    """The newest item deleted, the next one gets a new id, before and after a restart."""
    async with opened(store_settings) as store:
        second = await store.create("a", None)
        await store.delete(second.item_id)
        third = await store.create("b", None)
        await store.delete(third.item_id)
    async with opened(store_settings) as store:
        fourth = await store.create("c", None)
    assert (2, 3, 4) == (second.item_id, third.item_id, fourth.item_id)


@pytest.mark.anyio
async def test_both_stores_give_the_same_answers(store_settings: Settings) -> None:
    """Reads, misses, pages and the offer flag come back alike from either engine."""
    async with opened(store_settings) as store:
        made = [await store.create(name, offer) for name, offer in [("a", True), ("b", False)]]
        assert [2, 3] == [item.item_id for item in made]
        assert made[0] == await store.get(2)
        assert await store.get(2**63 - 1) is None
        odd = await store.create("nul \x00 and ünïcødé 🙂", None)
        assert odd == await store.get(odd.item_id)
        await store.delete(odd.item_id)
        assert ["The One Item", "a", "b"] == [item.name for item in await store.page(10, 0)]
        assert [True, False] == [item.is_offer for item in await store.page(2, 1)]
        assert [] == await store.page(10, 2**63 - 1)
        assert await store.update(3, "B", None) == await store.get(3)
        assert (await store.get(3)) is not None
        assert await store.delete(2) == made[0]
        assert [1, 3] == [item.item_id for item in await store.page(10, 0)]
        assert await store.reachable()


@pytest.mark.anyio
async def test_reset_restores_a_fresh_store(store_settings: Settings) -> None:
    """`reset` leaves only the seed item, and ids start again after it."""
    async with opened(store_settings) as store:
        await store.create("a", None)
        await store.delete(1)
        await store.reset()
        assert ["The One Item"] == [item.name for item in await store.page(10, 0)]
        assert 2 == (await store.create("b", None)).item_id


@pytest.mark.anyio
async def test_changes_are_published_after_commit(store_settings: Settings) -> None:
    """Each committed create, update and delete is published once; a miss publishes nothing."""
    changes = Topic[ItemChange](8, render=lambda change: change.action)
    async with opened(store_settings, changes) as store:
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
async def test_status_names_the_store(store_settings: Settings) -> None:
    """`GET /status` says which engine holds the items, and that B reaches it."""
    async with b_on(store_settings) as client:
        response = await client.get("/status")
    kind = "sqlite" if store_settings.database_url is None else "postgresql"
    assert (200, {"status": "ok", "store": {"kind": kind, "status": "ok"}}) == (
        response.status_code,
        response.json(),
    )


def _env(settings: Settings) -> dict[str, str]:
    if settings.database_url is None:
        return {"SERVICE_B_DATABASE_PATH": settings.database_path}
    return {"SERVICE_B_DATABASE_URL": settings.database_url.get_secret_value()}


def test_acknowledged_writes_survive_a_killed_b(store_settings: Settings) -> None:
    """B as a process, killed (SIGKILL) right after its answers: every 201 is there after."""
    env = _env(store_settings)
    with run_service("service_b", env=env, args=["--log-level", "warning"]) as b:
        created = [
            httpx.post(f"{b.base_url}/items", json={"name": f"n{n}"}, timeout=10).json()
            for n in range(10)
        ]
        b.kill()
    with run_service("service_b", env=env, args=["--log-level", "warning"]) as b:
        listed = httpx.get(f"{b.base_url}/items", params={"limit": 100}, timeout=10).json()
    assert [item["item_data"] for item in created] == listed[1:]


# PostgreSQL only: the migration, durability settings, and an unreachable database.


def _rows(url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as db:
        return db.execute(query, params or None).fetchall()


def _sql(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(statement)


def _pg(url: str, **changes: object) -> Settings:
    return Settings(database_url=SecretStr(url), **changes)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_schema_is_made_by_versioned_steps_once(postgres_url: str) -> None:
    """A new database gets every step, recorded in `schema_version`; a restart applies none."""
    async with opened(_pg(postgres_url)):
        pass
    async with opened(_pg(postgres_url)):
        pass
    versions = _rows(postgres_url, "SELECT version FROM schema_version ORDER BY version")
    assert [(step.version,) for step in MIGRATIONS] == versions
    assert [(1,)] == _rows(postgres_url, "SELECT item_id FROM items")


@pytest.mark.anyio
async def test_bs_starting_at_once_migrate_once(postgres_url: str) -> None:
    """Four Bs opening a new database at the same moment all start; the steps run once."""
    started = 0

    async def start() -> None:
        nonlocal started
        async with opened(_pg(postgres_url)) as store:
            started += 1
            assert await store.get(1) is not None

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(start)
    assert 4 == started
    assert [(1,)] == _rows(postgres_url, "SELECT count(*) FROM schema_version")
    assert [(1,)] == _rows(postgres_url, "SELECT count(*) FROM items")


@pytest.mark.anyio
async def test_bs_sharing_a_database_never_hand_out_one_id_twice(postgres_url: str) -> None:
    """Two Bs on one database creating at once: forty creates, forty distinct ids."""
    ids: list[int] = []

    async def create_twenty(store: ItemStore) -> None:
        ids.extend([(await store.create(f"n{number}", None)).item_id for number in range(20)])

    async with opened(_pg(postgres_url)) as first, opened(_pg(postgres_url)) as second:
        async with anyio.create_task_group() as group:
            group.start_soon(create_twenty, first)
            group.start_soon(create_twenty, second)
        assert 41 == len(await first.page(100, 0))
    assert list(range(2, 42)) == sorted(ids)


@pytest.mark.anyio
async def test_a_newer_schema_refuses_to_start(postgres_url: str) -> None:
    """A database migrated by a newer B is not touched: B says why it will not start."""
    async with opened(_pg(postgres_url)):
        pass
    _rows(
        postgres_url,
        "INSERT INTO schema_version (version, description) VALUES (99, 'x') RETURNING 1",
    )
    with pytest.raises(SchemaTooNew, match="schema version 99"):
        async with opened(_pg(postgres_url)):
            pass


@pytest.mark.anyio
async def test_commits_are_synchronous_even_if_the_server_says_off(
    postgres_database_url: str,
) -> None:
    """B's sessions wait for the commit to be flushed, whatever the database's default."""
    postgres_url = postgres_database_url
    dbname = postgres_url.rsplit("/", 1)[1]
    _sql(postgres_url, f'ALTER DATABASE "{dbname}" SET synchronous_commit = off')
    assert [("off",)] == _rows(postgres_url, "SHOW synchronous_commit")
    async with opened(_pg(postgres_url)) as store:
        run = store._run  # type: ignore[attr-defined]  # noqa: SLF001 - the session's setting
        setting = await run(lambda db: db.execute("SHOW synchronous_commit").fetchone())
    assert ("on",) == setting


@pytest.mark.anyio
async def test_unreachable_at_startup_fails_with_a_clear_error() -> None:
    """B does not start without its database, and says where it looked, not the password."""
    with refused_port() as port:
        url = f"postgresql://b:secret-pw@127.0.0.1:{port}/items"
        settings = _pg(url, database_connect_timeout_seconds=0.5)
        with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1") as raised:
            async with opened(settings):
                pass
    assert "secret-pw" not in str(raised.value)


async def _wait_for_status(client: httpx.AsyncClient, code: int) -> httpx.Response:
    with anyio.fail_after(30):
        # The pool reconnects on its own schedule: its answers are the only event to wait for.
        while (response := await client.get("/status")).status_code != code:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    return response


@pytest.mark.anyio
async def test_lost_database_answers_503_and_recovers_by_itself(
    postgres_server: PostgresServer, postgres_database_url: str
) -> None:
    """PostgreSQL gone: items are 503 with a detail and /status is degraded; back: all is well."""
    postgres_url = postgres_database_url
    dbname = postgres_url.rsplit("/", 1)[1]
    settings = _pg(
        postgres_url,
        database_pool_timeout_seconds=0.5,
        database_status_timeout_seconds=0.5,
        database_reconnect_timeout_seconds=2,
    )
    admin = postgres_server.url()
    async with b_on(settings) as client:
        assert 200 == (await client.get("/items/1")).status_code
        _sql(admin, f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        _rows(
            admin,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            dbname,
        )

        for method, path, body in [("GET", "/items/1", None), ("POST", "/items", {"name": "x"})]:
            response = await client.request(method, path, json=body)
            assert (503, {"detail": "The item store is unavailable; try again later."}) == (
                response.status_code,
                response.json(),
            )
        degraded = await _wait_for_status(client, 503)
        assert {"status": "degraded", "store": {"kind": "postgresql", "status": "unavailable"}} == (
            degraded.json()
        )

        _sql(admin, f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        await _wait_for_status(client, 200)
        created = await client.post("/items", json={"name": "after"})
        assert 201 == created.status_code
        assert 2 == created.json()["item_data"]["item_id"]


def _on_postgresql(case: HttpCase) -> HttpCase:
    if case.path == "/status":
        body = {"status": "ok", "store": {"kind": "postgresql", "status": "ok"}}
        return dataclasses.replace(case, body=body)
    return case


@pytest.fixture
async def pg_b(postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Give a client on B running on a new PostgreSQL database."""
    async with b_on(_pg(postgres_url)) as client:
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("case", [pytest.param(_on_postgresql(c), id=c.id) for c in CASES])
async def test_http_answers_on_postgresql(case: HttpCase, pg_b: httpx.AsyncClient) -> None:
    """B on PostgreSQL gives each request of the HTTP table its documented answer."""
    check_response(case, await pg_b.request(case.method, case.path, **case.request_kwargs()))


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
    """SERVICE_B_* variables of each kind (paths, URLs, JSON, numbers, flags) reach the settings."""
    monkeypatch.setenv("SERVICE_B_DATABASE_PATH", "/tmp/x.sqlite3")
    monkeypatch.setenv("SERVICE_B_API_KEYS", '{"k": "s"}')
    monkeypatch.setenv("SERVICE_B_ALLOWED_ORIGINS", '["https://app.example"]')
    monkeypatch.setenv("SERVICE_B_WS_MAX_MESSAGE_BYTES", "2048")
    monkeypatch.setenv("SERVICE_B_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("SERVICE_B_WS_QUEUE_SIZE", "3")
    monkeypatch.setenv("SERVICE_B_LOGIN_MAX_CLOCK_SKEW_SECONDS", "5")
    monkeypatch.setenv("SERVICE_B_ENABLE_PACT_PROVIDER_STATES", "true")
    monkeypatch.setenv("SERVICE_B_DATABASE_URL", "postgresql://b:pw@db:5433/items")
    monkeypatch.setenv("SERVICE_B_DATABASE_POOL_MIN_SIZE", "0")
    monkeypatch.setenv("SERVICE_B_DATABASE_POOL_MAX_SIZE", "3")
    monkeypatch.setenv("SERVICE_B_DATABASE_POOL_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("SERVICE_B_DATABASE_CONNECT_TIMEOUT_SECONDS", "4")
    monkeypatch.setenv("SERVICE_B_DATABASE_RECONNECT_TIMEOUT_SECONDS", "6")
    monkeypatch.setenv("SERVICE_B_DATABASE_STATUS_TIMEOUT_SECONDS", "0.5")
    settings = Settings()
    assert "/tmp/x.sqlite3" == settings.database_path
    assert settings.database_url is not None
    assert "postgresql://b:pw@db:5433/items" == settings.database_url.get_secret_value()
    assert "pw" not in repr(settings)
    assert (0, 3, 2.0, 4.0, 6.0, 0.5) == (
        settings.database_pool_min_size,
        settings.database_pool_max_size,
        settings.database_pool_timeout_seconds,
        settings.database_connect_timeout_seconds,
        settings.database_reconnect_timeout_seconds,
        settings.database_status_timeout_seconds,
    )
    assert {"k": SecretStr("s")} == settings.api_keys
    assert ["https://app.example"] == settings.allowed_origins
    assert (2048, 4096, 3) == (
        settings.ws_max_message_bytes,
        settings.max_body_bytes,
        settings.ws_queue_size,
    )
    assert 5.0 == settings.login_max_clock_skew_seconds
    assert settings.enable_pact_provider_states
    assert not settings.uses_demo_credentials()


@pytest.mark.parametrize(
    "changes",
    [
        {"database_url": "mysql://db/items"},
        {"database_pool_min_size": 5, "database_pool_max_size": 4},
        {"database_pool_max_size": 0},
        {"database_pool_timeout_seconds": 0},
    ],
)
def test_bad_store_settings_are_refused(changes: dict[str, object]) -> None:
    """A URL that is not PostgreSQL's, or pool sizes that cannot work, stop B at startup."""
    with pytest.raises(ValidationError):
        Settings(**changes)  # type: ignore[arg-type]
