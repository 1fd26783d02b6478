"""The compatibility gate: B's contract at a base revision against B's contract now.

    python -m tests.contracts.compat [--base REF]

It reads B's OpenAPI and AsyncAPI documents as committed at `REF` (default `HEAD`: the
last agreed contract) and as B's code generates them now, and classifies each difference
by the rules oasdiff publishes for OpenAPI, mirrored for AsyncAPI:

- a request (what B receives: parameters, bodies, the messages a channel receives) may
  only widen: a narrowed constraint (a lower maximum, a higher minimum, a shorter
  maxLength, a new or changed pattern, an enum value removed), a new required field or
  parameter, a changed type are breaking;
- a response (what B sends: response bodies, the messages a channel sends and its
  replies) may only narrow: a removed field, a field no longer required, a changed type
  or constant, a new enum value are breaking; a new field is compatible;
- a removed operation, response status, channel, message or close code (or a close
  code whose meaning changed) is breaking.

Then each breaking difference is checked against what A uses: A's pact interactions, the
operations A forwards (its own OpenAPI) and the channels A relays (A passes them through
unchanged, so all they carry is A's callers' contract). One that hits a use fails the
gate, naming the use; one that hits nothing A uses is a warning. Independently of the
base, what A accepts from its callers on a forwarded operation must stay inside what B
accepts now (a name A takes up to 200 characters must not be refused by B at 50).

The schema rules cover the keywords B's documents use (type, const, enum, properties,
required, items, the numeric and length bounds, pattern, anyOf). A use is an operation
or a channel; a field of an answer or of a message is not used when A's pact matches it
by type only and the change keeps its type (B rewording a text A matches by type).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).parents[2]
OPENAPI_PATH = "contracts/service_b.openapi.json"
ASYNCAPI_PATH = "contracts/service_b.asyncapi.json"
PACT_PATH = ROOT / "contracts" / "pacts" / "service-a-service-b.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# A's own operations that forward to another path of B's.
FORWARDED_AS = {("GET", "/a/call_b"): ("GET", "/b/")}

Direction = Literal["request", "response"]
Document = Mapping[str, Any]


@dataclass(frozen=True)
class Difference:
    """One difference between two contracts, or between A's promise and B's contract."""

    where: str  # "GET /items/{item_id}" or "channel /ws/stream"
    field: str  # "query limit", "response 200 body .name", "message update .timestamp"
    change: str
    breaking: bool


@dataclass(frozen=True)
class Finding:
    """A breaking difference, and what of A's it hits (none: a warning)."""

    difference: Difference
    uses: tuple[str, ...]

    @property
    def fails(self) -> bool:
        """Tell whether the finding fails the gate: it is breaking and A uses what it hits."""
        return self.difference.breaking and bool(self.uses)


def _resolve(document: Document, schema: Any) -> Any:
    seen = 0
    while isinstance(schema, Mapping) and "$ref" in schema and seen < 20:
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    found = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    for option in schema.get("anyOf", []):
        if isinstance(option, Mapping) and "type" in option:
            found.add(option["type"])
    return found


# Bound keyword: (is it an upper bound, reading).
BOUNDS = {
    "maximum": True,
    "exclusiveMaximum": True,
    "maxLength": True,
    "maxItems": True,
    "minimum": False,
    "exclusiveMinimum": False,
    "minLength": False,
    "minItems": False,
}


