"""B's items in PostgreSQL: psycopg 3 with a `psycopg_pool.ConnectionPool`, through anyio threads.

The driver is psycopg's synchronous API, called on anyio worker threads as the SQLite store
is, so the store runs on asyncio and on trio alike (psycopg's async API is asyncio-only). At
most `pool_max_size` calls run at once (an anyio capacity limiter of that size), so no worker
thread waits for a connection while another could have used it.

Behaviour shared with the SQLite store (`service_b.store.ItemStore`):

- ids come from an identity column (a sequence), so an id is never handed out twice, even
  after its item was deleted or its transaction rolled back;
- every call is its own transaction (autocommit; `reset` uses one explicit transaction),
  committed with `synchronous_commit` at least `on` before the call returns, and only then
  published to `changes`;
- the schema is made by numbered migration steps recorded in `schema_version`, applied in one
  transaction under an advisory lock, so several Bs starting at once on one database apply
  each step exactly once; the first step seeds item 1.

When the database cannot be reached a call raises `StoreUnavailable` (B answers 503). The
pool checks each connection before handing it out (`ConnectionPool.check_connection`),
discards broken ones and reconnects in the background, so B recovers by itself once
PostgreSQL is back. The check is one empty round trip: 20 to 35 µs a call on loopback
(2000 `SELECT 1` through a one-connection pool, with and without it), against about a
millisecond for a request through B; without it, each pooled connection would fail one
request after a restart of PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from service_b.models import Item
from service_b.store import SEED_ITEM, ItemChange, StoreKind, StoreUnavailable
from service_b.topics import Topic

logger = logging.getLogger(__name__)

R = TypeVar("R")
Connection = psycopg.Connection[tuple[Any, ...]]

#: The key of the advisory lock migrations are applied under: any fixed bigint will do, and
#: advisory locks are per database.
MIGRATION_LOCK_KEY = int.from_bytes(b"svc_b_mg", "big", signed=True)


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of the schema; steps run in order, each exactly once per database."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_items(db: Connection) -> None:
    # GENERATED ALWAYS: only the sequence hands out ids (the seed says OVERRIDING on purpose).
    # The name is UTF-8 in a bytea: PostgreSQL's text cannot hold U+0000, which a name may
    # (and SQLite keeps), and B never searches by name.
    db.execute(
        "CREATE TABLE items ("
        " item_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " name bytea NOT NULL,"
        " is_offer boolean)"
    )
    _seed(db)


#: Every step of the schema, in order. Add a step; never edit one that has shipped.
MIGRATIONS: tuple[Migration, ...] = (Migration(1, "items, seeded with item 1", _create_items),)


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer B than this one."""


def _item(row: tuple[Any, ...]) -> Item:
    item_id, name, is_offer = row
    return Item(item_id=item_id, name=bytes(name).decode(), is_offer=is_offer)


def _seed(db: Connection) -> None:
    db.execute(
        "INSERT INTO items (item_id, name, is_offer) OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s)",
        (SEED_ITEM.item_id, SEED_ITEM.name.encode(), SEED_ITEM.is_offer),
    )
    # The next id the sequence gives is the one after the seed's.
    db.execute(
        "SELECT setval(pg_get_serial_sequence('items', 'item_id'), %s)", (SEED_ITEM.item_id,)
    )


