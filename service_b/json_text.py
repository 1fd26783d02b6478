"""JSON text that is always strict JSON and always encodes to UTF-8."""

from __future__ import annotations

import json
from typing import Any


def dump_json(value: Any) -> str:
    """Serialise compactly; escape lone surrogates, which UTF-8 (and so the wire) cannot carry.

    A JSON escape of a lone surrogate (backslash, u, d800) parses into a Python string
    that cannot be encoded, so echoing it back unescaped would fail halfway through sending.
    NaN and infinities are refused (ValueError): they are not JSON.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text
