"""Each altered B's documents, as B would regenerate them, through the static check and gate.

The catch rate (`python -m tests.contracts.catch_rate`) runs every altered B through every
check; this is its part that runs nothing: a breaking change B documents fails the static
check or the gate, naming what breaks, and a compatible one fails neither (no false alarm
from a text A matches by type, nor from a new field).
"""

from __future__ import annotations

import pytest

from tests.contracts.alterations import BEHAVIOUR_ONLY, BREAKING, COMPATIBLE, DOCUMENTED
from tests.contracts.catch_rate import Outcome, render, static_and_gate


def test_every_altered_b_says_how_its_documents_change() -> None:
    """Every altered B has its document change, so the static check and the gate see it."""
    assert set(BREAKING) | set(COMPATIBLE) == set(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(set(BREAKING) - BEHAVIOUR_ONLY))
def test_documented_breaking_change_fails_static_check_or_gate(name: str) -> None:
    """B's documents of a breaking change fail the static check or the gate, naming it."""
    found = static_and_gate(name)
    assert any(found.values()), f"{name!r} passes both the static check and the gate"


@pytest.mark.parametrize("name", sorted(BEHAVIOUR_ONLY))
def test_behaviour_only_change_is_invisible_to_static_check_and_gate(name: str) -> None:
    """What `BEHAVIOUR_ONLY` says is true: only the sessions and the smoke test can see it."""
    assert name in BREAKING
    assert {"static": [], "gate": []} == static_and_gate(name)


@pytest.mark.parametrize("name", list(COMPATIBLE))
def test_documented_compatible_change_passes_static_check_and_gate(name: str) -> None:
    """B's documents of a compatible change pass the static check and the gate."""
    assert {"static": [], "gate": []} == static_and_gate(name)


def test_render_counts_caught_and_passed() -> None:
    """The closing line counts breaking changes caught and compatible ones passed."""
    outcomes = [
        Outcome(
            "b1",
            breaking=True,
            found={"static": ["x"], "gate": [], "provider": [], "smoke": [], "sessions": []},
        ),
        Outcome(
            "b2",
            breaking=True,
            found={"static": [], "gate": [], "provider": [], "smoke": [], "sessions": []},
        ),
        Outcome(
            "c1",
            breaking=False,
            found={"static": ["y"], "gate": [], "provider": [], "smoke": [], "sessions": []},
        ),
    ]
    rendered = render(outcomes, 1.0)
    assert "breaking caught: 1 of 2; compatible passed: 0 of 1" in rendered
    assert "MISSED" in rendered
    assert "FALSE ALARM" in rendered
