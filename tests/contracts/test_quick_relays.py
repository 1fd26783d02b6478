"""pact-python's relay servers stop without waiting half a second (quick_relays.py)."""

from __future__ import annotations

import inspect

from pact import _server

from tests.contracts import quick_relays


def test_relay_servers_poll_quickly() -> None:
    """The class pact-python serves its relays with is still there, and polls every 10 ms."""
    quick_relays.apply()
    serve = _server.HandlerHttpServer.serve_forever
    assert quick_relays.POLL_SECONDS == inspect.signature(serve).parameters["poll_interval"].default