def schema_differences(  # noqa: C901, PLR0912, PLR0913, PLR0917 - one rule per keyword; two schemas, each in its document
    old_doc: Document,
    old: Any,
    new_doc: Document,
    new: Any,
    direction: Direction,
    at: str = "",
) -> Iterator[tuple[str, str, bool]]:
    """Give (field, change, breaking) for each difference from schema `old` to `new`."""
    old, new = _resolve(old_doc, old), _resolve(new_doc, new)
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return
    where = at or "."
    request = direction == "request"
    old_types, new_types = _types(old), _types(new)
    if old_types and new_types != old_types:
        # A request may take more types than before, a response fewer.
        kept = old_types <= new_types if request else new_types <= old_types
        yield where, f"type {sorted(old_types)} became {sorted(new_types)}", not kept
    if "const" in old and old.get("const") != new.get("const"):
        yield where, f"constant {old['const']!r} became {new.get('const')!r}", True
    if "enum" in old or "enum" in new:
        was = {repr(value) for value in old.get("enum", [])}
        now = {repr(value) for value in new.get("enum", [])}
        if was - now and "enum" in new:
            yield where, f"enum lost {sorted(was - now)}", request
        if now - was and "enum" in old:
            yield where, f"enum gained {sorted(now - was)}", not request
    for keyword, upper in BOUNDS.items():
        before, after = old.get(keyword), new.get(keyword)
        if before == after:
            continue
        if after is None:
            narrowed = False
        elif before is None:
            narrowed = True
        else:
            narrowed = after < before if upper else after > before
        change = f"{keyword} {before} became {after}"
        yield where, change, narrowed if request else not narrowed and after is not None
    if old.get("pattern") != new.get("pattern") and new.get("pattern") is not None:
        yield where, f"pattern {old.get('pattern')!r} became {new['pattern']!r}", request
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name in sorted(old_props.keys() - new_props.keys()):
        yield f"{at}.{name}", "removed", not request
    for name in sorted(new_props.keys() - old_props.keys()):
        required = name in new_required
        yield f"{at}.{name}", "added" + (" (required)" if required else ""), request and required
    for name in sorted(old_props.keys() & new_props.keys()):
        if name in old_required and name not in new_required and not request:
            yield f"{at}.{name}", "no longer required", True
        if name in new_required and name not in old_required and request:
            yield f"{at}.{name}", "now required", True
        yield from schema_differences(
            old_doc, old_props[name], new_doc, new_props[name], direction, f"{at}.{name}"
        )
    if "items" in old and "items" in new:
        yield from schema_differences(
            old_doc, old["items"], new_doc, new["items"], direction, f"{at}[]"
        )


def _operations(document: Document) -> dict[tuple[str, str], Any]:
    return {
        (method.upper(), path): operation
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in METHODS
    }


def _body_schema(part: Mapping[str, Any]) -> Any:
    return part.get("content", {}).get("application/json", {}).get("schema")


def openapi_differences(old: Document, new: Document) -> Iterator[Difference]:
    """Give every difference from B's OpenAPI document `old` to `new`."""
    old_ops, new_ops = _operations(old), _operations(new)
    for key in sorted(old_ops.keys() - new_ops.keys()):
        yield Difference(" ".join(key), "operation", "removed", breaking=True)
    for key in sorted(new_ops.keys() - old_ops.keys()):
        yield Difference(" ".join(key), "operation", "added", breaking=False)
    for key in sorted(old_ops.keys() & new_ops.keys()):
        where, before, after = " ".join(key), old_ops[key], new_ops[key]
        yield from _parameter_differences(where, old, before, new, after)
        old_body = _body_schema(before.get("requestBody", {}))
        new_body = _body_schema(after.get("requestBody", {}))
        if old_body is not None and new_body is not None:
            for field, change, breaking in schema_differences(
                old, old_body, new, new_body, "request"
            ):
                yield Difference(where, f"request body {field}", change, breaking)
        old_answers, new_answers = before.get("responses", {}), after.get("responses", {})
        for code in sorted(old_answers.keys() - new_answers.keys()):
            yield Difference(where, f"response {code}", "removed", breaking=True)
        for code in sorted(old_answers.keys() & new_answers.keys()):
            old_schema, new_schema = (
                _body_schema(old_answers[code]),
                _body_schema(new_answers[code]),
            )
            if old_schema is None or new_schema is None:
                continue
            for field, change, breaking in schema_differences(
                old, old_schema, new, new_schema, "response"
            ):
                yield Difference(where, f"response {code} body {field}", change, breaking)


