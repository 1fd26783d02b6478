"""A's HTTP routes: its own, the health check, and the item operations forwarded to B."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import httpx
from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import Field, TypeAdapter, ValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service_a.b_client import ServiceBError, call_service_b, headers_for_b, passed_on
from service_a.dependencies import ServiceBClient, SettingsDep
from service_a.forwarded import RawHeaders, replace_forwarding
from service_a.models import (
    B_ANSWER,
    B_STATUS,
    DETAIL,
    ITEM,
    ITEM_CREATED,
    ITEM_LIST,
    SQLITE_MAX_INTEGER,
    VALIDATION_ERRORS,
    AAnswer,
    BAnswer,
    Degraded,
    Detail,
    Healthy,
    Item,
    ItemCreated,
    ItemIn,
    ServiceBDown,
    ServiceBUp,
)
from service_a.strict_inputs import DECIMAL_DIGITS, DECIMAL_INTEGER, StrictJsonRoute

router = APIRouter()


def _headers_for_b(request: Request) -> RawHeaders:
    """Give the caller's headers to pass on to B, the forwarding ones written by A."""
    return replace_forwarding(headers_for_b(request), request.scope)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        status.HTTP_400_BAD_REQUEST: "The body is not UTF-8 (a byte order mark, UTF-16 or "
        "UTF-32 included), or cannot be read",
        status.HTTP_404_NOT_FOUND: "No item has this id (B's answer, passed on)",
        status.HTTP_413_CONTENT_TOO_LARGE: "The body is larger than SERVICE_A_MAX_BODY_BYTES",
        status.HTTP_502_BAD_GATEWAY: "B answered with an error, or with an answer A cannot use",
        status.HTTP_503_SERVICE_UNAVAILABLE: "B cannot be reached",
        status.HTTP_504_GATEWAY_TIMEOUT: "B did not answer in time",
    }
    return {code: {"model": Detail, "description": descriptions[code]} for code in codes}


GATEWAY_ERRORS = (
    status.HTTP_502_BAD_GATEWAY,
    status.HTTP_503_SERVICE_UNAVAILABLE,
    status.HTTP_504_GATEWAY_TIMEOUT,
)
BODY_ERRORS = (status.HTTP_400_BAD_REQUEST, status.HTTP_413_CONTENT_TOO_LARGE)

# What A accepts from B, per operation: status to the model of the body (None: no body).
REFUSED: dict[int, TypeAdapter[Any] | None] = {
    status.HTTP_422_UNPROCESSABLE_CONTENT: VALIDATION_ERRORS,
    # B up but its item store unreachable (PostgreSQL down): B's detail says so, A passes it on.
    status.HTTP_503_SERVICE_UNAVAILABLE: DETAIL,
}
NOT_FOUND: dict[int, TypeAdapter[Any] | None] = {status.HTTP_404_NOT_FOUND: DETAIL}
#: For each item operation A forwards, the answers A accepts from B: status to body model.
EXPECTED: dict[str, dict[int, TypeAdapter[Any] | None]] = {
    "list_items": {status.HTTP_200_OK: ITEM_LIST, **REFUSED},
    "create_item": {status.HTTP_201_CREATED: ITEM_CREATED, **REFUSED},
    "get_item": {status.HTTP_200_OK: ITEM, **NOT_FOUND, **REFUSED},
    "update_item": {status.HTTP_200_OK: ITEM, **NOT_FOUND, **REFUSED},
    "delete_item": {status.HTTP_204_NO_CONTENT: None, **NOT_FOUND, **REFUSED},
}


@router.get("/a/", response_model=AAnswer)
async def get_a() -> AAnswer:
    """Answer `{"a": "a"}`."""
    return AAnswer()


@router.get("/a/call_b", response_model=BAnswer, responses=_errors(*GATEWAY_ERRORS))
async def call_b(request: Request, client: ServiceBClient) -> Response:
    """Call B's `GET /b/` and give its answer."""
    response = await call_service_b(
        client, "GET", "/b/", expect={200: B_ANSWER}, headers=_headers_for_b(request)
    )
    return passed_on(response)


@router.get(
    "/status",
    response_model=Healthy,
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Degraded}},
)
async def get_status(
    request: Request, client: ServiceBClient, settings: SettingsDep
) -> Healthy | JSONResponse:
    """Report whether B answers its own `GET /status`, and how fast."""
    report = await ask_b_status(client, _headers_for_b(request), settings.status_timeout)
    if isinstance(report, ServiceBDown):
        down = Degraded(status="degraded", service_b=report)
        return JSONResponse(
            down.model_dump(mode="json"), status_code=status.HTTP_503_SERVICE_UNAVAILABLE
        )
    return Healthy(status="ok", service_b=report)


async def ask_b_status(
    client: httpx.AsyncClient,
    headers: RawHeaders,
    seconds: float,
    extensions: dict[str, Any] | None = None,
) -> ServiceBUp | ServiceBDown:
    """Ask B's own `GET /status` within `seconds`: up, with how fast, or down, with why."""
    started = anyio.current_time()
    try:
        response = await client.get(
            "/status", headers=headers, timeout=httpx.Timeout(seconds), extensions=extensions
        )
        response.raise_for_status()
        B_STATUS.validate_json(response.content)
    except (httpx.HTTPError, ValidationError) as exc:
        return ServiceBDown(status="unavailable", detail=_why(exc))
    return ServiceBUp(status="ok", latency_ms=(anyio.current_time() - started) * 1000)


