"""The Pact provider-state endpoint: served only when B is started for contract verification.

`POST /_pact/provider_states` with `{"state", "params", "action"}` is what every Pact verifier
(pact-python's, the command-line one, a broker-triggered pipeline) calls before and after each
interaction. It changes B's data, so it is off unless `SERVICE_B_ENABLE_PACT_PROVIDER_STATES`
is set, and it is never in the OpenAPI document.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from service_b.resources import StoreDep
from service_b.store import ItemStore

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


class ProviderState(BaseModel):
    """A state a Pact interaction needs, to set up before it or tear down after it."""

    state: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    action: Literal["setup", "teardown"] = "setup"


async def _fresh_store(store: ItemStore, _: Mapping[str, Any]) -> None:
    await store.reset()


async def _no_item_999(store: ItemStore, _: Mapping[str, Any]) -> None:
    await store.delete(999)


#: The data each state needs. A state not named here needs no data (for example the states
#: of WebSocket message interactions, which their producers act out themselves).
STATES: dict[str, Callable[[ItemStore, Mapping[str, Any]], Awaitable[None]]] = {
    "item 1 exists": _fresh_store,
    "item 999 does not exist": _no_item_999,
}


@router.post("/_pact/provider_states")
async def set_up_provider_state(body: ProviderState, store: StoreDep) -> dict[str, str]:
    """Put B's data in the state an interaction needs (nothing is torn down)."""
    set_up = STATES.get(body.state)
    if body.action == "teardown" or set_up is None:
        logger.info("provider state %r (%s): nothing to do", body.state, body.action)
        return {"result": "nothing to do"}
    await set_up(store, body.params)
    logger.info("provider state %r set up", body.state)
    return {"result": "set up"}
