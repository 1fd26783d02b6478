"""The docs pages, and everything they load, come from the services themselves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.docs.references import (
    absolute_urls,
    css_references,
    is_inline,
    leaves_the_service,
    page_references,
)
from tests.inprocess import B_URL

ROOT = Path(__file__).parent.parent.parent
ASYNCAPI_UI = ROOT / "service_b" / "asyncapi_ui"

Service = Literal["A", "B"]
PAGES = [
    pytest.param("B", "/docs", id="B-docs"),
    pytest.param("B", "/asyncapi", id="B-asyncapi"),
    pytest.param("A", "/docs", id="A-docs"),
]
# Each page with the document it renders.
DOCUMENTS = [
    pytest.param(*page.values, document, id=page.id)
    for page, document in zip(
        PAGES, ["/openapi.json", "/asyncapi.json", "/openapi.json"], strict=True
    )
]
DOCS_PATHS = ["/docs", "/docs/oauth2-redirect", "/redoc", "/asyncapi", "/asyncapi.json"]


@pytest.fixture
def services(
    b_client: httpx.AsyncClient, a_client: httpx.AsyncClient
) -> dict[Service, httpx.AsyncClient]:
    """Give a client on B and one on A (A in front of that B), in-process."""
    return {"B": b_client, "A": a_client}


async def fetch(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """GET `url` from the service and check that it answers 200."""
    response = await client.get(url)
    assert (url, 200) == (url, response.status_code)
    return response


@pytest.mark.anyio
@pytest.mark.parametrize(("service", "path"), PAGES)
async def test_page_loads_nothing_from_another_origin(
    services: dict[Service, httpx.AsyncClient], service: Service, path: str
) -> None:
    """The page is HTML whose scripts and styles are all on the service, no URL elsewhere."""
    response = await fetch(services[service], path)
    assert response.headers["content-type"].startswith("text/html")
    references = page_references(response.text)
    assert any(reference.endswith(".js") for reference in references)
    assert [] == [reference for reference in references if leaves_the_service(reference)]
    assert [] == absolute_urls(response.text)


@pytest.mark.anyio
@pytest.mark.parametrize(("service", "path"), PAGES)
async def test_every_asset_of_the_page_is_served(
    services: dict[Service, httpx.AsyncClient], service: Service, path: str
) -> None:
    """Each script, style sheet and image the page loads, and what its styles load, is a 200."""
    client = services[service]
    page = await fetch(client, path)
    fetched = []
    for reference in page_references(page.text):
        if is_inline(reference):
            continue
        asset = await fetch(client, reference)
        fetched.append(reference)
        if asset.headers["content-type"].startswith("text/css"):
            nested = css_references(asset.text)
            assert [] == [url for url in nested if leaves_the_service(url)]
            for url in nested:
                if not is_inline(url):
                    await fetch(client, httpx.URL(reference).join(url).path)
    assert len(fetched) >= 2  # a script and its styles at least


@pytest.mark.anyio
@pytest.mark.parametrize(("service", "path", "document"), DOCUMENTS)
async def test_page_renders_the_services_own_document(
    services: dict[Service, httpx.AsyncClient], service: Service, path: str, document: str
) -> None:
    """The page's script loads the document from the same service, which serves it as JSON."""
    client = services[service]
    page = await fetch(client, path)
    assert f"'{document}'" in page.text or f'"{document}"' in page.text
    served = await fetch(client, document)
    assert served.headers["content-type"] == "application/json"


@pytest.mark.anyio
async def test_asyncapi_json_is_the_committed_contract(b_client: httpx.AsyncClient) -> None:
    """B serves at /asyncapi.json the very document committed in contracts/."""
    committed = json.loads((ROOT / "contracts" / "service_b.asyncapi.json").read_text())
    assert committed == (await fetch(b_client, "/asyncapi.json")).json()


@pytest.mark.anyio
@pytest.mark.parametrize("service", ["A", "B"])
async def test_docs_pages_are_not_in_the_openapi_document(
    services: dict[Service, httpx.AsyncClient], service: Service
) -> None:
    """Neither the pages nor their assets are operations of the service's API."""
    paths = (await fetch(services[service], "/openapi.json")).json()["paths"]
    assert [] == [
        path for path in paths if path in DOCS_PATHS or path.startswith(("/static-", "/asyncapi"))
    ]


@pytest.mark.anyio
async def test_a_links_both_services_pages(a_client: httpx.AsyncClient) -> None:
    """A's /docs description links its own page and B's two pages, at B's configured URL."""
    description = (await fetch(a_client, "/openapi.json")).json()["info"]["description"]
    for link in ["(/docs)", f"({B_URL}/docs)", f"({B_URL}/asyncapi)"]:
        assert link in description


@pytest.mark.anyio
async def test_b_links_its_asyncapi_page(b_client: httpx.AsyncClient) -> None:
    """B's /docs description links the page of its WebSocket API."""
    description = (await fetch(b_client, "/openapi.json")).json()["info"]["description"]
    assert "(/asyncapi)" in description


def test_vendored_assets_are_what_source_json_records() -> None:
    """Each file in service_b/asyncapi_ui/ is listed in SOURCE.json with its sha256."""
    source = json.loads((ASYNCAPI_UI / "SOURCE.json").read_text())
    assert "@asyncapi/react-component" == source["package"]
    on_disk = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in ASYNCAPI_UI.iterdir()
        if path.name != "SOURCE.json"
    }
    assert on_disk == {name: file["sha256"] for name, file in source["files"].items()}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "document"), [("/docs", "/openapi.json"), ("/asyncapi", "/asyncapi.json")]
)
async def test_b_pages_load_their_assets_under_a_proxy_prefix(
    b_running: LifespanManager, path: str, document: str
) -> None:
    """Behind a proxy that serves B under /b (ASGI root_path), the pages load from /b/..."""
    transport = httpx.ASGITransport(b_running.app, root_path="/b")
    async with httpx.AsyncClient(transport=transport, base_url=B_URL) as client:
        page = await fetch(client, f"/b{path}")
        assert f"/b{document}" in page.text
        references = [ref for ref in page_references(page.text) if not is_inline(ref)]
        assert references
        assert [] == [ref for ref in references if not ref.startswith("/b/")]
        for reference in references:
            await fetch(client, reference)