def _why(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "service B timed out"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"service B answered {exc.response.status_code}"
    if isinstance(exc, ValidationError):
        return "service B's status is not ok"
    return "service B unavailable"


items = APIRouter(prefix="/items", tags=["items"], route_class=StrictJsonRoute)
NEW_ITEM_ID = "$response.body#/item_data/item_id"
# The bounds go on the inner type, so the OpenAPI document gives them as minimum and maximum.
ItemId = Annotated[int, Field(ge=1, le=SQLITE_MAX_INTEGER)]
ItemIdPath = Annotated[ItemId, DECIMAL_INTEGER, Path(description=DECIMAL_DIGITS)]
PageSize = Annotated[int, Field(ge=1, le=100)]
Offset = Annotated[int, Field(ge=0, le=SQLITE_MAX_INTEGER)]


@items.get("", response_model=list[Item], responses=_errors(*GATEWAY_ERRORS))
async def list_items(
    request: Request,
    client: ServiceBClient,
    limit: Annotated[PageSize, DECIMAL_INTEGER, Query(description=DECIMAL_DIGITS)] = 20,
    offset: Annotated[Offset, DECIMAL_INTEGER, Query(description=DECIMAL_DIGITS)] = 0,
) -> Response:
    """Give one page of B's items, in id order."""
    response = await call_service_b(
        client,
        "GET",
        "/items",
        expect=EXPECTED["list_items"],
        headers=_headers_for_b(request),
        params={"limit": limit, "offset": offset},
    )
    return passed_on(response)


@items.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ItemCreated,
    responses={
        status.HTTP_201_CREATED: {
            "headers": {
                "Location": {
                    "description": "The new item's URL",
                    "schema": {"type": "string"},
                    "required": True,
                }
            },
            "links": {
                name: {"operationId": operation, "parameters": {"item_id": NEW_ITEM_ID}}
                for name, operation in (
                    ("GetItemById", "get_item"),
                    ("UpdateItemById", "update_item"),
                    ("DeleteItemById", "delete_item"),
                )
            },
        },
        **_errors(*BODY_ERRORS, *GATEWAY_ERRORS),
    },
)
async def create_item(item: ItemIn, request: Request, client: ServiceBClient) -> Response:
    """Create an item on B; its URL is in `Location`."""
    response = await call_service_b(
        client,
        "POST",
        "/items",
        expect=EXPECTED["create_item"],
        headers=_headers_for_b(request),
        body=item.model_dump(mode="json", exclude_unset=True),
    )
    return passed_on(response)


@items.get(
    "/{item_id}",
    response_model=Item,
    responses=_errors(status.HTTP_404_NOT_FOUND, *GATEWAY_ERRORS),
)
async def get_item(item_id: ItemIdPath, request: Request, client: ServiceBClient) -> Response:
    """Give B's item with this id."""
    response = await call_service_b(
        client,
        "GET",
        f"/items/{item_id}",
        expect=EXPECTED["get_item"],
        headers=_headers_for_b(request),
    )
    return passed_on(response)


async def forward_get_item(scope: Scope, receive: Receive, send: Send, item_id: int) -> None:
    """Serve a plain `GET /items/{id}` as `get_item` does, past FastAPI's router.

    A's edge sends it here (`service_a.edge.plain_get_item` says which requests): FastAPI's
    routing, dependencies and exception middleware were about 30 % of A's samples on this
    path (py-spy, wrk at 32 connections; README, Speed). The same calls make the answer,
    and B's failures get the app's own handler for `ServiceBError`.
    """
    request = Request(scope, receive)
    try:
        response = await call_service_b(
            scope["state"]["service_b_client"],
            "GET",
            f"/items/{item_id}",
            expect=EXPECTED["get_item"],
            headers=_headers_for_b(request),
        )
        answer = passed_on(response)
    except ServiceBError as exc:
        answer = await scope["app"].exception_handlers[ServiceBError](request, exc)
    await answer(scope, receive, send)


@items.put(
    "/{item_id}",
    response_model=Item,
    responses=_errors(status.HTTP_404_NOT_FOUND, *BODY_ERRORS, *GATEWAY_ERRORS),
)
async def update_item(
    item_id: ItemIdPath, item: ItemIn, request: Request, client: ServiceBClient
) -> Response:
    """Replace the name and offer flag of B's item."""
    response = await call_service_b(
        client,
        "PUT",
        f"/items/{item_id}",
        expect=EXPECTED["update_item"],
        headers=_headers_for_b(request),
        body=item.model_dump(mode="json", exclude_unset=True),
    )
    return passed_on(response)


@items.delete(
    "/{item_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_errors(status.HTTP_404_NOT_FOUND, *GATEWAY_ERRORS),
)
async def delete_item(item_id: ItemIdPath, request: Request, client: ServiceBClient) -> Response:
    """Remove B's item."""
    response = await call_service_b(
        client,
        "DELETE",
        f"/items/{item_id}",
        expect=EXPECTED["delete_item"],
        headers=_headers_for_b(request),
    )
    return passed_on(response)


router.include_router(items)
