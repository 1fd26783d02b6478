"""B's WebSocket API as an AsyncAPI 3.0 document, built from the models the endpoints use."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from service_b.models import (
    ErrorEvent,
    ItemsPush,
    JsonReceived,
    LoginFailed,
    LoginRequest,
    LoginSucceeded,
    LoginTooFrequent,
    LoginWrongPassphrase,
    StreamUpdate,
    Subscribed,
    SubscribeRequest,
)
from service_b.version import VERSION
from service_b.websocket_errors import (
    InvalidPayload,
    MessageTooBig,
    PolicyViolation,
    ServiceBWebSocketError,
    TryAgainLater,
    UnsupportedData,
)
from service_b.ws_api import LOGIN_REFUSALS

_REF = "#/components/schemas/{model}"

# What B receives is read in validation mode; what it sends, in serialization mode.
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (LoginRequest, "validation"),
    (SubscribeRequest, "validation"),
    (StreamUpdate, "serialization"),
    (JsonReceived, "serialization"),
    (LoginSucceeded, "serialization"),
    (LoginFailed, "serialization"),
    (LoginTooFrequent, "serialization"),
    (LoginWrongPassphrase, "serialization"),
    (Subscribed, "serialization"),
    (ErrorEvent, "serialization"),
    (ItemsPush, "serialization"),
]

_TOO_BIG = {"code": MessageTooBig.close_code, "reason": "a message over the size limit"}
_NOT_JSON = "text that is not JSON, or JSON with a number beyond a double's range"
_BINARY = {"code": UnsupportedData.close_code, "reason": "a binary frame"}
#: Broadcast and items subscribers: each has its own queue, and only the one behind is closed.
_FELL_BEHIND = {
    "code": TryAgainLater.close_code,
    "reason": (
        "a client that fell behind: more than SERVICE_B_WS_QUEUE_SIZE messages or "
        "SERVICE_B_WS_QUEUE_BYTES bytes queued for it (reason `more than N messages queued "
        "for this client; reconnect` or `more than N bytes queued for this client; "
        "reconnect`), or a message it did not read within SERVICE_B_WS_SEND_TIMEOUT_SECONDS "
        "of being queued, whatever its size: B follows what it sends with a ping, and a "
        "client that has not answered it in that time has not read what came before "
        "(`the client is not reading; reconnect`)"
    ),
}

#: Every other channel: a client that stops reading is closed too (`ws_protocol`, `Peer`).
_NOT_READING = {
    "code": TryAgainLater.close_code,
    "reason": (
        "a client that did not read a message within SERVICE_B_WS_SEND_TIMEOUT_SECONDS of its "
        "sending, whatever its size: B follows what it sends with a ping, and a client that "
        "has not answered it in that time has not read what came before (`the client is not "
        "reading; reconnect`)"
    ),
}


def _text(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": "text/plain", "summary": summary, "payload": schema}


def _json(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"contentType": "application/json", "summary": summary, "payload": schema}


def _operation(
    action: str, channel: str, messages: list[str], summary: str, reply: list[str] | None = None
) -> dict[str, Any]:
    def refs(names: list[str]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names]

    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": refs(messages),
    }
    if reply is not None:
        operation["reply"] = {"channel": {"$ref": f"#/channels/{channel}"}, "messages": refs(reply)}
    return operation


def _login_reasons(error: type[ServiceBWebSocketError]) -> list[str]:
    """Give the close reasons of the logins refused with `error`, as `ws_api` sends them."""
    return list(dict.fromkeys(r for _, e, r in LOGIN_REFUSALS.values() if e is error))


def _close_codes(*codes: dict[str, Any]) -> str:
    return "Closes with: " + "; ".join(f"{c['code']} on {c['reason']}" for c in codes) + "."


def asyncapi_document() -> dict[str, Any]:
    """Give B's AsyncAPI 3.0 document: channels, messages both ways, and close codes."""
    schemas, defs = models_json_schema(_MODELS, ref_template=_REF)

    def payload(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return schemas[model, mode]

    received: JsonSchemaMode = "validation"
    sent: JsonSchemaMode = "serialization"
    channels: dict[str, Any] = {
        "echo": {
            "address": "/ws/echo",
            "title": "Echo",
            "messages": {
                "text": _text("Any text", {"type": "string"}),
                "echo": _text("The text, after `Echo: `", {"type": "string", "pattern": "^Echo: "}),
            },
            "x-close-codes": [_BINARY, _TOO_BIG, _NOT_READING],
        },
        "stream": {
            "address": "/ws/stream",
            "title": "Periodic updates",
            "messages": {"update": _json("One update", payload(StreamUpdate, sent))},
            "bindings": {
                "ws": {
                    "method": "GET",
                    "query": {
                        "type": "object",
                        "properties": {
                            "interval": {
                                "type": "number",
                                "minimum": 0.01,
                                "maximum": 60,
                                "default": 1.0,
                                "description": "Seconds between updates.",
                            }
                        },
                    },
                    "bindingVersion": "0.1.0",
                }
            },
            "x-close-codes": [
                {"code": PolicyViolation.close_code, "reason": "an interval that is not 0.01..60"},
                _TOO_BIG,
                _NOT_READING,
            ],
        },
        "json": {
            "address": "/ws/json",
            "title": "JSON echo",
            "messages": {
                "value": _json(
                    "Any JSON text (NaN and Infinity are not JSON; a number must fit a double "
                    "or, for an integer, have at most 4300 digits)",
                    {},
                ),
                "received": _json("The parsed value", payload(JsonReceived, sent)),
            },
            "x-close-codes": [
                _BINARY,
                {"code": InvalidPayload.close_code, "reason": _NOT_JSON},
                _TOO_BIG,
                _NOT_READING,
            ],
        },
        "broadcast": {
            "address": "/ws/broadcast",
            "title": "Broadcast",
            "messages": {
                "text": _text("Any text, for every other client", {"type": "string"}),
                "relayed": _text(
                    "Another client's text, after `New message: `",
                    {"type": "string", "pattern": "^New message: "},
                ),
            },
            "x-close-codes": [
                _BINARY,
                _TOO_BIG,
                _FELL_BEHIND,
            ],
        },
        "private": {
            "address": "/ws/v5/private",
            "title": "Private items channel",
            "description": (
                "Log in first (an OKX-style signature: base64(HMAC-SHA256(secret, timestamp + "
                '"GET" + "/users/self/verify"))), then subscribe to the items channel to be '
                'pushed every change to the items. The text "ping" is answered "pong". '
                "A login's timestamp is accepted from 30 s before B's clock to 5 s after it "
                "(SERVICE_B_LOGIN_EXPIRY_SECONDS, SERVICE_B_LOGIN_MAX_CLOCK_SKEW_SECONDS), "
                "once: its signature, used again on any connection, is refused. A key "
                "configured with a passphrase needs it (60024 otherwise). Failed logins are "
                "limited per client address and per API key (5 a second, bursts of 10 by "
                "default): an address over its allowance is answered 60014 without its login "
                "being checked, a key over it has its failures answered 60014; a correct "
                "login from an address within its allowance always succeeds."
            ),
            "messages": {
                "login": _json("The first message", payload(LoginRequest, received)),
                "subscribe": _json(
                    "A subscription, after login", payload(SubscribeRequest, received)
                ),
                "ping": _text("Keep-alive", {"type": "string", "const": "ping"}),
                "loginSucceeded": _json("A valid login", payload(LoginSucceeded, sent)),
                "loginFailed": _json(
                    "A wrong key, signature or timestamp, or a signature used already",
                    payload(LoginFailed, sent),
                ),
                "loginTooFrequent": _json(
                    "A login over the failed-login allowance, or beyond the replay cache",
                    payload(LoginTooFrequent, sent),
                ),
                "loginWrongPassphrase": _json(
                    "A right signature without its key's passphrase",
                    payload(LoginWrongPassphrase, sent),
                ),
                "subscribed": _json("A subscription taken", payload(Subscribed, sent)),
                "error": _json("A request B cannot serve", payload(ErrorEvent, sent)),
                "itemsPush": _json("A change to the items", payload(ItemsPush, sent)),
                "pong": _text("The answer to ping", {"type": "string", "const": "pong"}),
            },
            "x-close-codes": [
                _BINARY,
                {"code": InvalidPayload.close_code, "reason": _NOT_JSON},
                {
                    "code": PolicyViolation.close_code,
                    "reason": "a failed login, or a request before login",
                    "x-reasons": [*_login_reasons(PolicyViolation), "login required"],
                },
                _TOO_BIG,
                _FELL_BEHIND,
                {
                    "code": TryAgainLater.close_code,
                    "reason": "a login while the replay cache is full",
                    "x-reasons": _login_reasons(TryAgainLater),
                },
            ],
        },
    }
    for channel in channels.values():
        closes = _close_codes(*channel["x-close-codes"])
        channel["description"] = f"{channel.get('description', '')} {closes}".strip()

    operations = {
        "receiveEchoText": _operation(
            "receive", "echo", ["text"], "B answers each text", reply=["echo"]
        ),
        "sendStreamUpdate": _operation(
            "send", "stream", ["update"], "B sends an update every interval"
        ),
        "receiveJsonValue": _operation(
            "receive", "json", ["value"], "B answers each JSON text", reply=["received"]
        ),
        "receiveBroadcastText": _operation(
            "receive", "broadcast", ["text"], "B passes each text to every other client"
        ),
        "sendBroadcastText": _operation(
            "send", "broadcast", ["relayed"], "B sends other clients' texts"
        ),
        "receivePrivateLogin": _operation(
            "receive",
            "private",
            ["login"],
            "B checks the login",
            reply=[
                "loginSucceeded",
                "loginFailed",
                "loginTooFrequent",
                "loginWrongPassphrase",
                "error",
            ],
        ),
        "receivePrivateSubscribe": _operation(
            "receive",
            "private",
            ["subscribe"],
            "B subscribes the client",
            reply=["subscribed", "error"],
        ),
        "receivePrivatePing": _operation(
            "receive", "private", ["ping"], "Keep-alive", reply=["pong"]
        ),
        "sendPrivateItemsPush": _operation(
            "send", "private", ["itemsPush"], "B pushes each change to the items"
        ),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Service B WebSockets",
            "version": VERSION,
            "description": (
                "B's WebSocket endpoints. A handshake whose Origin is not allowed is refused "
                "with HTTP 403; every endpoint closes with 1009 on a message over the limit "
                "(SERVICE_B_WS_MAX_MESSAGE_BYTES, 1 MiB by default)."
            ),
        },
        "servers": {
            "local": {
                "host": "127.0.0.1:8000",
                "protocol": "ws",
                "description": "python -m service_b (wss with --ssl-certfile and --ssl-keyfile)",
            }
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": defs["$defs"]},
    }
