"""What A tells B about its caller: forwarding headers written by A alone.

A is the edge: nothing in front of it vouches for what a caller puts in `Forwarded`,
`X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Proto` (or any other `X-Forwarded-*`) or
`X-Real-IP`, so B would believe whatever a caller wrote there. A drops every such header
from the caller and writes its own from what it saw itself: the address of the connection's
peer, the scheme of the request and its `Host` header (RFC 7239 for `Forwarded`).

For the same reason `python -m service_a` turns uvicorn's proxy headers off: uvicorn would
otherwise take a loopback caller's `X-Forwarded-For` and `X-Forwarded-Proto` as the truth.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import Scope

RawHeaders = list[tuple[bytes, bytes]]

#: The names a caller's forwarding headers have, besides `X-Forwarded-*`.
FORWARDING = frozenset({b"forwarded", b"x-real-ip"})
_X_FORWARDED = b"x-forwarded-"
# A host as a URL has it, reg-name or IP literal, with an optional port: nothing that needs
# quoting in a header or splits a list (RFC 3986 section 3.2.2, without sub-delims).
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%-]+)(:[0-9]{1,5})?")
_PROTO = {"http": "http", "ws": "http", "https": "https", "wss": "https"}


def is_forwarding(name: bytes) -> bool:
    """Tell whether a header (by name) says who the caller is or how it reached the server."""
    lowered = name.lower()
    return lowered in FORWARDING or lowered.startswith(_X_FORWARDED)


def _address(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    try:
        return str(ipaddress.ip_address(client[0]))
    except ValueError:
        return None  # not an address (a test client's name, say)


def forwarded_headers(scope: Scope) -> RawHeaders:
    """Give the forwarding headers for a request A serves, from what A knows of it."""
    address = _address(scope)
    proto = _PROTO.get(scope.get("scheme", "http"), "http")
    host = Headers(scope=scope).get("host")
    if host is not None and not _HOST.fullmatch(host):
        host = None
    headers: RawHeaders = []
    if address is not None:
        headers.append((b"x-forwarded-for", address.encode()))
    if host is not None:
        headers.append((b"x-forwarded-host", host.encode()))
    headers.append((b"x-forwarded-proto", proto.encode()))
    if address is not None:
        headers.append((b"x-real-ip", address.encode()))
    node = "unknown" if address is None else address
    if ":" in node:
        node = f'"[{node}]"'
    forwarded = f"for={node}"
    if host is not None:
        forwarded += f';host="{host}"'
    forwarded += f";proto={proto}"
    headers.append((b"forwarded", forwarded.encode()))
    return headers


def replace_forwarding(headers: Iterable[tuple[bytes, bytes]], scope: Scope) -> RawHeaders:
    """Give `headers` without the caller's forwarding headers, and with A's own after them."""
    kept = [(name, value) for name, value in headers if not is_forwarding(name)]
    return kept + forwarded_headers(scope)


def forwarded_header_text(scope: Scope) -> dict[str, str]:
    """Give `forwarded_headers` as text, for clients that take headers as a mapping."""
    return {name.decode(): value.decode() for name, value in forwarded_headers(scope)}
