"""B's broadcast and items push tests of test_ws_api.py, run again with the Redis fan-out.

Importing a test function into this module makes pytest collect it here too, with this
module's `b_settings`: the same B, fanning out through a real redis-server
(tests/redis_server.py) on channels of the test's own.
"""

from __future__ import annotations

from typing import Any

import pytest

from service_b import Settings
from tests.service_b.test_ws_api import (
    test_broadcast_reaches_others_not_sender,
    test_every_subscriber_gets_the_push,
    test_item_changes_are_pushed,
    test_no_push_without_subscribe,
)

__all__ = [
    "test_broadcast_reaches_others_not_sender",
    "test_every_subscriber_gets_the_push",
    "test_item_changes_are_pushed",
    "test_no_push_without_subscribe",
]


@pytest.fixture
def b_settings(redis_fanout: dict[str, Any]) -> Settings:
    """Give B's in-process settings, fanning out through Redis."""
    return Settings(database_path=":memory:", **redis_fanout)
