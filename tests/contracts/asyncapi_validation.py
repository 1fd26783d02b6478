"""Check an AsyncAPI 3.0 document against the specification.

First against the specification's JSON Schema, then against the rules that schema cannot
express: every `$ref` resolves, and operations use their own channel's messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry

SPEC_SCHEMA = Path(__file__).parent / "asyncapi_spec" / "asyncapi-3.0.0.schema.json"
_COMPONENT_KEY = re.compile(r"^[a-zA-Z0-9.\-_]+$")


@cache
def specification() -> Draft7Validator:
    """Give a validator for the AsyncAPI 3.0.0 JSON Schema, which never reaches the network."""
    # An empty registry cannot fetch: a reference outside the file fails instead.
    return Draft7Validator(json.loads(SPEC_SCHEMA.read_text()), registry=Registry())


def _pointer(path: Any) -> str:
    return "/" + "/".join(str(part) for part in path)


def _all(error: ValidationError) -> Iterator[ValidationError]:
    yield error
    for sub in error.context or ():
        yield from _all(sub)


def _deepest(error: ValidationError) -> ValidationError:
    # Nearly every object is `oneOf: [Reference, the object]`: the useful error is the deepest
    # one that is not about the missing `$ref`.
    return max(
        _all(error),
        key=lambda e: (
            e.message != "'$ref' is a required property",
            len(e.absolute_path),
            not e.context,
        ),
    )


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Give one line per way `document` breaks the AsyncAPI 3.0.0 JSON Schema."""
    errors = sorted(specification().iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [f"{_pointer(e.absolute_path)}: {e.message}" for e in map(_deepest, errors)]


def resolve(document: Any, ref: str) -> Any:
    """Give what a local `$ref` such as `#/components/schemas/Item` points at."""
    if not ref.startswith("#/"):
        raise KeyError(f"not a local reference: {ref}")
    node = document
    for token in ref[2:].split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _refs(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield path, node["$ref"]
        for key, value in node.items():
            yield from _refs(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, (*path, index))


def semantic_errors(document: dict[str, Any]) -> list[str]:
    """Give one line per rule of the specification the JSON Schema does not check."""
    errors: list[str] = []
    for path, ref in _refs(document):
        try:
            resolve(document, ref)
        except (KeyError, IndexError, ValueError, TypeError):
            errors.append(f"{_pointer(path)}: $ref {ref!r} does not resolve")
    for kind, items in document.get("components", {}).items():
        errors += [
            f"/components/{kind}/{key}: the key must match {_COMPONENT_KEY.pattern}"
            for key in items
            if not _COMPONENT_KEY.match(key)
        ]
    for name, operation in document.get("operations", {}).items():
        channel = operation.get("channel", {}).get("$ref", "")
        parts = {
            "messages": operation.get("messages", []),
            "reply": operation.get("reply", {}).get("messages", []),
        }
        for part, messages in parts.items():
            for index, message in enumerate(messages):
                if not message.get("$ref", "").startswith(f"{channel}/messages/"):
                    errors.append(f"/operations/{name}/{part}/{index}: not a message of {channel}")
    for name, channel in document.get("channels", {}).items():
        if any(mark in channel.get("address", "") for mark in "?#"):
            errors.append(f"/channels/{name}/address: a query belongs in bindings.ws.query")
    return errors


def errors(document: dict[str, Any]) -> list[str]:
    """Give every way `document` breaks AsyncAPI 3.0.0, one line each."""
    return schema_errors(document) + semantic_errors(document)
