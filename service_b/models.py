"""The shapes of what B receives and answers, over HTTP and over WebSockets."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

ItemName = Annotated[str, Field(min_length=1, max_length=200)]


class ItemIn(BaseModel):
    """The body of `POST /items` and `PUT /items/{item_id}`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: ItemName
    is_offer: bool | None = None


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class Answer(BaseModel):
    """A message B sends: fields with a default are still always present, so required."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class Item(BaseModel):
    """A stored item; `is_offer` appears only when it is set."""

    item_id: int
    name: str
    # Documented as an optional boolean: B serialises items with `exclude_none`.
    is_offer: bool | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)

    def to_json(self) -> dict[str, Any]:
        """Give the item as B sends it: without `is_offer` when it is not set."""
        return self.model_dump(mode="json", exclude_none=True)


class ItemCreated(Answer):
    """The answer to `POST /items`."""

    message: Literal["Item created successfully"] = "Item created successfully"
    item_data: Item


class Detail(Answer):
    """An error answer."""

    detail: str


class RootMessage(Answer):
    """The answer to `GET /`."""

    message: Literal["Server is running"] = "Server is running"


class StoreStatus(Answer):
    """The item store in `GET /status`: its engine, and whether B reaches it."""

    kind: Literal["sqlite", "postgresql"]
    status: Literal["ok", "unavailable"]


class FanoutStatus(Answer):
    """The Redis fan-out in `GET /status` (only when B fans out through Redis)."""

    kind: Literal["redis"]
    status: Literal["ok", "unavailable"]


def _store_optional(schema: dict[str, Any]) -> None:
    # `store` was added after consumers wrote down `{"status": "ok"}`: it is always sent, but
    # optional in the schema, so an older consumer's expectation still fits it. `fanout` is
    # sent only by a B that fans out through Redis (SERVICE_B_REDIS_URL).
    optional = {"store", "fanout"}
    schema["required"] = [name for name in schema.get("required", []) if name not in optional]


class Status(Answer):
    """The answer to `GET /status`: 200 with `ok`, or 503 with `degraded` and what is down."""

    model_config = ConfigDict(
        json_schema_serialization_defaults_required=True, json_schema_extra=_store_optional
    )

    status: Literal["ok", "degraded"] = "ok"
    store: StoreStatus
    fanout: FanoutStatus | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)


class BAnswer(Answer):
    """The answer to `GET /b/`."""

    b: Literal["b"] = "b"


# WebSocket messages. Their JSON Schemas are what the AsyncAPI document publishes.

STREAM_TEXT: Final = "This is a periodic update from the server."


class StreamUpdate(Answer):
    """One periodic message of `/ws/stream`."""

    timestamp: Annotated[str, Field(json_schema_extra={"format": "date-time"})]
    message: Literal["This is a periodic update from the server."] = STREAM_TEXT


class JsonReceived(Answer):
    """The answer of `/ws/json` to a JSON text."""

    message: Literal["Received JSON data"] = "Received JSON data"
    data: Any


class LoginArgs(BaseModel):
    """The credentials of a login request."""

    model_config = ConfigDict(strict=True)

    api_key: str = Field(alias="apiKey")
    passphrase: str
    timestamp: str
    sign: str


class LoginRequest(BaseModel):
    """The first message on `/ws/v5/private`."""

    model_config = ConfigDict(strict=True)

    op: Literal["login"]
    args: Annotated[list[LoginArgs], Field(min_length=1, max_length=1)]


class ChannelArg(BaseModel):
    """A channel named by a subscribe or unsubscribe request."""

    model_config = ConfigDict(strict=True)

    channel: Literal["items"]


class SubscribeRequest(BaseModel):
    """A subscribe request on `/ws/v5/private`, after login."""

    model_config = ConfigDict(strict=True)

    op: Literal["subscribe"]
    args: Annotated[list[ChannelArg], Field(min_length=1)]


class LoginSucceeded(Answer):
    """The answer to a valid login."""

    event: Literal["login"] = "login"
    success: Literal[True] = True


class LoginFailed(Answer):
    """The answer to a failed login (a wrong key, signature or time, or a used signature)."""

    event: Literal["login"] = "login"
    success: Literal[False] = False
    message: Literal["Authentication failed"] = "Authentication failed"


class LoginTooFrequent(Answer):
    """OKX's 60014: a login from an address, or of a key, over its failed-login allowance.

    The connection then closes with 1008; or with 1013 when B holds as many signatures
    still in their window as it may (a login burst), and the client should try again.
    """

    event: Literal["error"] = "error"
    code: Literal["60014"] = "60014"
    msg: Literal["Requests too frequent"] = "Requests too frequent"


class LoginWrongPassphrase(Answer):
    """OKX's 60024: a login signed right, without its key's passphrase; then 1008."""

    event: Literal["error"] = "error"
    code: Literal["60024"] = "60024"
    msg: Literal["Wrong passphrase"] = "Wrong passphrase"


class Subscribed(Answer):
    """The acknowledgement of a subscribe request."""

    event: Literal["subscribe"] = "subscribe"
    arg: ChannelArg


class ErrorEvent(Answer):
    """The answer to a request B cannot serve; before login the connection then closes with 1008."""

    event: Literal["error"] = "error"
    code: str
    msg: str


class ItemsPush(Answer):
    """A change to B's items, pushed to every subscriber of the `items` channel."""

    arg: ChannelArg
    action: Literal["created", "updated", "deleted"]
    data: list[Item]
