"""Check A's pact against B's schemas without running anything.

Every HTTP request of the pact is validated against `contracts/service_b.openapi.json`
(path, method, parameters, body) with openapi-core, and so are each answer's status and
headers. What B answers, and what it sends on a channel of
`contracts/service_b.asyncapi.json`, is checked the other way round, with the pact's
matching rules (`tests/contracts/matching.py`): can every value B's schema allows satisfy
what A requires? A text A matches by type may be any string B's schema allows (B pinning
its wording is no problem), a field B adds is ignored as Pact ignores it; a field A
expects must be one B always sends, and a value A matches exactly must be one B's schema
allows, formats such as `date-time` included. Each problem names the interaction and the
field.

    python -m tests.contracts.static_check [PACT [OPENAPI [ASYNCAPI]]]

Each file left out is the committed one. The exit status is 0 if everything fits, 1 if
something does not, 2 if a file is missing or is not what its place asks for.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.response.exceptions import InvalidData
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.contracts import matching
from tests.contracts.asyncapi_validation import resolve

ROOT = Path(__file__).parents[2]
PACT = ROOT / "contracts" / "pacts" / "service-a-service-b.json"
OPENAPI = ROOT / "contracts" / "service_b.openapi.json"
ASYNCAPI = ROOT / "contracts" / "service_b.asyncapi.json"
FORMAT_CHECKER: FormatChecker = Draft202012Validator.FORMAT_CHECKER


class CannotCheck(RuntimeError):
    """The check cannot do its job here, so a pass would mean nothing."""


def _format_checker() -> FormatChecker:
    """Give jsonschema's format checker, after making sure it does check `date-time`.

    jsonschema checks `date-time` only if `rfc3339-validator` is installed, and otherwise
    lets any string through without a word.
    """
    if FORMAT_CHECKER.conforms("yesterday", "date-time"):
        raise CannotCheck(
            "jsonschema's format checker lets 'yesterday' through as a date-time; "
            "install rfc3339-validator"
        )
    return FORMAT_CHECKER


def _single(values: Mapping[str, Any]) -> dict[str, str]:
    return {key: value[0] if isinstance(value, list) else value for key, value in values.items()}


def _content(part: Mapping[str, Any]) -> tuple[bytes | None, str]:
    body = part.get("body")
    if not body:
        return None, ""
    content, content_type = body.get("content"), body.get("contentType", "")
    data = content.encode() if isinstance(content, str) else json.dumps(content).encode()
    return data, content_type


@dataclass
class PactRequest:
    """A pact interaction's request, as openapi-core reads requests."""

    interaction: Mapping[str, Any]
    host_url: str = "http://service-b"
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        """Gather the query and the headers."""
        request = self.interaction["request"]
        query = [
            (key, value) for key, values in request.get("query", {}).items() for value in values
        ]
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query), header=Headers(_single(request.get("headers", {})))
        )

    @property
    def method(self) -> str:
        """Give the method, in lower case."""
        return str(self.interaction["request"]["method"]).lower()

    @property
    def path(self) -> str:
        """Give the path."""
        return str(self.interaction["request"]["path"])

    @property
    def body(self) -> bytes | None:
        """Give the body as sent."""
        return _content(self.interaction["request"])[0]

    @property
    def content_type(self) -> str:
        """Give the body's content type."""
        return _content(self.interaction["request"])[1]


@dataclass
class PactResponse:
    """A pact interaction's response, as openapi-core reads responses."""

    interaction: Mapping[str, Any]

    @property
    def status_code(self) -> int:
        """Give the status."""
        return int(self.interaction["response"]["status"])

    @property
    def headers(self) -> Headers:
        """Give the headers."""
        return Headers(_single(self.interaction["response"].get("headers", {})))

    @property
    def data(self) -> bytes | None:
        """Give the body as B would send it (the pact's example values)."""
        return _content(self.interaction["response"])[0]

    @property
    def content_type(self) -> str:
        """Give the body's content type."""
        return _content(self.interaction["response"])[1] or "application/json"


def _where(path: Iterable[Any]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path) or "."


def _describe(exc: BaseException) -> str:
    """Say in one line what failed, naming the field: `InvalidData: .name: ...`."""
    head = type(exc).__name__
    if hasattr(exc, "name") and hasattr(exc, "location"):
        head = f"{head}: {exc.location} parameter {exc.name!r}"
    cause = exc.__cause__
    schema_errors = list(getattr(cause, "schema_errors", None) or [])
    if schema_errors:
        details = []
        for error in schema_errors:
            leaf = best_match(error.context) if error.context else error
            details.append(f"{_where(leaf.absolute_path)}: {leaf.message}")
        return f"{head}: " + "; ".join(details)
    reason = str(cause or exc)
    return f"{head}: {reason}" if reason and reason != head else head


