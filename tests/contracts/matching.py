"""Does every value B's schema allows satisfy what A's pact requires? With the pact's matchers.

A pact's example is one value; its matching rules say what A requires of B's answer:

- no rule: the value itself (the example must be one B's schema allows);
- a `type` matcher (inherited by what is under it, as in Pact): any value of the
  example's JSON type, so B's schema must allow only that type there (its wording, a
  constant B pins, is free: A does not care);
- `integer`, `decimal`, `number`: B's schema must allow only numbers of that kind;
- `regex`: B's constants must match it; otherwise the example must fit B's schema;
- an object: each field the example has must be one of B's schema (B's documents mark
  what B always sends as required, but FastAPI's own 422 schema requires nothing, so
  "not required" is not a problem here; the gate catches a field that stops being
  required). Fields B sends beyond the example are ignored, as Pact ignores them, so a
  new field, required or not, breaks nothing;
- a union B documents (`anyOf`: a string or an integer) passes a type matcher when the
  example's type is one of its branches', since Pact cannot say "a string or an integer".

The answer is a list of problems, each naming the field (`.item_data.item_id`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

Rules = Mapping[str, Any]
TYPE_MATCHERS = {"type"}
#: The JSON Schema types each numeric matcher accepts.
NUMBER_MATCHERS = {
    "integer": {"integer"},
    "decimal": {"number"},
    "number": {"integer", "number"},
}


JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def json_type(value: Any) -> str:
    """Give the JSON Schema type of a JSON value."""
    return next((name for kind, name in JSON_TYPES if isinstance(value, kind)), "null")


def resolve(document: Mapping[str, Any], schema: Any) -> Any:
    """Follow `$ref`s (local to `document`), the rest of the schema kept beside them."""
    for _ in range(20):
        if not isinstance(schema, Mapping) or "$ref" not in schema:
            break
        target: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _branches(document: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Give the alternatives B may send: each `anyOf`/`oneOf` branch, or the schema itself."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if not options:
        return [schema]
    found = []
    for option in options:
        resolved = resolve(document, option)
        if isinstance(resolved, Mapping):
            found += _branches(document, resolved)
    return found


def schema_types(document: Mapping[str, Any], schema: Mapping[str, Any]) -> set[str] | None:
    """Give every JSON type B's schema allows, or None when some branch allows any."""
    found: set[str] = set()
    for branch in _branches(document, schema):
        if "const" in branch:
            found.add(json_type(branch["const"]))
        elif "enum" in branch:
            found |= {json_type(value) for value in branch["enum"]}
        elif "type" in branch:
            kind = branch["type"]
            found |= set(kind) if isinstance(kind, list) else {kind}
        else:
            return None
    return found


def _matchers(rules: Rules, path: str) -> list[Mapping[str, Any]]:
    matchers: list[Mapping[str, Any]] = rules.get(path, {}).get("matchers", [])
    return matchers


def _allowed_types(matcher: Mapping[str, Any], example: Any) -> set[str] | None:
    kind = matcher.get("match")
    if kind in TYPE_MATCHERS:
        found = json_type(example)
        return {"integer", "number"} if found == "number" else {found}
    return NUMBER_MATCHERS.get(str(kind))


def _where(path: str) -> str:
    shown = path.removeprefix("$").replace("[*]", "[]")
    return shown or "."


def _leaf_fits(
    document: Mapping[str, Any], schema: Mapping[str, Any], value: Any, checker: FormatChecker
) -> str | None:
    validator = Draft202012Validator({**schema, **_components(document)}, format_checker=checker)
    error = best_match(validator.iter_errors(value))
    return None if error is None else error.message


def _components(document: Mapping[str, Any]) -> dict[str, Any]:
    return {"components": document["components"]} if "components" in document else {}


