"""A's `GET /status` in front of several Bs: every B asked at once, each one reported.

With one B, A's `/status` is the route in `service_a.http_api`, unchanged. With several
(`SERVICE_A_SERVICE_B_URL` a list), this route takes its place: the answer keeps the same
`status` and `service_b` fields, so what read them before still can, and adds `service_bs`,
one report for each B in the order configured. A can answer while any B does: `status` is
`ok` (200) then, with `service_b` the first B that answered; with none answering it is
`degraded` (503), with `service_b` the first B's failure. Each B is asked with its own
request pinned to it (service_a.balancer.PIN), so a B that answers again is put back in
turn by the health check too.
"""

from __future__ import annotations

from typing import Literal

import anyio
import httpx
from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service_a.b_client import headers_for_b
from service_a.balancer import PIN
from service_a.dependencies import ServiceBClient, SettingsDep
from service_a.forwarded import replace_forwarding
from service_a.http_api import ask_b_status
from service_a.models import ServiceBDown, ServiceBUp


class EachBUp(ServiceBUp):
    """One B that answered A's health check."""

    url: str


class EachBDown(ServiceBDown):
    """One B that did not answer A's health check, and why."""

    url: str


class HealthyBs(BaseModel):
    """A's `GET /status` while at least one of its Bs answers."""

    status: Literal["ok"]
    service_b: ServiceBUp
    service_bs: list[EachBUp | EachBDown]


class DegradedBs(BaseModel):
    """A's `GET /status` while none of its Bs answers."""

    status: Literal["degraded"]
    service_b: ServiceBDown
    service_bs: list[EachBUp | EachBDown]


router = APIRouter()


@router.get(
    "/status",
    response_model=HealthyBs,
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": DegradedBs}},
)
async def get_status(
    request: Request, client: ServiceBClient, settings: SettingsDep
) -> HealthyBs | JSONResponse:
    """Report whether each B answers its own `GET /status`, and how fast."""
    urls = settings.service_b_urls
    reports: list[EachBUp | EachBDown | None] = [None] * len(urls)
    headers = replace_forwarding(headers_for_b(request), request.scope)

    async def ask(index: int) -> None:
        reports[index] = await _ask(client, urls[index], headers, settings.status_timeout)

    async with anyio.create_task_group() as group:
        for index in range(len(urls)):
            group.start_soon(ask, index)
    each = [report for report in reports if report is not None]
    up = [report for report in each if isinstance(report, EachBUp)]
    if up:
        first = up[0]
        return HealthyBs(
            status="ok",
            service_b=ServiceBUp(status="ok", latency_ms=first.latency_ms),
            service_bs=each,
        )
    down = each[0]
    assert isinstance(down, EachBDown)  # noqa: S101 - none is up
    degraded = DegradedBs(
        status="degraded",
        service_b=ServiceBDown(status="unavailable", detail=down.detail),
        service_bs=each,
    )
    return JSONResponse(
        degraded.model_dump(mode="json"), status_code=status.HTTP_503_SERVICE_UNAVAILABLE
    )


async def _ask(
    client: httpx.AsyncClient, url: str, headers: list[tuple[bytes, bytes]], seconds: float
) -> EachBUp | EachBDown:
    report = await ask_b_status(client, headers, seconds, extensions={PIN: url})
    if isinstance(report, ServiceBUp):
        return EachBUp(url=url, **report.model_dump())
    return EachBDown(url=url, **report.model_dump())
