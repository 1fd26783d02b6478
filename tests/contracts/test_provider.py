"""B verified against A's committed pact, and altered Bs that must fail (or pass) it.

HTTP interactions go to B served by uvicorn on a free port, with provider states set through
B's own provider-state endpoint; WebSocket messages are acted out against B in-process.

Each altered B is today's B with one change. So that a test names its own change and not
another that today's B may carry (a provider team runs these on its own changed B), a
breaking change is verified on the interactions it must break, and each must fail; a
compatible one on every interaction, and must make nothing fail that today's B passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from starlette.types import ASGIApp

from service_b import Settings as BSettings
from service_b import create_app as create_b
from tests.contracts.alterations import BREAKING, COMPATIBLE, Alteration
from tests.contracts.conftest import COMMITTED_PACT
from tests.contracts.providers import (
    NotHonoured,
    Verification,
    check_interval,
    in_process,
    served,
    stream_default_interval,
    verify_pact,
)

VERIFYING = BSettings(database_path=":memory:", enable_pact_provider_states=True)


def _b(alteration: Alteration | None = None) -> Callable[[], ASGIApp]:
    def make() -> ASGIApp:
        app: ASGIApp = create_b(VERIFYING)
        return app if alteration is None else alteration(app)

    return make


def verify(alteration: Alteration | None = None, only: set[str] | None = None) -> Verification:
    """Verify the committed pact (or `only` the interactions named) against B, altered or not."""
    make = _b(alteration)
    with served(make()) as url:
        return verify_pact(COMMITTED_PACT, url, in_process(make), only or ())


@pytest.fixture(scope="module")
def todays_b() -> Verification:
    """Give the verification of B as it is, once for the module."""
    return verify()


def test_b_honours_a_pact(todays_b: Verification) -> None:
    """B as it is passes every interaction of A's pact, HTTP and messages."""
    if not todays_b.passed:
        pytest.fail(f"B fails A's pact in {sorted(todays_b.failed)}\n{todays_b.report}")
    assert todays_b.interactions >= 20


@pytest.mark.parametrize("name", list(BREAKING))
def test_breaking_change_fails_naming_the_interaction(name: str) -> None:
    """A change to B that breaks A fails verification, naming at least what it breaks."""
    alteration, broken = BREAKING[name]
    result = verify(alteration, only=broken)
    missed = broken - result.failed
    if missed:
        pytest.fail(
            f"altered B {name!r} should fail {sorted(missed)}, but fails only "
            f"{sorted(result.failed)}:\n{result.report}"
        )
    for description in broken:
        assert description in result.report


def test_a_stream_that_ignores_its_interval_says_so() -> None:
    """An update on B's default interval is valid, so B's gaps are what the failure names."""
    alteration, broken = BREAKING["stream interval renamed"]
    result = verify(alteration, only=broken)
    assert "a periodic update: /ws/stream?interval=0.05: B's updates came" in result.report
    assert "B did not honour the interval" in result.report


@pytest.mark.parametrize("name", list(COMPATIBLE))
def test_compatible_change_passes(name: str, todays_b: Verification) -> None:
    """A change to B that breaks nobody makes no interaction fail that B as it is passes."""
    result = verify(COMPATIBLE[name])
    new = result.failed - todays_b.failed
    if new:
        pytest.fail(f"altered B {name!r} should pass, but fails {sorted(new)}:\n{result.report}")


def _updates(*offsets: float) -> list[str]:
    start = datetime(2026, 12, 3, tzinfo=UTC)
    return [
        json.dumps({"timestamp": (start + timedelta(seconds=s)).isoformat(), "message": "m"})
        for s in offsets
    ]


@pytest.mark.parametrize(
    "offsets",
    [pytest.param((0, 0.05, 0.1), id="on time"), pytest.param((0, 0.3, 0.35), id="a late tick")],
)
def test_interval_check_passes_updates_nearer_the_asked_interval(
    offsets: tuple[float, ...],
) -> None:
    """Updates 0.05 s apart, or one running late but nearer 0.05 s than 1 s, honour 0.05 s."""
    check_interval(0.05, _updates(*offsets), default=1.0)


@pytest.mark.parametrize(
    "offsets",
    [pytest.param((0, 1.0, 2.0), id="default"), pytest.param((0, 0.05, 1.05), id="one gap")],
)
def test_interval_check_fails_updates_on_the_default(offsets: tuple[float, ...]) -> None:
    """Updates 1 s apart (B's default) for an asked 0.05 s fail, naming the gaps."""
    with pytest.raises(NotHonoured, match=r"came .* s apart by its own timestamps, not 0.05 s"):
        check_interval(0.05, _updates(*offsets), default=1.0)


def test_stream_default_is_read_from_bs_asyncapi_document() -> None:
    """The default the check tells apart is the one B documents for `/ws/stream`."""
    assert 1.0 == stream_default_interval()
