"""What A expects of B's answers, and what A answers itself.

A declares these on its own: it knows B only by what arrives over the wire. The models of
B's answers ignore fields they do not name, so B may add optional fields without breaking A.
They are strict: A passes B's bytes on as they are, so a value of the wrong JSON type (a
string of digits for an integer, 0 or 1 for a boolean) must be refused, not converted.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SQLITE_MAX_INTEGER = 2**63 - 1

#: How every model of B's answers checks them: types as A's OpenAPI promises them, no coercion.
FROM_B = ConfigDict(strict=True)


class ItemIn(BaseModel):
    """The body of `POST /items` and `PUT /items/{item_id}`, checked before B is called."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, max_length=200)]
    is_offer: bool | None = None


class Item(BaseModel):
    """An item as B gives it; `is_offer` is there only when it is set."""

    model_config = FROM_B

    item_id: int
    name: str
    is_offer: bool | None = None


class ItemCreated(BaseModel):
    """B's answer to a create."""

    model_config = FROM_B

    message: str
    item_data: Item


class Detail(BaseModel):
    """An error answer with a message."""

    model_config = FROM_B

    detail: str


class ValidationError(BaseModel):
    """One thing wrong with a request, as FastAPI reports it."""

    model_config = FROM_B

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrors(BaseModel):
    """An error answer listing what was wrong with the request (FastAPI's 422 shape).

    A passes B's 422 on, and A's own OpenAPI promises its callers FastAPI's shape: so A
    needs each error's `loc`, `msg` and `type` from B, and nothing more.
    """

    model_config = FROM_B

    detail: list[ValidationError]


class BStatus(BaseModel):
    """B's answer to `GET /status`."""

    model_config = FROM_B

    status: Literal["ok"]


class BAnswer(BaseModel):
    """B's answer to `GET /b/`."""

    model_config = FROM_B

    b: str


class AAnswer(BaseModel):
    """A's answer to `GET /a/`."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    a: Literal["a"] = "a"


class ServiceBUp(BaseModel):
    """How B answered A's health check."""

    status: Literal["ok"]
    latency_ms: float


class ServiceBDown(BaseModel):
    """Why B did not answer A's health check."""

    status: Literal["unavailable"]
    detail: str


class Healthy(BaseModel):
    """A's `GET /status` while B answers."""

    status: Literal["ok"]
    service_b: ServiceBUp


class Degraded(BaseModel):
    """A's `GET /status` while B does not answer."""

    status: Literal["degraded"]
    service_b: ServiceBDown


ITEM = TypeAdapter(Item)
ITEM_LIST = TypeAdapter(list[Item])
ITEM_CREATED = TypeAdapter(ItemCreated)
DETAIL = TypeAdapter(Detail)
VALIDATION_ERRORS = TypeAdapter(ValidationErrors)
B_ANSWER = TypeAdapter(BAnswer)
B_STATUS = TypeAdapter(BStatus)
