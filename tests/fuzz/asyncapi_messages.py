"""B's WebSocket channels as the AsyncAPI document describes them: messages and close codes."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from tests.contracts.asyncapi_validation import resolve
from tests.contracts.static_check import ASYNCAPI


def inline(node: Any, document: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Replace every local `$ref` in `node` by what it points at (none here is recursive)."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise ValueError(f"recursive $ref {ref}")
            target = inline(copy.deepcopy(resolve(document, ref)), document, (*seen, ref))
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return {**target, **inline(rest, document, seen)}
        return {key: inline(value, document, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [inline(value, document, seen) for value in node]
    return node


@dataclass(frozen=True)
class Message:
    """One message of a channel: its content type and its payload's schema, refs inlined."""

    content_type: str
    schema: dict[str, Any]

    def accepts(self, text: str) -> bool:
        """Tell whether the text frame `text` is this message."""
        if self.content_type == "application/json":
            try:
                value: Any = json.loads(text)
            except ValueError:
                return False
        else:
            value = text
        return Draft202012Validator(self.schema).is_valid(value)


@dataclass(frozen=True)
class Channel:
    """A WebSocket endpoint of B: what it receives, what it sends, how it closes."""

    address: str
    received: list[Message] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    close_codes: frozenset[int] = frozenset()
    query: dict[str, Any] = field(default_factory=dict)

    def is_sent(self, text: str) -> bool:
        """Tell whether B may send the text frame `text` on this channel."""
        return any(message.accepts(text) for message in self.sent)


@cache
def channels() -> dict[str, Channel]:
    """Give B's channels by address, read from contracts/service_b.asyncapi.json."""
    document = json.loads(ASYNCAPI.read_text())
    default = document.get("defaultContentType", "application/json")

    def message(ref: str) -> Message:
        found = resolve(document, ref)
        return Message(found.get("contentType", default), inline(found["payload"], document))

    by_name: dict[str, dict[str, list[Message]]] = {
        name: {"received": [], "sent": []} for name in document["channels"]
    }
    for operation in document["operations"].values():
        name = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        direction = "received" if operation["action"] == "receive" else "sent"
        by_name[name][direction] += [message(m["$ref"]) for m in operation["messages"]]
        by_name[name]["sent"] += [
            message(m["$ref"]) for m in operation.get("reply", {}).get("messages", [])
        ]
    result = {}
    for name, channel in document["channels"].items():
        query = channel.get("bindings", {}).get("ws", {}).get("query", {}).get("properties", {})
        result[channel["address"]] = Channel(
            channel["address"],
            by_name[name]["received"],
            by_name[name]["sent"],
            frozenset(close["code"] for close in channel["x-close-codes"]),
            query,
        )
    return result
