"""tests/ws.py refuses an httpx-ws whose private parts it was not written against."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from tests.ws import check_httpx_ws


def test_the_installed_httpx_ws_is_known() -> None:
    """The locked httpx-ws is one the in-process transport was written for."""
    check_httpx_ws(version("httpx-ws"))


@pytest.mark.parametrize("installed", ["0.8.2", "0.10.0", "1.0.0"])
def test_an_unknown_httpx_ws_fails_loudly(installed: str) -> None:
    """Another release stops the tests at import, naming the version found."""
    with pytest.raises(RuntimeError, match=f"httpx-ws {installed} is installed"):
        check_httpx_ws(installed)
