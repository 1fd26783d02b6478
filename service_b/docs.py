"""B's documentation pages, served from B alone so that they work without internet access.

- `/docs`: Swagger UI, its assets from fastapi-offline (see `create_app` and the README).
- `/asyncapi.json`: the AsyncAPI document of B's WebSockets, the one in `contracts/`.
- `/asyncapi`: that document rendered by AsyncAPI's own renderer, `@asyncapi/react-component`,
  whose standalone browser bundle is vendored in `asyncapi_ui/` (origin, version and sha256 in
  `asyncapi_ui/SOURCE.json`; `nox -s asyncapi-ui -- VERSION` refreshes it).

None of them is in the OpenAPI document.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from service_b.asyncapi import asyncapi_document

ASYNCAPI_URL = "/asyncapi"
ASYNCAPI_JSON_URL = "/asyncapi.json"
ASYNCAPI_UI_URL = "/asyncapi-ui"

router = APIRouter(include_in_schema=False)


@router.get(ASYNCAPI_JSON_URL)
async def asyncapi_json() -> JSONResponse:
    """Give B's AsyncAPI document."""
    return JSONResponse(asyncapi_document())


@router.get(ASYNCAPI_URL)
async def asyncapi_page(request: Request) -> HTMLResponse:
    """Give a page that renders B's AsyncAPI document in the browser, with B's assets only."""
    root = request.scope.get("root_path", "")
    return HTMLResponse(asyncapi_html(root))


def asyncapi_html(root: str = "") -> str:
    """Give the AsyncAPI page's HTML, its URLs under `root` (the ASGI root path)."""
    config: dict[str, Any] = {
        "schema": {"url": f"{root}{ASYNCAPI_JSON_URL}", "options": {"method": "GET"}},
        "config": {"show": {"sidebar": True}},
    }
    # `</` cannot end the inline script early, whatever the root path holds.
    config_js = json.dumps(config).replace("</", "<\\/")
    assets = escape(f"{root}{ASYNCAPI_UI_URL}")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Service B WebSockets - AsyncAPI</title>
<link rel="stylesheet" href="{assets}/default.min.css">
<link rel="icon" href="data:,">
<style>body {{ margin: 0; font-family: system-ui, sans-serif; }}</style>
</head>
<body>
<div id="asyncapi"></div>
<script src="{assets}/index.js"></script>
<script>
AsyncApiStandalone.render({config_js}, document.getElementById("asyncapi"));
</script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve the AsyncAPI document and page on `app` (Swagger UI comes with FastAPIOffline)."""
    app.include_router(router)
    app.mount(
        ASYNCAPI_UI_URL,
        StaticFiles(packages=[("service_b", "asyncapi_ui")]),
        name="asyncapi-ui",
    )
