"""B's items: the store interface, and its SQLite implementation (the default).

`ItemStore` is what routes see. Two classes implement it with the same behaviour:
`SQLiteItemStore` here, and `service_b.store_pg.PostgresItemStore` when
`SERVICE_B_DATABASE_URL` names a PostgreSQL database. Both reach their driver from async code
through anyio worker threads, so both run on asyncio and on trio.

One exception, measured: SQLite's point read by primary key (`get`) runs on the event loop,
on a read-only connection of its own, when the file is in WAL mode. The hop to a worker
thread costs about 70 µs a call on this machine, the read itself about 3 µs from the page
cache; in WAL mode a reader never waits for the writer, so the read cannot block the loop
behind a write's fsync. Writes, pages (an `OFFSET` may scan far) and `:memory:` stores (one
connection, no WAL) keep the worker thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import anyio
import anyio.to_thread

from service_b.models import Item
from service_b.topics import Topic

R = TypeVar("R")

SEED_ITEM = Item(item_id=1, name="The One Item")

_SCHEMA_VERSION = 1
# AUTOINCREMENT: an id is never handed out twice, even after its item was deleted.
_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS items (
    item_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    is_offer INTEGER
)
"""


StoreKind = Literal["sqlite", "postgresql"]


class StoreUnavailable(RuntimeError):
    """The store's database cannot be reached now; the request may be tried again later."""


@dataclass(frozen=True, slots=True)
class ItemChange:
    """One committed change to the items, as subscribers of the `items` channel see it."""

    action: Literal["created", "updated", "deleted"]
    item: Item


def _item(row: tuple[int, str, int | None]) -> Item:
    item_id, name, is_offer = row
    return Item(item_id=item_id, name=name, is_offer=None if is_offer is None else bool(is_offer))


class ItemStore(Protocol):
    """CRUD on items, the same on every engine.

    Ids are never handed out twice, even after their item was deleted. A write has been
    committed durably when its call returns, and only then is it published to `changes`.
    A new store holds `SEED_ITEM`. A call that cannot reach the database raises
    `StoreUnavailable`.
    """

    @property
    def kind(self) -> StoreKind:
        """Name the engine behind the store."""
        ...

    @property
    def changes(self) -> Topic[ItemChange]:
        """Give the topic every committed change is published to."""
        ...

    async def get(self, item_id: int) -> Item | None:
        """Give the item with this id, or None."""
        ...

    async def page(self, limit: int, offset: int) -> list[Item]:
        """Give up to `limit` items in id order, after skipping `offset` of them."""
        ...

    async def create(self, name: str, is_offer: bool | None) -> Item:
        """Store a new item and give it with its new id."""
        ...

    async def update(self, item_id: int, name: str, is_offer: bool | None) -> Item | None:
        """Replace an item's fields; give the new item, or None when there is no such item."""
        ...

    async def delete(self, item_id: int) -> Item | None:
        """Remove an item; give what it was, or None when there is no such item."""
        ...

    async def reset(self) -> None:
        """Empty the store and put back the seed item, as in a fresh store."""
        ...

    async def reachable(self) -> bool:
        """Tell whether the database answers now (within the store's own time limit)."""
        ...


