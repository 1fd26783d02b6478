"""A's requests to B are what httpx's own `Request` makes of the same call.

`request_for_b` builds A's requests without `client.build_request` (README, Speed); these
tests hold it to httpx's own result, byte for byte, for whoever makes it cheaper next.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service_a.b_client import ClientForB, request_for_b

BASES = [
    "http://127.0.0.1:8000",
    "http://service-b/",
    "http://b.example:8080/pre/fix/",
    "http://[::1]:9000",
    "http://b:80",
    "http://user:pw@b:81/p%20q/",
]
CALLS: list[tuple[str, str, Any, dict[str, int] | None]] = [
    ("GET", "/items/1", None, None),
    ("GET", "/items", None, {"limit": 20, "offset": 0}),
    ("POST", "/items", {"name": "é ☃", "is_offer": True}, None),
    ("PUT", "/items/9223372036854775807", {"name": "x"}, None),
    ("DELETE", "/items/3", None, None),
    ("POST", "/items", None, None),
    ("GET", "/it ems/ü", None, None),  # not plain: through httpx's parser
    ("GET", "/b/", None, None),
]
CALLER = [(b"user-agent", b"wrk"), (b"x-request-id", b"abc"), (b"x-caller", b"\xe9")]


def _reference(
    client: httpx.AsyncClient, method: str, path: str, body: Any, params: dict[str, int] | None
) -> httpx.Request:
    """Give what httpx makes of the same request, without the cookie jar."""
    content = None
    headers = list(CALLER)
    if body is not None:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        content = text.encode()
        headers.append((b"content-type", b"application/json"))
    url = str(client.base_url).rstrip("/") + path
    own = dict(headers)
    return httpx.Request(
        method,
        url,
        params=params,
        headers=[*[(k, v) for k, v in client.headers.raw if k.lower() not in own], *headers],
        content=content,
    )


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(("method", "path", "body", "params"), CALLS)
def test_request_is_what_httpx_makes(
    base: str, method: str, path: str, body: Any, params: dict[str, int] | None
) -> None:
    """URL, headers (names, values, order), body and timeouts are httpx's own."""
    client = ClientForB(base_url=base, timeout=httpx.Timeout(3.0), headers={"X-Default": "d"})
    made = request_for_b(client, method, path, headers=list(CALLER), body=body, params=params)
    expected = _reference(client, method, path, body, params)
    assert made.method == expected.method
    assert str(made.url) == str(expected.url)
    assert made.url.raw_path == expected.url.raw_path
    assert made.url.netloc == expected.url.netloc
    assert made.headers.raw == expected.headers.raw
    assert made.content == expected.content
    assert made.extensions["timeout"] == client.timeout.as_dict()
