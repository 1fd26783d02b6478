"""What B's lifespan opens, and the dependencies through which routes reach it.

The dependencies are `async def` although they only read attributes: FastAPI runs a plain
`def` dependency on a worker thread, a costly hop on every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from service_b.login_guard import LoginGuard
from service_b.settings import Settings
from service_b.store import ItemStore
from service_b.topics import Topic


@dataclass(frozen=True, slots=True)
class Resources:
    """Everything one run of B owns, from startup to shutdown."""

    settings: Settings
    store: ItemStore
    broadcast: Topic[str]
    static_dir: Path
    login_guard: LoginGuard


async def get_resources(connection: HTTPConnection) -> Resources:
    """Give the resources of the running app, from its lifespan state."""
    return cast("Resources", connection.state.resources)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_store(resources: ResourcesDep) -> ItemStore:
    """Give the item store."""
    return resources.store


async def get_settings(resources: ResourcesDep) -> Settings:
    """Give the settings B runs with."""
    return resources.settings


StoreDep = Annotated[ItemStore, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