def _parameter_differences(
    where: str, old: Document, before: Any, new: Document, after: Any
) -> Iterator[Difference]:
    old_params = {
        (p["in"], p["name"]): p
        for p in (_resolve(old, ref) for ref in before.get("parameters", []))
    }
    new_params = {
        (p["in"], p["name"]): p for p in (_resolve(new, ref) for ref in after.get("parameters", []))
    }
    for place, name in sorted(new_params.keys() - old_params.keys()):
        required = new_params[place, name].get("required", False)
        yield Difference(
            where, f"{place} {name}", "added" + (" (required)" if required else ""), required
        )
    for place, name in sorted(old_params.keys() - new_params.keys()):
        yield Difference(where, f"{place} {name}", "removed", breaking=False)
    for key in sorted(old_params.keys() & new_params.keys()):
        place, name = key
        if new_params[key].get("required") and not old_params[key].get("required"):
            yield Difference(where, f"{place} {name}", "now required", breaking=True)
        for field, change, breaking in schema_differences(
            old, old_params[key].get("schema"), new, new_params[key].get("schema"), "request"
        ):
            shown = f"{place} {name}" + ("" if field == "." else f" {field}")
            yield Difference(where, shown, change, breaking)


def _channel_messages(document: Document, channel: str) -> dict[str, Direction]:
    """Give each message of a channel, and whether B receives it (request) or sends it."""
    roles: dict[str, Direction] = {}
    for operation in document.get("operations", {}).values():
        if operation["channel"]["$ref"] != f"#/channels/{channel}":
            continue
        role: Direction = "response" if operation["action"] == "send" else "request"
        for ref in operation.get("messages", []):
            roles[ref["$ref"].rsplit("/", 1)[-1]] = role
        for ref in operation.get("reply", {}).get("messages", []):
            roles[ref["$ref"].rsplit("/", 1)[-1]] = "response"
    return roles


def _close_differences(where: str, before: Any, after: Any) -> Iterator[Difference]:
    """Give the changes to a channel's close codes: a removed or changed one is breaking."""
    old_closes = {close["code"]: close.get("reason") for close in before.get("x-close-codes", [])}
    new_closes = {close["code"]: close.get("reason") for close in after.get("x-close-codes", [])}
    for code in sorted(old_closes.keys() - new_closes.keys()):
        yield Difference(where, f"close {code}", f"removed ({old_closes[code]})", breaking=True)
    for code in sorted(new_closes.keys() - old_closes.keys()):
        yield Difference(where, f"close {code}", f"added ({new_closes[code]})", breaking=False)
    for code in sorted(old_closes.keys() & new_closes.keys()):
        if old_closes[code] != new_closes[code]:
            # The reason documents when B closes so; the code on the wire is unchanged.
            change = f"described as {new_closes[code]!r}, was {old_closes[code]!r}"
            yield Difference(where, f"close {code}", change, breaking=False)
    # `x-reasons` are the reasons on the wire, which a client may tell apart: one removed
    # (or reworded) is breaking, a new one is not.
    old_reasons, new_reasons = _wire_reasons(before), _wire_reasons(after)
    for code, reason in sorted(old_reasons - new_reasons):
        yield Difference(where, f"close {code}", f"reason {reason!r} removed", breaking=True)
    for code, reason in sorted(new_reasons - old_reasons):
        yield Difference(where, f"close {code}", f"reason {reason!r} added", breaking=False)


def _wire_reasons(channel: Any) -> set[tuple[int, str]]:
    return {
        (close["code"], reason)
        for close in channel.get("x-close-codes", [])
        for reason in close.get("x-reasons", [])
    }


def _query(channel: Any) -> Any:
    return channel.get("bindings", {}).get("ws", {}).get("query")