class SQLiteItemStore:
    """CRUD on items in SQLite; every committed change is published to `changes`.

    SQLite calls run one at a time on a worker thread (a capacity limiter of one), so
    writes never race, and a call that returned has been committed to disk.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        changes: Topic[ItemChange],
        reader: sqlite3.Connection | None = None,
    ) -> None:
        """Wrap an open connection whose schema is in place.

        `reader`, a read-only connection to the same WAL-mode file, serves point reads on
        the event loop; without it, every call goes to the worker thread.
        """
        self._connection = connection
        self._reader = reader
        self._limiter = anyio.CapacityLimiter(1)
        self._changes = changes

    @property
    def kind(self) -> StoreKind:
        """Name the engine: SQLite."""
        return "sqlite"

    @property
    def changes(self) -> Topic[ItemChange]:
        """Give the topic every committed change is published to."""
        return self._changes

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str, changes: Topic[ItemChange]) -> AsyncIterator[SQLiteItemStore]:
        """Open (and if new, create and seed) the store at `path`; close it on exit."""
        connection = await anyio.to_thread.run_sync(_connect, path)
        reader = None
        try:
            reader = await anyio.to_thread.run_sync(_connect_reader, connection, path)
            yield cls(connection, changes, reader)
        finally:
            if reader is not None:
                await anyio.to_thread.run_sync(reader.close)
            await anyio.to_thread.run_sync(connection.close)

    async def _run(self, call: Callable[[sqlite3.Connection], R]) -> R:
        return await anyio.to_thread.run_sync(call, self._connection, limiter=self._limiter)

    async def get(self, item_id: int) -> Item | None:
        """Give the item with this id, or None."""

        def read(db: sqlite3.Connection) -> Item | None:
            # fetchall, not fetchone: the statement runs to its end, so its read transaction
            # ends here and never holds back a checkpoint.
            rows = db.execute(_GET_ITEM, (item_id,)).fetchall()
            return _item(rows[0]) if rows else None

        if self._reader is not None:
            try:
                return read(self._reader)
            except sqlite3.OperationalError:
                pass  # busy (a rare WAL recovery or checkpoint restart): the worker thread waits
        return await self._run(read)

    async def page(self, limit: int, offset: int) -> list[Item]:
        """Give up to `limit` items in id order, after skipping `offset` of them."""

        def read(db: sqlite3.Connection) -> list[Item]:
            rows = db.execute(
                "SELECT item_id, name, is_offer FROM items ORDER BY item_id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            return [_item(row) for row in rows]

        return await self._run(read)

    async def create(self, name: str, is_offer: bool | None) -> Item:
        """Store a new item and give it with its new id."""

        def write(db: sqlite3.Connection) -> Item:
            cursor = db.execute(
                "INSERT INTO items (name, is_offer) VALUES (?, ?)", (name, is_offer)
            )
            assert cursor.lastrowid is not None  # noqa: S101 - an INSERT always sets it
            return Item(item_id=cursor.lastrowid, name=name, is_offer=is_offer)

        item = await self._run(write)
        await self.changes.publish(ItemChange("created", item))
        return item

    async def update(self, item_id: int, name: str, is_offer: bool | None) -> Item | None:
        """Replace an item's fields; give the new item, or None when there is no such item."""

        def write(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE items SET name = ?, is_offer = ? WHERE item_id = ?",
                (name, is_offer, item_id),
            )
            return cursor.rowcount == 1

        if not await self._run(write):
            return None
        item = Item(item_id=item_id, name=name, is_offer=is_offer)
        await self.changes.publish(ItemChange("updated", item))
        return item

    async def delete(self, item_id: int) -> Item | None:
        """Remove an item; give what it was, or None when there is no such item."""

        def write(db: sqlite3.Connection) -> Item | None:
            row = db.execute(
                "DELETE FROM items WHERE item_id = ? RETURNING item_id, name, is_offer",
                (item_id,),
            ).fetchone()
            return None if row is None else _item(row)

        item = await self._run(write)
        if item is not None:
            await self.changes.publish(ItemChange("deleted", item))
        return item

    async def reset(self) -> None:
        """Empty the store and put back the seed item, as in a fresh store."""

        def write(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute("DELETE FROM items")
                db.execute("DELETE FROM sqlite_sequence WHERE name = 'items'")
                _seed(db)

        await self._run(write)

    async def reachable(self) -> bool:
        """Tell whether the file answers: an embedded file always does while B runs."""
        await self._run(lambda db: db.execute("SELECT 1").fetchone())
        return True


_GET_ITEM = "SELECT item_id, name, is_offer FROM items WHERE item_id = ?"


def _connect_reader(writer: sqlite3.Connection, path: str) -> sqlite3.Connection | None:
    """Open a read-only connection for reads on the event loop, when `path` is in WAL mode."""
    (mode,) = writer.execute("PRAGMA journal_mode").fetchone()
    if mode != "wal":
        return None  # `:memory:`: a second connection would open another, empty database
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    reader = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    try:
        # Never wait on the loop: a busy reader gives up at once, and the call is retried on
        # the worker thread (see `get`).
        reader.execute("PRAGMA busy_timeout = 0")
        reader.execute(_GET_ITEM, (SEED_ITEM.item_id,)).fetchall()
    except BaseException:
        reader.close()
        raise
    return reader


def _seed(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO items (item_id, name, is_offer) VALUES (?, ?, ?)",
        (SEED_ITEM.item_id, SEED_ITEM.name, SEED_ITEM.is_offer),
    )


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit: each statement is its own transaction, committed when `execute` returns.
    # One connection serves every worker-thread call; the limiter keeps them sequential.
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        # FULL: a write that returned survives a crash or power loss, not only a restart.
        connection.execute("PRAGMA synchronous = FULL")
        with _transaction(connection):
            connection.execute(_CREATE_TABLE)
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version == 0:
                _seed(connection)
                connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    except BaseException:
        connection.close()
        raise
    return connection