def problems(  # noqa: C901, PLR0913, PLR0917 - one branch per kind of value and rule
    value: Any,
    schema: Any,
    document: Mapping[str, Any],
    rules: Rules,
    checker: FormatChecker,
    path: str = "$",
    by_type: bool = False,
) -> Iterator[str]:
    """Give why some value B's `schema` allows would not satisfy A's example and rules."""
    schema = resolve(document, schema)
    if not isinstance(schema, Mapping):
        return
    allowed, regexes = _rule_at(rules, path, value, by_type)
    matched_by_type = allowed is not None
    if allowed is not None:
        retyped = _retyped(document, schema, allowed)
        if retyped:
            yield f"{_where(path)}: {retyped}"
            return
    if isinstance(value, dict) and (matched_by_type or not _is_free(schema)):
        yield from _object_problems(value, schema, document, rules, checker, path, matched_by_type)
        return
    if isinstance(value, list) and (matched_by_type or not _is_free(schema)):
        items = [resolve(document, b.get("items")) for b in _branches(document, schema)]
        # Under a type matcher, every element is like the example's first.
        for item in value[:1] if matched_by_type else value:
            for item_schema in items:
                if isinstance(item_schema, Mapping):
                    yield from problems(
                        item, item_schema, document, rules, checker, f"{path}[*]", matched_by_type
                    )
        return
    if matched_by_type:
        return
    if regexes:
        yield from _regex_problems(value, schema, document, regexes, checker, path)
        return
    why = _leaf_fits(document, schema, value, checker)
    if why is not None:
        yield f"{_where(path)}: {why}"


def _rule_at(
    rules: Rules, path: str, value: Any, by_type: bool
) -> tuple[set[str] | None, list[str]]:
    """Give the JSON types A's rule at `path` allows (None: the value itself), and regexes."""
    matchers = _matchers(rules, path)
    regexes = [m["regex"] for m in matchers if m.get("match") == "regex"]
    for matcher in matchers:
        allowed = _allowed_types(matcher, value)
        if allowed is not None:
            return allowed, regexes
    if by_type and not regexes:
        return _allowed_types({"match": "type"}, value), regexes
    return None, regexes


def _retyped(document: Mapping[str, Any], schema: Mapping[str, Any], allowed: set[str]) -> str:
    """Say which types B may send beyond those A's matcher allows ("" if none)."""
    sent = schema_types(document, schema)
    union = len(_branches(document, schema)) > 1
    # Pact cannot say "a string or an integer": a union B documents passes when the
    # example's type is one of its branches' (the gate catches a field B retypes).
    if sent is None or sent <= allowed or (union and sent & allowed):
        return ""
    return f"B may send {sorted(sent - allowed)} where A's pact requires {sorted(allowed)}"


def _is_free(schema: Mapping[str, Any]) -> bool:
    """Tell whether a schema says nothing of its value's shape (any JSON value)."""
    keys = {"type", "properties", "items", "anyOf", "oneOf", "const", "enum", "$ref"}
    return not keys & schema.keys()


def _regex_problems(  # noqa: PLR0913, PLR0917
    value: Any,
    schema: Mapping[str, Any],
    document: Mapping[str, Any],
    regexes: list[str],
    checker: FormatChecker,
    path: str,
) -> Iterator[str]:
    constants = [b["const"] for b in _branches(document, schema) if "const" in b]
    constants += [v for b in _branches(document, schema) for v in b.get("enum", [])]
    for constant in constants:
        if not all(re.search(regex, str(constant)) for regex in regexes):
            yield f"{_where(path)}: B sends {constant!r}, which A's pact's regex does not match"
    if not constants:
        why = _leaf_fits(document, schema, value, checker)
        if why is not None:
            yield f"{_where(path)}: {why}"


def _object_problems(  # noqa: PLR0913, PLR0917
    value: dict[str, Any],
    schema: Mapping[str, Any],
    document: Mapping[str, Any],
    rules: Rules,
    checker: FormatChecker,
    path: str,
    by_type: bool,
) -> Iterator[str]:
    objects = [b for b in _branches(document, schema) if "properties" in b or "type" in b]
    for branch in objects or [schema]:
        properties: Mapping[str, Any] = branch.get("properties", {})
        extra = branch.get("additionalProperties", True)
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                yield from problems(item, properties[key], document, rules, checker, where, by_type)
            elif isinstance(extra, Mapping) and extra:
                yield from problems(item, extra, document, rules, checker, where, by_type)
            elif not properties and extra is not False:
                # A free-form object: B promises nothing of its fields, the example must fit.
                continue
            else:
                yield f"{_where(where)}: not a field of B's schema ('{key}' is never sent)"
