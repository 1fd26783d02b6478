"""SQLite point reads on the event loop (issue 12): no worker thread, and every commit seen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio.to_thread
import pytest

from service_b.store import SEED_ITEM, ItemChange, SQLiteItemStore
from service_b.topics import Topic


def _counting_hops(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    hops: list[object] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(function: object, *args: object, **kwargs: object) -> object:
        hops.append(function)
        return await run_sync(function, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    return hops


@pytest.mark.anyio
async def test_a_point_read_of_a_file_store_takes_no_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `get` on a WAL file reads on the loop: found or not, no hop to a worker thread."""
    async with SQLiteItemStore.open(str(tmp_path / "items.sqlite3"), Topic[ItemChange](8)) as store:
        hops = _counting_hops(monkeypatch)
        assert await store.get(SEED_ITEM.item_id) == SEED_ITEM
        assert await store.get(2) is None
        assert hops == []


@pytest.mark.anyio
async def test_a_point_read_sees_every_committed_write(tmp_path: Path) -> None:
    """The loop's reader sees each write once its call returned, and the reset."""
    async with SQLiteItemStore.open(str(tmp_path / "items.sqlite3"), Topic[ItemChange](8)) as store:
        created = await store.create("new", is_offer=True)
        assert await store.get(created.item_id) == created
        updated = await store.update(created.item_id, "renamed", is_offer=None)
        assert await store.get(created.item_id) == updated
        await store.delete(created.item_id)
        assert await store.get(created.item_id) is None
        await store.reset()
        assert await store.get(SEED_ITEM.item_id) == SEED_ITEM


class _BusyReader:
    """Stands for the loop's reader when SQLite answers it SQLITE_BUSY."""

    def execute(self, *_: object) -> None:
        raise sqlite3.OperationalError("database is locked")


@pytest.mark.anyio
async def test_a_busy_read_is_retried_on_the_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that SQLite finds busy gives up at once; the worker thread reads instead."""
    async with SQLiteItemStore.open(str(tmp_path / "items.sqlite3"), Topic[ItemChange](8)) as store:
        reader = store._reader  # noqa: SLF001 - the busy case cannot be made on demand in WAL
        monkeypatch.setattr(store, "_reader", _BusyReader())
        hops = _counting_hops(monkeypatch)
        assert await store.get(SEED_ITEM.item_id) == SEED_ITEM
        assert len(hops) == 1
        monkeypatch.setattr(store, "_reader", reader)


@pytest.mark.anyio
async def test_a_memory_store_reads_on_the_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `:memory:` store has one connection and no WAL: its reads keep the worker thread."""
    async with SQLiteItemStore.open(":memory:", Topic[ItemChange](8)) as store:
        hops = _counting_hops(monkeypatch)
        assert await store.get(SEED_ITEM.item_id) == SEED_ITEM
        assert len(hops) == 1
