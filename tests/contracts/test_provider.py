"""B verified against A's committed pact, and altered Bs that must fail (or pass) it.

HTTP interactions go to B served by uvicorn on a free port, with provider states set through
B's own provider-state endpoint; WebSocket messages are acted out against B in-process.

Each altered B is today's B with one change. So that a test names its own change and not
another that today's B may carry (a provider team runs these on its own changed B), a
breaking change must make at least its own interactions fail, and a compatible one must make
nothing fail that today's B passes.
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


@pytest.fixture(scope="module")
def todays_b() -> Verification:
    """Give the verification of B as it is, once for the module."""
    return verify()


def test_b_honours_a_pact(todays_b: Verification) -> None:
    """B as it is passes every interaction of A's pact, HTTP and messages."""
    if not todays_b.passed:
        pytest.fail(f"B fails A's pact in {sorted(todays_b.failed)}:\n{todays_b.report}")
    assert todays_b.interactions >= 20


@pytest.mark.parametrize("name", list(BREAKING))
def test_breaking_change_fails_naming_the_interaction(name: str) -> None:
    """A change to B that breaks A fails verification, naming at least what it breaks."""
    alteration, broken = BREAKING[name]
    result = verify(alteration)
    missed = broken - result.failed
    if missed:
        pytest.fail(
            f"altered B {name!r} should fail {sorted(missed)}, but fails only "
            f"{sorted(result.failed)}:\n{result.report}"
        )
    for description in broken:
        assert description in result.report


@pytest.mark.parametrize("name", list(COMPATIBLE))
def test_compatible_change_passes(name: str, todays_b: Verification) -> None:
    """A change to B that breaks nobody makes no interaction fail that B as it is passes."""
    result = verify(COMPATIBLE[name])
    new = result.failed - todays_b.failed
    if new:
        pytest.fail(f"altered B {name!r} should pass, but fails {sorted(new)}:\n{result.report}")
