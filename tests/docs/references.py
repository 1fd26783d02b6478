"""Find what a page or a style sheet makes a browser fetch, and any URL of another origin in it."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

# The attributes through which a page loads something by itself (a link to follow, <a href>,
# loads nothing until clicked).
_LOADING = {
    ("script", "src"),
    ("link", "href"),
    ("img", "src"),
    ("source", "src"),
    ("iframe", "src"),
    ("video", "poster"),
}
_ABSOLUTE = re.compile(r"""(?:https?|wss?):(?://)?[^\s"'<>`)]+""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")
_CSS_IMPORT = re.compile(r"""@import\s+["']([^"']+)["']""")


class _Loads(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if (tag, name) in _LOADING and value:
                self.found.append(value)
            if name == "style" and value:
                self.found.extend(css_references(value))


def page_references(html: str) -> list[str]:
    """Give every URL the page loads through its tags, in order (data: URLs included)."""
    parser = _Loads()
    parser.feed(html)
    parser.close()
    return parser.found


def css_references(css: str) -> list[str]:
    """Give every URL a style sheet loads (`url(...)` and `@import`), data: URLs included."""
    return [*_CSS_IMPORT.findall(css), *(url.strip() for url in _CSS_URL.findall(css))]


def absolute_urls(text: str) -> list[str]:
    """Give every absolute http(s) or ws(s) URL written anywhere in `text`, scripts included."""
    return _ABSOLUTE.findall(text)


def is_inline(reference: str) -> bool:
    """Tell whether `reference` carries its content itself (a data: URL): nothing to fetch."""
    return reference.lower().startswith("data:")


def leaves_the_service(reference: str) -> bool:
    """Tell whether fetching `reference` would leave the service that served the page."""
    parts = urlsplit(reference)
    return not is_inline(reference) and bool(parts.scheme or parts.netloc)
