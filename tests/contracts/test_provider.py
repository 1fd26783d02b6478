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
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.contracts.alterations import BREAKING, COMPATIBLE
from tests.contracts.catch_rate import verify
from tests.contracts.providers import (
    NotHonoured,
    Verification,
    check_interval,
    stream_default_interval,
)

#: The breaking changes some interaction of the pact must fail (the others, a close that
#: follows no message, are for the gate and the smoke test: `catch_rate.py` runs them).
IN_THE_PACT = {name: case for name, case in BREAKING.items() if case[1]}
# Verifications at once, each in a process of its own: in threads of one process, B's
# stream ticks waited for the interpreter lock behind the other verifications (0.92 s
# gaps for 0.05 s asked, a false alarm), while processes share only the two cores.
AT_ONCE = 2


def _verify_named(kind: str, name: str) -> Verification:
    """Verify today's B (`kind` "today") or the altered B of that name, in a worker process."""
    if kind == "breaking":
        alteration, only = IN_THE_PACT[name]
        result = verify(alteration, only)
    elif kind == "compatible":
        result = verify(COMPATIBLE[name])
    else:
        result = verify()
    # pact-python's report is a string owned by its C library, which cannot cross processes.
    return replace(result, report=str(result.report), failed={str(d) for d in result.failed})


@dataclass
class Verdicts:
    """Every verification of the module, made side by side: today's B and each altered B."""

    today: Future[Verification]
    breaking: dict[str, Future[Verification]]
    compatible: dict[str, Future[Verification]]


@pytest.fixture(scope="module")
def verdicts() -> Verdicts:
    """Verify today's B and every altered B, side by side, once for the module."""
    # The slowest first (a stream on B's default interval waits two seconds), the rest beside.
    slowest = sorted(IN_THE_PACT, key=lambda name: "stream" not in name)
    with ProcessPoolExecutor(AT_ONCE, mp_context=multiprocessing.get_context("fork")) as pool:
        breaking = {n: pool.submit(_verify_named, "breaking", n) for n in slowest}
        # Leaving the block waits for every verification.
        return Verdicts(
            pool.submit(_verify_named, "today", ""),
            breaking,
            {n: pool.submit(_verify_named, "compatible", n) for n in COMPATIBLE},
        )


@pytest.fixture(scope="module")
def todays_b(verdicts: Verdicts) -> Verification:
    """Give the verification of B as it is, once for the module."""
    return verdicts.today.result()


def test_b_honours_a_pact(todays_b: Verification) -> None:
    """B as it is passes every interaction of A's pact, HTTP and messages."""
    if not todays_b.passed:
        pytest.fail(f"B fails A's pact in {sorted(todays_b.failed)}\n{todays_b.report}")
    assert todays_b.interactions >= 20


@pytest.mark.parametrize("name", list(IN_THE_PACT))
def test_breaking_change_fails_naming_the_interaction(name: str, verdicts: Verdicts) -> None:
    """A change to B that breaks A fails verification, naming at least what it breaks."""
    _, broken = IN_THE_PACT[name]
    result = verdicts.breaking[name].result()
    missed = broken - result.failed
    if missed:
        pytest.fail(
            f"altered B {name!r} should fail {sorted(missed)}, but fails only "
            f"{sorted(result.failed)}:\n{result.report}"
        )
    for description in broken:
        assert description in result.report


def test_a_stream_that_ignores_its_interval_says_so(verdicts: Verdicts) -> None:
    """An update on B's default interval is valid, so B's gaps are what the failure names."""
    result = verdicts.breaking["stream interval renamed"].result()
    assert "a periodic update: /ws/stream?interval=0.05: B's updates came" in result.report
    assert "B did not honour the interval" in result.report


@pytest.mark.parametrize("name", list(COMPATIBLE))
def test_compatible_change_passes(name: str, verdicts: Verdicts, todays_b: Verification) -> None:
    """A change to B that breaks nobody makes no interaction fail that B as it is passes."""
    result = verdicts.compatible[name].result()
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
