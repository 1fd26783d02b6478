"""Load the docs pages in headless Chromium, with every request off loopback aborted.

python -m tests.docs.browser [--chromium /usr/bin/chromium] [--out build/docs-screenshots]

B and A start as real processes on free ports (A pointed at B). Each page must render its
operations (Swagger UI) or its operations and channels (AsyncAPI) with no request leaving
127.0.0.1; on B's `/docs`, "Try it out" runs `GET /status` for real; A's `/docs` must link
B's pages. A screenshot of each page goes to the output folder, with one of the "Try it out"
answer and one of the login of `/ws/v5/private`. Exit status 1 names each page that failed, and
the log says why.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import ConsoleMessage, Page, Route, ViewportSize, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.live import run_service

logger = logging.getLogger("docs")

LOOPBACK = "127.0.0.1"
RENDER_TIMEOUT_MS = 30_000
# Wider than 1536 px: the AsyncAPI page then shows its sidebar and its examples column.
VIEWPORT: ViewportSize = {"width": 1680, "height": 1050}


@dataclass
class Visit:
    """What one page load did: requests it made, the ones aborted, and what went wrong."""

    requests: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def swagger_operations(page: Page, base_url: str) -> list[str]:
    """Check that Swagger UI shows a block for every operation in `/openapi.json`."""
    document = httpx.get(f"{base_url}/openapi.json").json()
    expected = [
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    ]
    page.wait_for_selector(".opblock", timeout=RENDER_TIMEOUT_MS)
    shown = [
        f"{block.locator('.opblock-summary-method').inner_text()} "
        f"{block.locator('.opblock-summary-path').get_attribute('data-path')}"
        for block in page.locator(".opblock").all()
    ]
    missing = sorted(set(expected) - set(shown))
    if not expected or missing:
        raise AssertionError(f"operations not shown: {missing or 'the document has none'}")
    return shown


def try_it_out(page: Page, path: str, screenshot: Path) -> None:
    """Run `GET path` from Swagger UI's "Try it out", check that it shows a 200, screenshot it."""
    block = page.locator(f".opblock-get:has(.opblock-summary-path[data-path='{path}'])")
    block.locator(".opblock-summary").click()
    block.locator(".try-out__btn").click()
    block.locator(".execute").click()
    status = block.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for(timeout=RENDER_TIMEOUT_MS)
    if status.inner_text().strip() != "200":
        raise AssertionError(f"Try it out on GET {path} showed {status.inner_text()!r}")
    block.locator(".opblock-summary").scroll_into_view_if_needed()
    page.screenshot(path=screenshot)


def links_to_b(page: Page, urls: dict[str, str], _: Path) -> None:
    """Check that A's description links B's two pages at B's URL."""
    hrefs = page.locator(".info .description a").evaluate_all("links => links.map(a => a.href)")
    missing = {f"{urls['B']}/docs", f"{urls['B']}/asyncapi"} - set(hrefs)
    if missing:
        raise AssertionError(f"A's /docs does not link {sorted(missing)}; it links {hrefs}")


def private_login(page: Page, _: dict[str, str], out: Path) -> None:
    """Screenshot the login of /ws/v5/private: its steps, its message and an example of it."""
    operation = page.locator("#operation-reply-receivePrivateLogin")
    operation.locator(".examples button").first.click()
    operation.scroll_into_view_if_needed()
    page.screenshot(path=out / "service_b-asyncapi-private-login.png")


def asyncapi_operations(page: Page, base_url: str) -> list[str]:
    """Check that the AsyncAPI page shows every operation and channel of `/asyncapi.json`."""
    document = httpx.get(f"{base_url}/asyncapi.json").json()
    page.wait_for_selector("#operations", timeout=RENDER_TIMEOUT_MS)
    missing = [
        name
        for name in document["operations"]
        if page.locator(f'#operations [id^="operation-"][id$="-{name}"]').count() == 0
    ]
    text = page.locator("#asyncapi").inner_text()
    missing += [
        channel["address"] for channel in document["channels"].values()
        if channel["address"] not in text
    ]  # fmt: skip
    if not document["operations"] or missing:
        raise AssertionError(f"not shown: {missing or 'the document has no operation'}")
    return list(document["operations"])