def migrate(db: Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the steps `db` lacks, in one transaction under the migration lock; give the version."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY,"
            " description text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        current: int = row[0] if row else 0
        latest = migrations[-1].version if migrations else 0
        if current > latest:
            raise SchemaTooNew(
                f"the database is at schema version {current}, newer than this B knows "
                f"({latest}); run a B at least as new as the one that migrated it"
            )
        for step in migrations:
            if step.version > current:
                logger.info("applying schema step %d: %s", step.version, step.description)
                step.apply(db)
                db.execute(
                    "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                    (step.version, step.description),
                )
        return max(current, latest)


def _configure(db: Connection) -> None:
    # A write is acknowledged only once its commit is flushed: never run with `off`, but keep
    # a stronger level (remote_write, remote_apply) or `local` if the server asks for it.
    row = db.execute("SHOW synchronous_commit").fetchone()
    if row is not None and row[0] == "off":
        db.execute("SET synchronous_commit = on")


def describe(url: str) -> str:
    """Name the database of `url` for logs: host, port and name, never the password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "a PostgreSQL database (its URL could not be read)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return (
        f"PostgreSQL database {parts.get('dbname') or parts.get('user') or ''!s} on {host}:{port}"
    )


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """How the store's connection pool is sized and how long it waits."""

    min_size: int = 1
    max_size: int = 10
    timeout: float = 5.0
    connect_timeout: float = 10.0
    reconnect_timeout: float = 30.0
    status_timeout: float = 1.0


class PostgresItemStore:
    """CRUD on items in PostgreSQL; every committed change is published to `changes`."""

    def __init__(
        self, pool: ConnectionPool[Connection], changes: Topic[ItemChange], settings: PoolSettings
    ) -> None:
        """Wrap an open pool on a migrated database."""
        self._pool = pool
        self._changes = changes
        self._settings = settings
        self._limiter = anyio.CapacityLimiter(settings.max_size)

    @property
    def kind(self) -> StoreKind:
        """Name the engine: PostgreSQL."""
        return "postgresql"

    @property
    def changes(self) -> Topic[ItemChange]:
        """Give the topic every committed change is published to."""
        return self._changes

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, changes: Topic[ItemChange], settings: PoolSettings | None = None
    ) -> AsyncIterator[PostgresItemStore]:
        """Open a pool on `url`, migrate the schema, and close the pool on exit.

        Raises `StoreUnavailable` when the database cannot be reached within
        `connect_timeout` seconds, and `SchemaTooNew` when a newer B migrated it.
        """
        settings = settings or PoolSettings()
        where = describe(url)
        pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            connection_class=psycopg.Connection,
            kwargs={
                "autocommit": True,
                "application_name": "service_b",
                # libpq's own limit per attempt, in whole seconds (it treats 1 as 2).
                "connect_timeout": max(2, round(settings.connect_timeout)),
            },
            min_size=settings.min_size,
            max_size=settings.max_size,
            timeout=settings.timeout,
            reconnect_timeout=settings.reconnect_timeout,
            check=ConnectionPool.check_connection,
            configure=_configure,
            name="service_b",
            open=False,
        )
        try:
            await anyio.to_thread.run_sync(
                partial(pool.open, wait=True, timeout=settings.connect_timeout)
            )
            version = await anyio.to_thread.run_sync(partial(_migrate_with, pool, settings))
        except (psycopg.OperationalError, PoolTimeout) as exc:
            await anyio.to_thread.run_sync(pool.close)
            raise StoreUnavailable(f"cannot reach {where}: {exc}") from exc
        except BaseException:
            await anyio.to_thread.run_sync(pool.close)
            raise
        logger.info("items in %s, schema version %d", where, version)
        try:
            yield cls(pool, changes, settings)
        finally:
            await anyio.to_thread.run_sync(pool.close)

    async def _run(self, call: Callable[[Connection], R], wait: float | None = None) -> R:
        def in_thread() -> R:
            try:
                with self._pool.connection(timeout=wait) as db:
                    return call(db)
            except psycopg.OperationalError as exc:  # PoolTimeout is one too
                raise StoreUnavailable(f"the item store cannot be reached: {exc}") from exc

        return await anyio.to_thread.run_sync(in_thread, limiter=self._limiter)

    async def get(self, item_id: int) -> Item | None:
        """Give the item with this id, or None."""

        def read(db: Connection) -> Item | None:
            row = db.execute(
                "SELECT item_id, name, is_offer FROM items WHERE item_id = %s", (item_id,)
            ).fetchone()
            return None if row is None else _item(row)

        return await self._run(read)

    async def page(self, limit: int, offset: int) -> list[Item]:
        """Give up to `limit` items in id order, after skipping `offset` of them."""

        def read(db: Connection) -> list[Item]:
            rows = db.execute(
                "SELECT item_id, name, is_offer FROM items ORDER BY item_id LIMIT %s OFFSET %s",
                (limit, offset),
            ).fetchall()
            return [_item(row) for row in rows]

        return await self._run(read)

    async def create(self, name: str, is_offer: bool | None) -> Item:
        """Store a new item and give it with its new id."""

        def write(db: Connection) -> Item:
            row = db.execute(
                "INSERT INTO items (name, is_offer) VALUES (%s, %s) RETURNING item_id",
                (name.encode(), is_offer),
            ).fetchone()
            assert row is not None  # noqa: S101 - INSERT ... RETURNING gives one row
            return Item(item_id=row[0], name=name, is_offer=is_offer)

        item = await self._run(write)
        await self.changes.publish(ItemChange("created", item))
        return item

    async def update(self, item_id: int, name: str, is_offer: bool | None) -> Item | None:
        """Replace an item's fields; give the new item, or None when there is no such item."""

        def write(db: Connection) -> bool:
            cursor = db.execute(
                "UPDATE items SET name = %s, is_offer = %s WHERE item_id = %s",
                (name.encode(), is_offer, item_id),
            )
            return cursor.rowcount == 1

        if not await self._run(write):
            return None
        item = Item(item_id=item_id, name=name, is_offer=is_offer)
        await self.changes.publish(ItemChange("updated", item))
        return item

    async def delete(self, item_id: int) -> Item | None:
        """Remove an item; give what it was, or None when there is no such item."""

        def write(db: Connection) -> Item | None:
            row = db.execute(
                "DELETE FROM items WHERE item_id = %s RETURNING item_id, name, is_offer",
                (item_id,),
            ).fetchone()
            return None if row is None else _item(row)

        item = await self._run(write)
        if item is not None:
            await self.changes.publish(ItemChange("deleted", item))
        return item

    async def reset(self) -> None:
        """Empty the store and put back the seed item, as in a fresh store."""

        def write(db: Connection) -> None:
            with db.transaction():
                db.execute("TRUNCATE items RESTART IDENTITY")
                _seed(db)

        await self._run(write)

    async def reachable(self) -> bool:
        """Tell whether PostgreSQL answers within `status_timeout` seconds."""
        try:
            await self._run(
                lambda db: db.execute("SELECT 1").fetchone(), wait=self._settings.status_timeout
            )
        except StoreUnavailable:
            return False
        return True


def _migrate_with(pool: ConnectionPool[Connection], settings: PoolSettings) -> int:
    with pool.connection(timeout=settings.connect_timeout) as db:
        return migrate(db)
