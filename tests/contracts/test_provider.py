"""B verified against A's committed pact, and altered Bs that must fail (or pass) it.

HTTP interactions go to B served by uvicorn on a free port, with provider states set through
B's own provider-state endpoint; WebSocket messages are acted out against B in-process.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.types import ASGIApp

from service_b import Settings as BSettings
from service_b import create_app as create_b
from tests.contracts.alterations import BREAKING, COMPATIBLE, Alteration
from tests.contracts.conftest import COMMITTED_PACT
from tests.contracts.providers import Verification, in_process, served, verify_pact

VERIFYING = BSettings(database_path=":memory:", enable_pact_provider_states=True)


def _b(alteration: Alteration | None = None) -> Callable[[], ASGIApp]:
    def make() -> ASGIApp:
        app: ASGIApp = create_b(VERIFYING)
        return app if alteration is None else alteration(app)

    return make


def verify(alteration: Alteration | None = None) -> Verification:
    """Verify the committed pact against B, altered or not."""
    make = _b(alteration)
    with served(make()) as url:
        return verify_pact(COMMITTED_PACT, url, in_process(make))


def test_b_honours_a_pact() -> None:
    """B as it is passes every interaction of A's pact, HTTP and messages."""
    result = verify()
    assert (True, set()) == (result.passed, result.failed), result.report
    assert result.interactions >= 20


@pytest.mark.parametrize("name", list(BREAKING))
def test_breaking_change_fails_naming_the_interaction(name: str) -> None:
    """A change to B that breaks A fails verification, naming exactly the broken interactions."""
    alteration, broken = BREAKING[name]
    result = verify(alteration)
    assert not result.passed
    assert broken == result.failed
    for description in broken:
        assert description in result.report


@pytest.mark.parametrize("name", list(COMPATIBLE))
def test_compatible_change_passes(name: str) -> None:
    """A change to B that breaks nobody passes verification."""
    result = verify(COMPATIBLE[name])
    assert (True, set()) == (result.passed, result.failed), result.report
