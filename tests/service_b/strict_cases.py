"""Lax inputs both services used to take, each as a request and the refusal it must get now."""

from __future__ import annotations

import json

from tests.service_b.http_cases import HttpCase

JSON = {"content-type": "application/json"}
ITEM = {"name": "x"}

#: Ids that Python's or pydantic's lax int parsing read as another id (`1_0` as 10, the rest as 1).
LAX_IDS = ("1_0", "+1", "%2B1", "1.0", "%201", " 1", "1%20", "1%09", "01")

#: Encodings of the same JSON text that are not UTF-8 (a BOM included).
NOT_UTF8 = ("utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")

DUPLICATE_KEYS = (
    b'{"name": "x", "name": "y"}',
    b'{"name": "x", "is_offer": true, "is_offer": false}',
    b'{"name": "x", "n\\u0061me": "y"}',
)

LAX_QUERIES = ("limit=%2B5", "limit=1_0", "limit=5.0", "limit=%205", "offset=0_0", "offset=00")

STRICT_CASES = [
    *[
        HttpCase(
            f"{method} id {item_id!r}",
            method,
            f"/items/{item_id}",
            422,
            json=ITEM if method == "PUT" else None,
            expect_detail_type=list,
        )
        for item_id in LAX_IDS
        for method in ("GET", "PUT", "DELETE")
    ],
    *[
        HttpCase(f"list {query}", "GET", f"/items?{query}", 422, expect_detail_type=list)
        for query in LAX_QUERIES
    ],
    *[
        HttpCase(
            f"{method} body in {encoding}",
            method,
            path,
            400,
            content=json.dumps(ITEM).encode(encoding),
            headers=JSON,
            expect_detail_type=str,
        )
        for encoding in NOT_UTF8
        for method, path in (("POST", "/items"), ("PUT", "/items/1"))
    ],
    HttpCase(
        "POST body in utf-16 as declared",
        "POST",
        "/items",
        400,
        content=json.dumps(ITEM).encode("utf-16"),
        headers={"content-type": "application/json; charset=utf-16"},
        expect_detail_type=str,
    ),
    *[
        HttpCase(
            f"{method} duplicate keys {index}",
            method,
            path,
            422,
            content=body,
            headers=JSON,
            expect_detail_type=list,
        )
        for index, body in enumerate(DUPLICATE_KEYS)
        for method, path in (("POST", "/items"), ("PUT", "/items/1"))
    ],
]