def _query_differences(
    old: Document, new: Document, where: str, before: Any, after: Any
) -> Iterator[Difference]:
    """Give the changes to a channel's handshake query, a request's parameters.

    A parameter B no longer reads is breaking here, unlike oasdiff's warning for an
    OpenAPI one: a client (A's callers, through A) still sends it, and B's default then
    answers in its place, valid-looking (`/ws/stream?interval=` renamed).
    """
    was, now = _query(before), _query(after)
    if not isinstance(was, Mapping) or not isinstance(now, Mapping):
        return
    for field, change, breaking in schema_differences(old, was, new, now, "request"):
        removed = change == "removed" and field.count(".") == 1
        shown = f"query {field.removeprefix('.')}".rstrip(" .")
        yield Difference(where, shown, change, breaking or removed)


def asyncapi_differences(old: Document, new: Document) -> Iterator[Difference]:
    """Give every difference from B's AsyncAPI document `old` to `new`."""
    old_channels, new_channels = old.get("channels", {}), new.get("channels", {})
    for name in sorted(old_channels.keys() - new_channels.keys()):
        yield Difference(f"channel {old_channels[name]['address']}", "channel", "removed", True)
    for name in sorted(old_channels.keys() & new_channels.keys()):
        before, after = old_channels[name], new_channels[name]
        where = f"channel {after['address']}"
        if before["address"] != after["address"]:
            yield Difference(
                f"channel {before['address']}", "address", f"became {after['address']}", True
            )
        yield from _close_differences(where, before, after)
        yield from _query_differences(old, new, where, before, after)
        old_messages, new_messages = before.get("messages", {}), after.get("messages", {})
        for message in sorted(old_messages.keys() - new_messages.keys()):
            yield Difference(where, f"message {message}", "removed", True)
        roles = _channel_messages(new, name)
        for message in sorted(old_messages.keys() & new_messages.keys()):
            for field, change, breaking in schema_differences(
                old,
                old_messages[message].get("payload"),
                new,
                new_messages[message].get("payload"),
                roles.get(message, "response"),
            ):
                yield Difference(where, f"message {message} {field}", change, breaking)


def _field_schema(document: Document, schema: Any, field: str) -> Any:
    """Give the schema at `field` (`.a.b`, `[]` for items) under `schema`, or None."""
    schema = _resolve(document, schema)
    for part in field.replace("[]", ".[]").strip(".").split("."):
        if not part:
            continue
        if not isinstance(schema, Mapping):
            return None
        schema = _resolve(
            document,
            schema.get("items") if part == "[]" else schema.get("properties", {}).get(part),
        )
    return schema


def accepts(a_doc: Document, a_schema: Any, b_doc: Document, b_schema: Any) -> bool:
    """Tell whether every value `b_schema` allows is one `a_schema` allows.

    It reads the keywords A's models use: type, const, enum, pattern.
    """
    a, b = _resolve(a_doc, a_schema), _resolve(b_doc, b_schema)
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return a is None or a == {}
    if "const" in a:
        return b.get("const") == a["const"] or b.get("enum") == [a["const"]]
    if "enum" in a:
        allowed = [b["const"]] if "const" in b else b.get("enum")
        return allowed is not None and all(value in a["enum"] for value in allowed)
    a_types, b_types = _types(a), _types(b)
    if (
        a_types
        and not b_types <= a_types
        and not (b_types and b_types <= a_types | {"integer"} and "number" in a_types)
    ):
        return False
    if "pattern" in a:
        return b.get("pattern") == a["pattern"] or (
            "const" in b and re.search(a["pattern"], str(b["const"])) is not None
        )
    return True


def _pact_cares(interaction: Mapping[str, Any], field: str, change: str) -> bool:
    """Tell whether a pact interaction's answer depends on `field` as `change` alters it.

    A field its example leaves out is not used; one matched by type (a type, integer or
    number matcher) sees only a change of type or its removal, not a new wording or bound.
    """
    body = interaction.get("response", {}).get("body", {}).get("content")
    rules = interaction.get("response", {}).get("matchingRules", {}).get("body", {})
    return _example_cares(body, rules, field, change)