@dataclass(frozen=True)
class Check:
    """A page to load, and how to tell that it shows what it documents."""

    name: str
    service: str
    path: str
    shows: Callable[[Page, str], list[str]]
    then: Callable[[Page, dict[str, str], Path], None] | None = None


CHECKS = [
    Check(
        "service_b-docs",
        "B",
        "/docs",
        swagger_operations,
        lambda page, _, out: try_it_out(page, "/status", out / "service_b-docs-try-it-out.png"),
    ),
    Check("service_b-asyncapi", "B", "/asyncapi", asyncapi_operations, private_login),
    Check("service_a-docs", "A", "/docs", swagger_operations, links_to_b),
]


def visit(page: Page, url: str, record: Visit) -> None:
    """Load `url` in `page`, recording its script errors and console errors into `record`."""

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            record.errors.append(f"console error: {message.text}")

    page.on("pageerror", lambda error: record.errors.append(f"script error: {error}"))
    page.on("console", console)
    page.goto(url, wait_until="networkidle", timeout=RENDER_TIMEOUT_MS)


def loopback_only(visit: Visit) -> Callable[[Route], None]:
    """Give a route handler that lets loopback requests through and aborts every other one."""

    def handle(route: Route) -> None:
        url = route.request.url
        visit.requests.append(url)
        if urlsplit(url).hostname == LOOPBACK:
            route.continue_()
        else:
            visit.aborted.append(url)
            route.abort("blockedbyclient")

    return handle


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    """Run B and A (pointed at B) on free ports; give each one's base URL."""
    with run_service("service_b", env={"SERVICE_B_DATABASE_PATH": ":memory:"}) as b:
        a_env = {"SERVICE_A_SERVICE_B_URL": b.base_url}
        with run_service("service_a", env=a_env) as a:
            yield {"B": b.base_url, "A": a.base_url}


def main(argv: list[str] | None = None) -> int:
    """Load every page; give 0 when each passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="default: %(default)s")
    parser.add_argument(
        "--out", type=Path, default=Path("build/docs-screenshots"), help="default: %(default)s"
    )
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    options.out.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    with services() as urls, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=options.chromium, headless=True)
        try:
            for check in CHECKS:
                record = Visit()
                context = browser.new_context(viewport=VIEWPORT)
                context.route("**/*", loopback_only(record))
                page = context.new_page()
                url = urls[check.service] + check.path
                shown: list[str] = []
                screenshot = options.out / f"{check.name}.png"
                try:
                    visit(page, url, record)
                    shown = check.shows(page, urls[check.service])
                    page.screenshot(path=screenshot)
                    if check.then is not None:
                        check.then(page, urls, options.out)
                except (AssertionError, PlaywrightError) as error:
                    record.errors.append(str(error).splitlines()[0])
                    page.screenshot(path=screenshot)  # what the page showed when it failed
                context.close()
                problems = [f"request left loopback: {url}" for url in record.aborted]
                problems += record.errors
                logger.info(
                    "%s %s: %d requests, all to %s: %s; %d items shown; screenshot %s",
                    "FAIL" if problems else "ok",
                    url,
                    len(record.requests),
                    LOOPBACK,
                    "no" if record.aborted else "yes",
                    len(shown),
                    screenshot,
                )
                for problem in problems:
                    logger.info("    %s", problem)
                if problems:
                    failed.append(check.name)
        finally:
            browser.close()
    if failed:
        logger.error("failed: %s", ", ".join(failed))
        return 1
    logger.info("every page rendered from loopback only; screenshots in %s", options.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
