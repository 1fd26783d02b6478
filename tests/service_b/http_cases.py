"""B's HTTP API as a table of requests and the answers they must get, for every client."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class HttpCase:
    """One request to a fresh B, and the status, body and headers it must be answered with."""

    id: str
    method: str
    path: str
    status: int
    body: Any = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    expect_headers: dict[str, str] = field(default_factory=dict)
    expect_text: str | None = None
    expect_detail_type: type | None = None

    def request_kwargs(self) -> dict[str, Any]:
        """Give the keyword arguments for `client.request(method, path, ...)`."""
        kwargs: dict[str, Any] = {"headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        return kwargs


JSON = {"content-type": "application/json"}

CASES = [
    HttpCase("root", "GET", "/", 200, body={"message": "Server is running"}),
    HttpCase(
        "status",
        "GET",
        "/status",
        200,
        body={"status": "ok", "store": {"kind": "sqlite", "status": "ok"}},
    ),
    HttpCase("b", "GET", "/b/", 200, body={"b": "b"}),
    HttpCase(
        "static file",
        "GET",
        "/static/data.txt",
        200,
        expect_text="This is a test file served by FastAPI.",
        expect_headers={"content-type": "text/plain; charset=utf-8"},
    ),
    HttpCase("static unknown", "GET", "/static/other.txt", 404, expect_detail_type=str),
    HttpCase("seed item", "GET", "/items/1", 200, body={"item_id": 1, "name": "The One Item"}),
    HttpCase(
        "missing item",
        "GET",
        "/items/999",
        404,
        body={"detail": "Item with ID 999 not found."},
    ),
    HttpCase("id not integer", "GET", "/items/abc", 422, expect_detail_type=list),
    HttpCase("id zero", "GET", "/items/0", 422, expect_detail_type=list),
    HttpCase("id negative", "GET", "/items/-5", 422, expect_detail_type=list),
    HttpCase("id largest", "GET", f"/items/{MAX_ID}", 404, expect_detail_type=str),
    HttpCase("id too large", "GET", f"/items/{MAX_ID + 1}", 422, expect_detail_type=list),
    HttpCase("id float", "GET", "/items/1.5", 422, expect_detail_type=list),
    HttpCase("list", "GET", "/items", 200, body=[{"item_id": 1, "name": "The One Item"}]),
    HttpCase("list past the end", "GET", "/items?offset=1", 200, body=[]),
    HttpCase("list limit zero", "GET", "/items?limit=0", 422, expect_detail_type=list),
    HttpCase("list limit too big", "GET", "/items?limit=101", 422, expect_detail_type=list),
    HttpCase("list offset negative", "GET", "/items?offset=-1", 422, expect_detail_type=list),
    HttpCase(
        "create",
        "POST",
        "/items",
        201,
        json={"name": "Spoon", "is_offer": True},
        body={
            "message": "Item created successfully",
            "item_data": {"item_id": 2, "name": "Spoon", "is_offer": True},
        },
        expect_headers={"location": "/items/2"},
    ),
    HttpCase(
        "create without offer",
        "POST",
        "/items",
        201,
        json={"name": "Fork", "is_offer": None},
        body={"message": "Item created successfully", "item_data": {"item_id": 2, "name": "Fork"}},
    ),
    HttpCase(
        "create no name", "POST", "/items", 422, json={"is_offer": True}, expect_detail_type=list
    ),
    HttpCase("create name int", "POST", "/items", 422, json={"name": 123}, expect_detail_type=list),
    HttpCase(
        "create name empty", "POST", "/items", 422, json={"name": ""}, expect_detail_type=list
    ),
    HttpCase(
        "create name 201 chars",
        "POST",
        "/items",
        422,
        json={"name": "x" * 201},
        expect_detail_type=list,
    ),
    HttpCase(
        "create offer string",
        "POST",
        "/items",
        422,
        json={"name": "x", "is_offer": "yes"},
        expect_detail_type=list,
    ),
    HttpCase(
        "create unknown field",
        "POST",
        "/items",
        422,
        json={"name": "x", "price": 3},
        expect_detail_type=list,
    ),
    HttpCase("create body array", "POST", "/items", 422, json=[1, 2], expect_detail_type=list),
    HttpCase("create body string", "POST", "/items", 422, json="name", expect_detail_type=list),
    HttpCase(
        "create not json",
        "POST",
        "/items",
        422,
        content=b"{name:",
        headers=JSON,
        expect_detail_type=list,
    ),
    HttpCase(
        "create not utf-8",
        "POST",
        "/items",
        400,
        content=b'{"name": "\xff\xfe"}',
        headers=JSON,
        expect_detail_type=str,
    ),
    *[
        HttpCase(
            f"create not utf-8 as {content_type or 'no type'}",
            "POST",
            "/items",
            422,
            content=b"\xff\xfe",
            headers={"content-type": content_type} if content_type else {},
            expect_detail_type=list,
        )
        for content_type in ("text/plain", "application/octet-stream", None)
    ],
    *[
        HttpCase(
            f"create with {constant}",
            "POST",
            "/items",
            422,
            content=b'{"name": "x", "is_offer": ' + constant.encode() + b"}",
            headers=JSON,
            expect_detail_type=list,
        )
        for constant in ("NaN", "-Infinity", "1e400")
    ],
    HttpCase(
        "read with a large body",
        "GET",
        "/items/1",
        200,
        content=b"x" * (2 * 1024 * 1024),  # never read: a GET is not bounded by the limit
        body={"item_id": 1, "name": "The One Item"},
    ),
    HttpCase(
        "create lone surrogate",
        "POST",
        "/items",
        422,
        content=b'{"name": "\\ud800"}',
        headers=JSON,
        expect_detail_type=list,
    ),
    HttpCase("create no body", "POST", "/items", 422, expect_detail_type=list),
    HttpCase(
        "create too large",
        "POST",
        "/items",
        413,
        content=b'{"name": "' + b"x" * (1024 * 1024) + b'"}',
        headers=JSON,
        expect_detail_type=str,
    ),
    HttpCase(
        "update",
        "PUT",
        "/items/1",
        200,
        json={"name": "Renamed", "is_offer": False},
        body={"item_id": 1, "name": "Renamed", "is_offer": False},
    ),
    HttpCase(
        "update missing",
        "PUT",
        "/items/999",
        404,
        json={"name": "x"},
        body={"detail": "Item with ID 999 not found."},
    ),
    HttpCase("update bad body", "PUT", "/items/1", 422, json={"name": 1}, expect_detail_type=list),
    HttpCase(
        "update bad id", "PUT", "/items/abc", 422, json={"name": "x"}, expect_detail_type=list
    ),
    HttpCase("delete", "DELETE", "/items/1", 204, expect_text=""),
    HttpCase(
        "delete missing",
        "DELETE",
        "/items/999",
        404,
        body={"detail": "Item with ID 999 not found."},
    ),
    HttpCase("delete bad id", "DELETE", "/items/0", 422, expect_detail_type=list),
    HttpCase("method not allowed", "PATCH", "/items/1", 405, expect_detail_type=str),
    HttpCase("unknown path", "GET", "/nowhere", 404, expect_detail_type=str),
]


def check_answer(case: HttpCase, status: int, headers: Any, text: str, parsed: Any) -> None:
    """Assert that an answer (from any client) is the one `case` expects."""
    assert (case.status, case.id) == (status, case.id), text[:500]
    if case.body is not None:
        assert case.body == parsed
    if case.expect_text is not None:
        assert case.expect_text == text
    if case.expect_detail_type is not None:
        assert headers["content-type"] == "application/json"
        assert isinstance(parsed, dict)
        assert set(parsed) == {"detail"}
        assert isinstance(parsed["detail"], case.expect_detail_type)
    for name, value in case.expect_headers.items():
        assert value == headers[name]


def _not_json(constant: str) -> Any:
    raise AssertionError(f"{constant} is not JSON")


class Answer(Protocol):
    """A response of httpx, or of the httpx2 that Starlette's TestClient is built on."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""

    @property
    def headers(self) -> Any:
        """The headers, as a case-insensitive mapping."""

    @property
    def text(self) -> str:
        """The body, decoded."""


def check_response(case: HttpCase, response: Answer) -> None:
    """Assert that a response (httpx's or TestClient's) is the answer `case` expects."""
    content_type = response.headers.get("content-type", "")
    check_answer(
        case,
        response.status_code,
        response.headers,
        response.text,
        parse(content_type, response.text),
    )


def parse(content_type: str, text: str) -> Any:
    """Parse the body when it is JSON, strictly: NaN and Infinity are not JSON."""
    if not content_type.startswith("application/json"):
        return None
    return json.loads(text, parse_constant=_not_json)