def _sent(interaction: Mapping[str, Any]) -> tuple[Any, Mapping[str, Any]]:
    """Give what B sends in a message interaction (the message, or the reply) and its rules."""
    sent = interaction["contents"] if "contents" in interaction else interaction["response"][0]
    content = sent.get("content")
    if isinstance(content, str) and "json" in sent.get("contentType", ""):
        content = json.loads(content)
    rules: Mapping[str, Any] = sent.get("matchingRules", {}).get("body", {})
    if "contents" in interaction:
        rules = interaction.get("matchingRules", {}).get("body", {})
    return content, rules


def _example_has(body: Any, field: str) -> bool:
    value = body
    for part in field.replace("[]", ".[]").strip(".").split("."):
        if not part:
            continue
        if part == "[]":
            if not isinstance(value, list) or not value:
                return False
            value = value[0]
        elif isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return False
    return True


def _example_cares(body: Any, rules: Mapping[str, Any], field: str, change: str) -> bool:
    """Tell whether an example with its rules depends on `field` as `change` alters it."""
    value: Any = body
    json_path = "$"
    for part in field.replace("[]", ".[]").strip(".").split("."):
        if not part:
            continue
        if part == "[]":
            if not isinstance(value, list) or not value:
                return False
            value, json_path = value[0], json_path + "[*]"
        else:
            if not isinstance(value, Mapping) or part not in value:
                return False
            value, json_path = value[part], f"{json_path}.{part}"
        matchers = rules.get(json_path, {}).get("matchers", [])
        if any(m.get("match") in BY_TYPE for m in matchers):
            # A type matcher holds for what is under it too, as in Pact.
            return change.startswith(TYPE_CHANGES)
    return True


@dataclass(frozen=True)
class Uses:
    """What A uses of B: pact interactions, forwarded operations, relayed channels."""

    interactions: Mapping[str, Mapping[str, Any]]  # HTTP interactions by description
    messages: Mapping[str, tuple[str, str | None]]  # description to channel and close code
    sent: Mapping[str, tuple[str, Any, Mapping[str, Any]]]  # description to channel, example, rules
    forwarded: Mapping[tuple[str, str], tuple[str, str]]  # B's operation to A's
    relayed: frozenset[str]
    a_openapi: Document

    def of(self, difference: Difference, b_openapi: Document) -> tuple[str, ...]:
        """Give what of A's the difference hits (B's document as it is now)."""
        if difference.where.startswith("channel "):
            address = difference.where.removeprefix("channel ")
            hits = [f"relayed channel {address}"] if address in self.relayed else []
            if self._matched_by_type_only(address, difference):
                hits = []
            closing = CLOSE_FIELD.match(difference.field)
            if closing is not None:
                hits += [
                    f"interaction {d!r}"
                    for d, (channel, code) in self.messages.items()
                    if channel == address and code == closing.group(1)
                ]
            return tuple(hits)
        method, template = difference.where.split(" ", 1)
        answer = RESPONSE_FIELD.match(difference.field)
        hits = []
        for description, interaction in self.interactions.items():
            request = interaction["request"]
            if request["method"] != method or not _path_matches(template, request["path"]):
                continue
            if answer is not None:
                code, field = answer.group(1), answer.group(2)
                cares = _pact_cares(interaction, field, difference.change)
                if str(interaction["response"]["status"]) != code or not cares:
                    continue
            hits.append(f"interaction {description!r}")
        if (method, template) in self.forwarded:
            a_key = self.forwarded[method, template]
            if answer is None or not self._a_accepts_now(
                a_key, (method, template), answer, b_openapi
            ):
                hits.append("A's " + " ".join(a_key))
        return tuple(hits)

    def _matched_by_type_only(self, address: str, difference: Difference) -> bool:
        """Tell whether A's pact matches a message field by type only, and the change keeps it.

        A relays everything on the channel, but A's pact says which fields A's callers may
        rely on as they are: a text matched by type may take other words.
        """
        field = MESSAGE_FIELD.match(difference.field)
        if field is None or field.group(2) == "." or difference.change.startswith(TYPE_CHANGES):
            return False
        having = [
            (body, rules)
            for channel, body, rules in self.sent.values()
            if channel == address and _example_has(body, field.group(2))
        ]
        return bool(having) and not any(
            _example_cares(body, rules, field.group(2), difference.change) for body, rules in having
        )

    def _a_accepts_now(
        self,
        a_key: tuple[str, str],
        b_key: tuple[str, str],
        answer: re.Match[str],
        b_openapi: Document,
    ) -> bool:
        """Tell whether A's model of the answer still accepts B's answer at the field."""
        code, field = answer.group(1), answer.group(2)
        a_answer = _operations(self.a_openapi)[a_key].get("responses", {}).get(code)
        b_answer = _operations(b_openapi)[b_key].get("responses", {}).get(code)
        if a_answer is None or b_answer is None:
            return False
        a_field = _field_schema(self.a_openapi, _body_schema(a_answer), field)
        if a_field is None:
            return True  # A's model does not name the field: A does not use it
        b_field = _field_schema(b_openapi, _body_schema(b_answer), field)
        parent = field.rsplit(".", 1)[0] if field.count(".") > 1 else ""
        a_parent = _field_schema(self.a_openapi, _body_schema(a_answer), parent) or {}
        name = field.rsplit(".", 1)[-1]
        if b_field is None:
            return name not in a_parent.get("required", [])
        return accepts(self.a_openapi, a_field, b_openapi, b_field)