REFUSED = 422
NO_BODY = frozenset({204, 205, 304})  # RFC 9110 sections 15.3.5, 15.3.6 and 15.4.5


def _path_matches(template: str, path: str) -> bool:
    parts, actual = template.strip("/").split("/"), path.strip("/").split("/")
    return len(parts) == len(actual) and all(
        t == a or (t.startswith("{") and t.endswith("}"))
        for t, a in zip(parts, actual, strict=True)
    )


def _answer_schema(document: Mapping[str, Any], response: PactResponse) -> Any:
    """Give B's schema of the answer's body: its operation, status and content type."""
    request = response.interaction["request"]
    for template, item in document.get("paths", {}).items():
        operation = item.get(str(request["method"]).lower())
        if operation is None or not _path_matches(template, request["path"]):
            continue
        answers = operation.get("responses", {})
        answer = answers.get(str(response.status_code)) or answers.get("default") or {}
        content = answer.get("content", {})
        media = content.get(response.content_type.split(";")[0]) or {}
        return media.get("schema")
    return None


def _body_problems(
    interaction: Mapping[str, Any], document: Mapping[str, Any], response: PactResponse
) -> list[str]:
    """Give why an answer B's schema allows might not satisfy the pact's body and rules."""
    body = interaction["response"].get("body") or {}
    if "content" not in body:
        return []
    schema = _answer_schema(document, response)
    if schema is None:
        return []  # openapi-core names an answer B does not document
    content = body["content"]
    value = (
        json.loads(content)
        if isinstance(content, str) and "json" in response.content_type
        else content
    )
    rules = interaction["response"].get("matchingRules", {}).get("body", {})
    return [
        f"body {problem}"
        for problem in matching.problems(value, schema, document, rules, _format_checker())
    ]


def http_problems(
    interaction: Mapping[str, Any], openapi: OpenAPI, document: Mapping[str, Any]
) -> list[str]:
    """Give what in an HTTP interaction B's OpenAPI document does not allow.

    An interaction answered 422 is one where A expects B to refuse the request: there the
    request must break B's schema, and only the answer is checked against it. openapi-core
    checks the answer's status and headers; its body is checked with the pact's matching
    rules, by `matching.problems`, not as one example.
    """
    request, response = PactRequest(interaction), PactResponse(interaction)
    found = list(openapi.iter_request_errors(request))
    if any(isinstance(error, PathError) for error in found):
        return [f"B's OpenAPI has no {request.method.upper()} {request.path}"]
    request_errors = [f"request: {_describe(e)}" for e in found]
    if response.status_code == REFUSED:
        if not request_errors:
            return ["response 422: B's schema accepts this request, so B would not refuse it"]
        request_errors = []
    response_errors = [
        _describe(e)
        for e in openapi.iter_response_errors(request, response)
        if not isinstance(e, InvalidData)
    ]
    if not response_errors:
        response_errors = _body_problems(interaction, document, response)
    if response.status_code in NO_BODY and response.data:
        response_errors.append(f"body: a {response.status_code} answer has no body")
    return request_errors + [f"response {response.status_code}: {e}" for e in response_errors]


def _sent_messages(asyncapi: Mapping[str, Any], channel_ref: str) -> list[dict[str, Any]]:
    """Give the messages B sends on a channel: what it sends, and its replies."""
    refs: list[str] = []
    for operation in asyncapi["operations"].values():
        if operation["channel"]["$ref"] != channel_ref:
            continue
        messages = operation["messages"] if operation["action"] == "send" else []
        messages += operation.get("reply", {}).get("messages", [])
        refs += [message["$ref"] for message in messages]
    return [resolve(asyncapi, ref) for ref in dict.fromkeys(refs)]


def channel_of(interaction: Mapping[str, Any]) -> Any:
    """Give a message interaction's channel: in its metadata, or its request's for a reply."""
    metadata = interaction.get("metadata") or interaction.get("request", {}).get("metadata", {})
    return metadata.get("channel")


def sent_contents(interaction: Mapping[str, Any]) -> dict[str, Any]:
    """Give what B sends in a message interaction: the message, or the reply to a request."""
    if "contents" in interaction:
        contents: dict[str, Any] = interaction["contents"]
        return contents
    [reply] = interaction["response"]
    replied: dict[str, Any] = reply["contents"]
    return replied


