"""The catch rate: every altered B of `alterations.py` through every check of the pipeline.

    python -m tests.contracts.catch_rate [-k NAME]

Each altered B is today's B with one change, applied as a provider team would meet it: B's
behaviour changes (the ASGI alteration) and so do B's documents, as
`python -m service_b.export_contracts` would regenerate them (`DOCUMENTED`). Each goes
through the checks `nox -s contracts` runs: the static check of the pact against the
altered documents, the compatibility gate from the committed documents to the altered
ones, the pact verified against the altered B in-process, the smoke test of A in front
of the altered B in-process, and the sessions of contracts/sessions.json played on the
altered B in-process. A breaking change is caught when some check fails; a
compatible one passes when none does. The closing lines give both counts.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from starlette.types import ASGIApp

from service_a import Settings as ASettings
from service_a import create_app as create_a
from service_a.relay import RELAYED_PATHS
from service_b import Settings as BSettings
from service_b import create_app as create_b
from tests.conftest import B_URL
from tests.contracts.alterations import BREAKING, COMPATIBLE, DOCUMENTED, Alteration, a_in_front_of
from tests.contracts.compat import a_uses, gate, report
from tests.contracts.conftest import COMMITTED_PACT
from tests.contracts.providers import Verification, in_process, served, verify_pact
from tests.contracts.sessions import load, play_all
from tests.contracts.smoke import smoke
from tests.contracts.static_check import ASYNCAPI, OPENAPI, problems

VERIFYING = BSettings(database_path=":memory:", enable_pact_provider_states=True)


def verify(alteration: Alteration | None = None, only: set[str] | None = None) -> Verification:
    """Verify the committed pact (or `only` the interactions named) against B, altered or not."""

    def make() -> ASGIApp:
        app: ASGIApp = create_b(VERIFYING)
        return app if alteration is None else alteration(app)

    with served(make()) as url:
        return verify_pact(COMMITTED_PACT, url, in_process(make), only or ())


@dataclass
class Outcome:
    """What each check said of one altered B: the problems each found (none: it passed)."""

    name: str
    breaking: bool
    found: dict[str, list[str]]

    @property
    def caught(self) -> bool:
        """Tell whether some check failed."""
        return any(self.found.values())

    @property
    def right(self) -> bool:
        """Tell whether the verdict is the right one: caught if breaking, passed if not."""
        return self.caught == self.breaking


def static_and_gate(name: str) -> dict[str, list[str]]:
    """Run the static check and the gate on B's documents as the altered B regenerates them."""
    openapi, asyncapi = json.loads(OPENAPI.read_text()), json.loads(ASYNCAPI.read_text())
    new_openapi, new_asyncapi = copy.deepcopy(openapi), copy.deepcopy(asyncapi)
    change = DOCUMENTED.get(name)
    if change is not None:
        change(new_openapi, new_asyncapi)
    pact = json.loads(COMMITTED_PACT.read_text())
    a_openapi = create_a(ASettings()).openapi()
    uses = a_uses(pact, a_openapi, new_openapi, frozenset(RELAYED_PATHS))
    findings = gate(openapi, new_openapi, asyncapi, new_asyncapi, uses, a_openapi)
    return {
        "static": problems(pact, new_openapi, new_asyncapi),
        "gate": [line for line in report(findings).splitlines() if line.startswith("FAILED")],
    }


async def _sessions(alteration: Alteration) -> list[str]:
    clients = in_process(lambda: alteration(create_b(BSettings(database_path=":memory:"))))
    async with clients() as client:
        return await play_all(client, load())


def sessions_of(alteration: Alteration) -> list[str]:
    """Play every session of contracts/sessions.json on the altered B in-process."""
    return anyio.run(_sessions, alteration)


async def _smoke(alteration: Alteration) -> list[str]:
    async with a_in_front_of(alteration, create_a(ASettings(service_b_url=B_URL))) as client:
        results = await smoke(client)
    return [f"{r.check}: {r.problem}" for r in results if r.problem is not None]


def outcome(name: str, breaking: bool, alteration: Alteration, today: set[str]) -> Outcome:
    """Run every check on one altered B."""
    found = static_and_gate(name)
    verified = verify(alteration)
    found["provider"] = sorted(verified.failed - today)
    found["smoke"] = anyio.run(_smoke, alteration)
    found["sessions"] = sessions_of(alteration)
    return Outcome(name, breaking, found)


def every_altered_b() -> list[tuple[str, bool, Alteration]]:
    """Give each altered B: its name, whether it breaks A, its alteration."""
    return [(name, True, alteration) for name, (alteration, _) in BREAKING.items()] + [
        (name, False, alteration) for name, alteration in COMPATIBLE.items()
    ]


def render(outcomes: list[Outcome], seconds: float) -> str:
    """Render one line per altered B, what each check found, and the counts."""
    checks = ("static", "gate", "provider", "smoke", "sessions")
    lines = [f"{'altered B':<56} {'kind':<10} " + " ".join(f"{c:<8}" for c in checks) + " verdict"]
    for o in outcomes:
        marks = " ".join(f"{'FAILED' if o.found[c] else 'ok':<8}" for c in checks)
        verdict = (
            ("caught" if o.caught else "MISSED")
            if o.breaking
            else ("passed" if not o.caught else "FALSE ALARM")
        )
        kind = "breaking" if o.breaking else "compatible"
        lines.append(f"{o.name:<56} {kind:<10} {marks} {verdict}")
        lines.extend(
            f"    {check}: {problem.splitlines()[0][:150]}"
            for check in checks
            for problem in o.found[check][:2]
        )
    breaking = [o for o in outcomes if o.breaking]
    compatible = [o for o in outcomes if not o.breaking]
    lines.append(
        f"\nbreaking caught: {sum(o.caught for o in breaking)} of {len(breaking)}; "
        f"compatible passed: {sum(not o.caught for o in compatible)} of {len(compatible)} "
        f"({seconds:.1f} s)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every altered B (or those whose name holds `-k`); exit 1 on a wrong verdict."""
    parser = argparse.ArgumentParser(prog="python -m tests.contracts.catch_rate")
    parser.add_argument("-k", default="", help="only the altered Bs whose name holds this")
    options = parser.parse_args(argv)
    started = time.perf_counter()
    today = verify().failed
    chosen: Callable[[str], bool] = lambda name: options.k in name  # noqa: E731
    outcomes = [
        outcome(name, breaking, alteration, today)
        for name, breaking, alteration in every_altered_b()
        if chosen(name)
    ]
    print(render(outcomes, time.perf_counter() - started))  # noqa: T201 - a report
    return 0 if all(o.right for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