BY_TYPE = frozenset({"type", "integer", "decimal", "number"})
CLOSE_FIELD = re.compile(r"^close (\d+)$")
MESSAGE_FIELD = re.compile(r"^message (\S+) (\S+)$")
RESPONSE_FIELD = re.compile(r"^response (\d+) body (\S+)$")
# Changes a matcher by type still sees: the value's type, or the value gone.
TYPE_CHANGES = ("type ", "removed", "no longer required")


def _path_matches(template: str, path: str) -> bool:
    parts, actual = template.strip("/").split("/"), path.strip("/").split("/")
    return len(parts) == len(actual) and all(
        t == a or (t.startswith("{") and t.endswith("}"))
        for t, a in zip(parts, actual, strict=True)
    )


def a_uses(
    pact: Document, a_openapi: Document, b_openapi: Document, relayed: frozenset[str]
) -> Uses:
    """Gather what A uses of B from its pact, its OpenAPI and the channels it relays."""
    interactions: dict[str, Mapping[str, Any]] = {}
    messages: dict[str, tuple[str, str | None]] = {}
    sent: dict[str, tuple[str, Any, Mapping[str, Any]]] = {}
    for interaction in pact["interactions"]:
        if interaction["type"] == "Synchronous/HTTP":
            interactions[interaction["description"]] = interaction
        else:
            metadata = interaction.get("metadata") or interaction.get("request", {}).get(
                "metadata", {}
            )
            replies = [reply.get("metadata", {}) for reply in interaction.get("response", [])]
            close = next((r["closeCode"] for r in [metadata, *replies] if "closeCode" in r), None)
            messages[interaction["description"]] = (metadata.get("channel", ""), close)
            sent[interaction["description"]] = (metadata.get("channel", ""), *_sent(interaction))
    b_operations = _operations(b_openapi)
    forwarded = {}
    for key in _operations(a_openapi):
        target = FORWARDED_AS.get(key, key)
        if target in b_operations:
            forwarded[target] = key
    return Uses(interactions, messages, sent, forwarded, relayed, a_openapi)


