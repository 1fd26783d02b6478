"""A typed door to httpx-ws for the tests."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from httpx_ws import AsyncWebSocketSession, aconnect_ws


def connect_ws(
    url: str, client: httpx.AsyncClient, **options: Any
) -> AbstractAsyncContextManager[AsyncWebSocketSession]:
    """Open a WebSocket session through `client` (`aconnect_ws`, with its session type named)."""
    return aconnect_ws(url, client, session_class=AsyncWebSocketSession, **options)
