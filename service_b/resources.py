"""What B's lifespan opens, and the dependencies through which routes reach it.

The dependencies are `async def` although they only read attributes: FastAPI runs a plain
`def` dependency on a worker thread, a costly hop on every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypedDict

from fastapi import Depends
from starlette.requests import HTTPConnection

from service_b.fanout_redis import RedisFanout
from service_b.login_guard import LoginGuard
from service_b.settings import Settings
from service_b.store import ItemChange, ItemStore, SQLiteItemStore
from service_b.store_pg import PoolSettings, PostgresItemStore
from service_b.topics import Topic


@asynccontextmanager
async def open_store(settings: Settings, changes: Topic[ItemChange]) -> AsyncIterator[ItemStore]:
    """Open the store `settings` name: PostgreSQL when `database_url` is set, else SQLite."""
    if settings.database_url is None:
        async with SQLiteItemStore.open(settings.database_path, changes) as sqlite_store:
            yield sqlite_store
        return
    pool = PoolSettings(
        min_size=settings.database_pool_min_size,
        max_size=settings.database_pool_max_size,
        timeout=settings.database_pool_timeout_seconds,
        connect_timeout=settings.database_connect_timeout_seconds,
        reconnect_timeout=settings.database_reconnect_timeout_seconds,
        status_timeout=settings.database_status_timeout_seconds,
    )
    url = settings.database_url.get_secret_value()
    async with PostgresItemStore.open(url, changes, pool) as postgres_store:
        yield postgres_store


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics B fans out through, and the Redis fan-out behind them (None: in-process)."""

    changes: Topic[ItemChange]
    broadcast: Topic[str]
    redis: RedisFanout | None


@asynccontextmanager
async def open_topics(
    settings: Settings, render_change: Callable[[ItemChange], str]
) -> AsyncIterator[Topics]:
    """Make the item changes' and the broadcast's topics: through Redis when `redis_url` is set.

    With Redis, the subscriber has made its first attempt when this yields (see
    `RedisFanout.start`); without, the topics are this process's alone, as they always were.
    """
    queue = (settings.ws_queue_size, settings.ws_queue_bytes)
    if settings.redis_url is None:
        changes = Topic[ItemChange](*queue, render=render_change, name="items")
        yield Topics(changes, Topic[str](*queue, name="broadcast"), None)
        return
    async with RedisFanout.open(settings) as redis:
        changes = redis.topic("items", *queue, render=render_change)
        broadcast: Topic[str] = redis.topic("broadcast", *queue, render=str)
        await redis.start()
        yield Topics(changes, broadcast, redis)


@dataclass(frozen=True, slots=True)
class Resources:
    """Everything one run of B owns, from startup to shutdown."""

    settings: Settings
    store: ItemStore
    broadcast: Topic[str]
    static_dir: Path
    login_guard: LoginGuard
    #: The Redis fan-out, when B fans out through Redis (`GET /status` reports on it).
    redis: RedisFanout | None = None


class State(TypedDict):
    """What B's lifespan yields; Starlette hands each request a copy as its state."""

    resources: Resources


async def get_resources(connection: HTTPConnection) -> Resources:
    """Give the resources of the running app, from its lifespan state."""
    state: State = connection.scope["state"]
    return state["resources"]


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_store(resources: ResourcesDep) -> ItemStore:
    """Give the item store."""
    return resources.store


async def get_settings(resources: ResourcesDep) -> Settings:
    """Give the settings B runs with."""
    return resources.settings


StoreDep = Annotated[ItemStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