def promises(a_openapi: Document, b_openapi: Document, uses: Uses) -> Iterator[Difference]:
    """Give where what A accepts from its callers is more than what B accepts now."""
    b_operations = _operations(b_openapi)
    for b_key, a_key in sorted(uses.forwarded.items()):
        a_op, b_op = _operations(a_openapi)[a_key], b_operations[b_key]
        where = " ".join(b_key)
        for difference in _parameter_differences(where, a_openapi, a_op, b_openapi, b_op):
            if difference.breaking and "added" not in difference.change:
                yield Difference(
                    where,
                    difference.field,
                    f"A's {' '.join(a_key)} accepts more: {difference.change}",
                    True,
                )
        a_body = _body_schema(a_op.get("requestBody", {}))
        b_body = _body_schema(b_op.get("requestBody", {}))
        if a_body is not None and b_body is not None:
            for field, change, breaking in schema_differences(
                a_openapi, a_body, b_openapi, b_body, "request"
            ):
                if breaking:
                    yield Difference(
                        where,
                        f"request body {field}",
                        f"A's {' '.join(a_key)} accepts more: {change}",
                        True,
                    )


def gate(  # noqa: PLR0913, PLR0917 - both contracts, both documents each, and A
    old_openapi: Document,
    new_openapi: Document,
    old_asyncapi: Document,
    new_asyncapi: Document,
    uses: Uses,
    a_openapi: Document,
) -> list[Finding]:
    """Give every difference that matters: breaking ones with what they hit, in order."""
    differences = [
        *openapi_differences(old_openapi, new_openapi),
        *asyncapi_differences(old_asyncapi, new_asyncapi),
    ]
    findings = [Finding(d, uses.of(d, new_openapi)) for d in differences]
    findings += [
        Finding(d, uses.of(d, new_openapi)) for d in promises(a_openapi, new_openapi, uses)
    ]
    return findings


def _at(ref: str, path: str) -> dict[str, Any]:
    shown = subprocess.run(
        ["git", "show", f"{ref}:{path}"],  # noqa: S607 - git as the developer runs it
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    document: dict[str, Any] = json.loads(shown.stdout)
    return document


def run_gate(base: str = "HEAD") -> list[Finding]:
    """Run the gate on B's contract at `base` against B's contract now."""
    from service_a import Settings as ASettings  # noqa: PLC0415 - the gate's view of A
    from service_a import create_app as create_a  # noqa: PLC0415
    from service_a.relay import RELAYED_PATHS  # noqa: PLC0415
    from service_b.asyncapi import asyncapi_document  # noqa: PLC0415
    from service_b.export_contracts import openapi_document  # noqa: PLC0415

    new_openapi, new_asyncapi = openapi_document(), asyncapi_document()
    a_openapi = create_a(ASettings()).openapi()
    pact = json.loads(PACT_PATH.read_text())
    uses = a_uses(pact, a_openapi, new_openapi, frozenset(RELAYED_PATHS))
    return gate(
        _at(base, OPENAPI_PATH),
        new_openapi,
        _at(base, ASYNCAPI_PATH),
        new_asyncapi,
        uses,
        a_openapi,
    )


def report(findings: list[Finding]) -> str:
    """Render the findings: failures, then warnings, then compatible changes."""
    lines = []
    for finding in findings:
        d = finding.difference
        if finding.fails:
            lines.append(
                f"FAILED   {d.where}: {d.field}: {d.change} (used by {', '.join(finding.uses)})"
            )
    for finding in findings:
        d = finding.difference
        if d.breaking and not finding.fails:
            lines.append(
                f"warning  {d.where}: {d.field}: {d.change} "
                "(nothing of A's relies on it: unused, or matched by type only)"
            )
    for finding in findings:
        d = finding.difference
        if not d.breaking:
            lines.append(f"ok       {d.where}: {d.field}: {d.change} (compatible)")
    return "\n".join(lines) or "no difference"


def main(argv: list[str] | None = None) -> int:
    """Run the gate; exit 1 if a breaking difference hits something A uses."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.contracts.compat", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--base", default="HEAD", help="the git revision of the agreed contract (default HEAD)"
    )
    options = parser.parse_args(argv)
    findings = run_gate(options.base)
    print(report(findings))  # noqa: T201 - this is a command-line report
    return 1 if any(finding.fails for finding in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
