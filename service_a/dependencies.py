"""The dependencies through which A's routes reach what its lifespan opened.

They are `async def` although they only read state: FastAPI runs a plain `def` dependency
on a worker thread, a costly hop on every request.
"""

from __future__ import annotations

from typing import Annotated, TypedDict

import anyio
import httpx
from fastapi import Depends
from starlette.requests import HTTPConnection

from service_a.settings import Settings


class State(TypedDict):
    """What A's lifespan yields; Starlette hands each request a copy as its state."""

    service_b_client: httpx.AsyncClient
    settings: Settings
    ws_sessions: anyio.CapacityLimiter


def _state(connection: HTTPConnection) -> State:
    state: State = connection.scope["state"]
    return state


async def get_service_b_client(connection: HTTPConnection) -> httpx.AsyncClient:
    """Give the one client for B that A's lifespan opened (tests override this dependency)."""
    return _state(connection)["service_b_client"]


async def get_settings(connection: HTTPConnection) -> Settings:
    """Give the settings A runs with."""
    return _state(connection)["settings"]


async def get_ws_sessions(connection: HTTPConnection) -> anyio.CapacityLimiter:
    """Give the count of the WebSocket sessions A relays, bounded by `max_ws_sessions`."""
    return _state(connection)["ws_sessions"]


ServiceBClient = Annotated[httpx.AsyncClient, Depends(get_service_b_client)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
WsSessions = Annotated[anyio.CapacityLimiter, Depends(get_ws_sessions)]