def _sent_rules(interaction: Mapping[str, Any]) -> Mapping[str, Any]:
    """Give the matching rules of what B sends: the message's, or its reply's."""
    if "contents" in interaction:
        rules: Mapping[str, Any] = interaction.get("matchingRules", {}).get("body", {})
        return rules
    [reply] = interaction["response"]
    replied: Mapping[str, Any] = reply.get("matchingRules", {}).get("body", {})
    return replied


def message_problems(interaction: Mapping[str, Any], asyncapi: Mapping[str, Any]) -> list[str]:
    """Give why a message interaction fits none of the messages B sends on its channel."""
    address = channel_of(interaction)
    channels = {channel["address"]: name for name, channel in asyncapi["channels"].items()}
    if address not in channels:
        return [f"metadata.channel {address!r} is not a channel of B"]
    contents = sent_contents(interaction)
    content_type, body = contents.get("contentType", ""), contents.get("content")
    value = (
        body
        if content_type == "text/plain"
        else json.loads(body)
        if isinstance(body, str)
        else body
    )
    checker, misses = _format_checker(), []
    rules = _sent_rules(interaction)
    for message in _sent_messages(asyncapi, f"#/channels/{channels[address]}"):
        if message.get("contentType", asyncapi.get("defaultContentType")) != content_type:
            continue
        found = list(matching.problems(value, message["payload"], asyncapi, rules, checker))
        if not found:
            return []
        misses.append(f"{message.get('summary', '?')}: {'; '.join(found)}")
    if not misses:
        return [f"B sends no {content_type} message on {address}"]
    return [f"fits no message B sends on {address} ({'; '.join(misses)})"]


def problems(
    pact: Mapping[str, Any], openapi: Mapping[str, Any], asyncapi: Mapping[str, Any]
) -> list[str]:
    """Give every problem of every interaction, each naming the interaction."""
    api = OpenAPI.from_dict(dict(openapi))
    found = []
    for interaction in pact["interactions"]:
        if interaction["type"] == "Synchronous/HTTP":
            issues = http_problems(interaction, api, openapi)
        else:
            issues = message_problems(interaction, asyncapi)
        found += [f"{interaction['description']!r}: {issue}" for issue in issues]
    return found


KINDS = {
    "pact": ("a Pact file", ("interactions",)),
    "openapi": ("an OpenAPI document", ("openapi", "paths")),
    "asyncapi": ("an AsyncAPI document", ("asyncapi", "channels", "operations", "components")),
}


class WrongFile(Exception):
    """A file given to the check is missing or is not what its place asks for."""


def _read(path: Path, place: str) -> dict[str, Any]:
    """Give the JSON document at `path`, if it is the kind of document `place` asks for."""
    kind, keys = KINDS[place]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WrongFile(f"{place} {path}: cannot read it: {exc.strerror or exc}") from exc
    except ValueError as exc:  # not UTF-8, or not JSON
        raise WrongFile(f"{place} {path}: not JSON: {exc}") from exc
    missing = [key for key in keys if not isinstance(document, dict) or key not in document]
    if missing:
        names = ", ".join(repr(key) for key in missing)
        raise WrongFile(f"{place} {path}: not {kind} (no {names} at the top)")
    result: dict[str, Any] = document
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.contracts.static_check",
        description="Check A's pact against B's OpenAPI and AsyncAPI documents.",
        epilog="Exit status: 0 if everything fits, 1 if not, 2 if a file is wrong.",
    )
    for place, default in (("pact", PACT), ("openapi", OPENAPI), ("asyncapi", ASYNCAPI)):
        parser.add_argument(
            place,
            nargs="?",
            type=Path,
            default=default,
            help=f"{KINDS[place][0]} (default: {default.relative_to(ROOT)})",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Check the pact (or the files given); print each problem; give the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        documents = [_read(getattr(args, place), place) for place in KINDS]
        found = problems(*documents)
    except WrongFile as exc:
        parser.error(str(exc))
    except OpenAPIValidationError as exc:
        parser.error(f"openapi {args.openapi}: not a valid OpenAPI document: {exc.message}")
    except CannotCheck as exc:
        parser.exit(2, f"{parser.prog}: cannot check: {exc}\n")
    for problem in found:
        sys.stdout.write(f"{problem}\n")
    count = len(documents[0]["interactions"])
    sys.stdout.write(f"{count} interactions checked, {len(found)} problems\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
