"""`nox -s contracts`: every contract check, then B and A live on 8000 and 8001.

    python -m tests.contracts.pipeline [--update] [--base REF] [--offline]

1. A's consumer tests regenerate the pact and the sessions; they must equal contracts/pacts
   and contracts/sessions.json (or, with `--update`, they replace them).
2. B's OpenAPI and AsyncAPI files must be current and valid; the pact must fit them, and
   PactFlow's comparator (`opc`, which nox installs with npm) must accept it against both.
   The compatibility gate compares B's contract at `--base` (default HEAD) with B's now.
   A in front of B, both in-process, gets the smoke test (closes no message precedes), and
   B, alone and behind A, plays every session of contracts/sessions.json.
3. B must honour the pact, and altered Bs must fail or pass it as they should.
4. B and A start on 8000 and 8001; the pact is verified against live B through its
   provider-state URL, A in front of B gets a smoke test, and B, alone and behind A,
   plays every session.
5. Both stop; a table of the checks is printed. Any failure exits 1.

Steps 1 and 3 run side by side, in two pytest processes, and step 2 beside them (all after
one another with `--update`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import openapi_spec_validator

from service_b.export_contracts import COMMAND, rendered
from tests.contracts.asyncapi_validation import errors as asyncapi_errors
from tests.contracts.compat import report, run_gate
from tests.contracts.conftest import COMMITTED_PACT, CONTRACTS, PACT_NAME, ROOT
from tests.contracts.failures import Failed, describe, is_a_failure
from tests.contracts.providers import over_the_network, verify_pact
from tests.contracts.sessions import COMMITTED_SESSIONS, SESSIONS_NAME, load, play_all
from tests.contracts.smoke import smoke
from tests.contracts.static_check import ASYNCAPI, OPENAPI, problems
from tests.live import port_is_taken, run_service

B_PORT, A_PORT = 8000, 8001


@dataclass
class Row:
    """One check's line in the closing table."""

    check: str
    interactions: str
    passed: bool
    seconds: float
    broke: list[str] = field(default_factory=list)
    skipped: bool = False


class Skipped(Exception):
    """A check cannot run here (a tool is missing); its row says so, and the run goes on."""


# pytest's `-rf` summary lines: `FAILED tests/x.py::test_y[param] - message`.
PYTEST_FAILED = re.compile(r"^FAILED (\S+)(?: - (.*))?$", re.MULTILINE)


# The contract tests use neither Hypothesis, Schemathesis nor respx: not loading their
# plugins saves each pytest process 1.5 s of imports (python -X importtime).
PYTEST_OPTIONS = [
    *("-p", "no:cacheprovider"),
    *("-p", "no:hypothesispytest"),
    *("-p", "no:schemathesis"),
    *("-p", "no:respx"),
]


def run_pytest(*paths: str, env: dict[str, str] | None = None) -> None:
    """Run pytest on `paths` in a process of its own, its output kept; fail when it fails.

    The output is printed once pytest ends, so two runs side by side do not interleave.
    """
    command = [sys.executable, "-m", "pytest", "-q", "-rf", *PYTEST_OPTIONS, *paths]
    done = subprocess.run(
        command,
        cwd=ROOT,
        # Wide enough that pytest's summary lines keep the names of what failed.
        env={**os.environ, "COLUMNS": "250", **(env or {})},
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    print(f"-- pytest {' '.join(paths)}\n{done.stdout.rstrip()}", flush=True)  # noqa: T201
    if done.returncode:
        failed = [
            f"{test.split('/')[-1]}: {(why or '').strip()}".rstrip(": ")
            for test, why in PYTEST_FAILED.findall(done.stdout)
        ]
        raise Failed(f"pytest {' '.join(paths)} failed", failed or ["see pytest's output above"])


def _interactions(pact: dict[str, Any]) -> dict[str, Any]:
    return {interaction["description"]: interaction for interaction in pact["interactions"]}


def _comparable(pact: dict[str, Any]) -> dict[str, Any]:
    # The Rust core's version is the only part of the file that depends on the machine.
    return {**pact, "metadata": {k: v for k, v in pact["metadata"].items() if k != "pactRust"}}


def consumer_pact(update: bool) -> str:
    """Regenerate the pact from A's consumer tests; compare it with (or write) the committed one."""
    with tempfile.TemporaryDirectory() as folder:
        run_pytest(
            "tests/contracts/test_consumer_http.py",
            "tests/contracts/test_consumer_messages.py",
            "tests/contracts/test_consumer_sessions.py",
            env={"PACT_OUTPUT_DIR": folder},
        )
        generated_text = (Path(folder) / PACT_NAME).read_text()
        sessions_text = (Path(folder) / SESSIONS_NAME).read_text()
    if not COMMITTED_SESSIONS.exists() or COMMITTED_SESSIONS.read_text() != sessions_text:
        if not update:
            raise Failed(
                f"A's consumer tests no longer match {COMMITTED_SESSIONS.relative_to(ROOT)}: "
                "run `nox -s contracts -- --update`, review the diff and commit it",
                [f"{COMMITTED_SESSIONS.relative_to(ROOT)} differs from A's sessions"],
            )
        COMMITTED_SESSIONS.write_text(sessions_text)
    generated = json.loads(generated_text)
    committed: dict[str, Any] = {"interactions": [], "metadata": {}}
    if COMMITTED_PACT.exists():
        committed = json.loads(COMMITTED_PACT.read_text())
    if _comparable(generated) != _comparable(committed):
        if update:
            COMMITTED_PACT.write_text(generated_text)
        else:
            new, old = _interactions(generated), _interactions(committed)
            changes = [f"added {d!r}" for d in new.keys() - old.keys()]
            changes += [f"removed {d!r}" for d in old.keys() - new.keys()]
            changes += [f"changed {d!r}" for d in new.keys() & old.keys() if new[d] != old[d]]
            raise Failed(
                f"A's consumer tests no longer match {COMMITTED_PACT.relative_to(ROOT)} "
                f"({'; '.join(sorted(changes)) or 'metadata'}): "
                "run `nox -s contracts -- --update`, review the diff and commit it",
                sorted(changes) or ["the pact's metadata"],
            )
    return str(len(generated["interactions"]))


def pact_interactions() -> str:
    """Give the number of interactions in the committed pact."""
    return str(len(json.loads(COMMITTED_PACT.read_text())["interactions"]))


def schemas_current() -> str:
    """Check that B's schema files are what B's code generates, and valid documents."""
    stale = [name for name, text in rendered().items() if (CONTRACTS / name).read_text() != text]
    if stale:
        raise Failed(
            f"{', '.join(stale)} out of date with B's code: run `{COMMAND}` and commit", stale
        )
    openapi_spec_validator.validate(json.loads(OPENAPI.read_text()))
    found = asyncapi_errors(json.loads(ASYNCAPI.read_text()))
    if found:
        raise Failed(
            "the AsyncAPI document is not valid AsyncAPI 3.0:\n  " + "\n  ".join(found), found
        )
    return "-"


def pact_fits_schemas() -> str:
    """Check the pact against B's OpenAPI and AsyncAPI documents, without running anything."""
    documents = [json.loads(path.read_text()) for path in (COMMITTED_PACT, OPENAPI, ASYNCAPI)]
    found = problems(*documents)
    if found:
        raise Failed("the pact does not fit B's schemas:\n  " + "\n  ".join(found), found)
    return pact_interactions()


def comparator_command() -> str | None:
    """Give PactFlow's comparator command (`opc`), as nox installed it or on the PATH."""
    return os.environ.get("OPENAPI_PACT_COMPARATOR") or shutil.which("opc")


def comparator_findings(command: str, pact: Path = COMMITTED_PACT) -> tuple[list[str], list[str]]:
    """Run PactFlow's comparator on `pact` against B's documents; give errors and warnings.

    Each finding names the interaction.
    """
    done = subprocess.run(
        [command, "--oas", str(OPENAPI), "--asyncapi", str(ASYNCAPI), str(pact)],
        check=False,
        capture_output=True,
        text=True,
    )
    results = [
        result for line in done.stdout.splitlines() if line.strip() for result in json.loads(line)
    ]
    if not results and done.returncode:
        raise Failed(f"opc failed: {done.stderr.strip()}", [done.stderr.strip() or "opc failed"])
    errors, warnings = [], []
    for result in results:
        where = (result.get("mockDetails") or {}).get("interactionDescription") or "the pact"
        told = f"{where!r}: {result['code']}: {result['message']}"
        if result["type"] == "error":
            errors.append(told)
        elif result["type"] == "warning":
            warnings.append(told)
    return errors, warnings


def pactflow_comparator() -> str:
    """Run PactFlow's openapi-pact-comparator on the pact against both of B's documents.

    It is what PactFlow's bi-directional contract testing runs: an error here is a pact
    PactFlow would refuse. Its warnings (it cannot check `text/plain` bodies) are printed.
    """
    command = comparator_command()
    if command is None:
        raise Skipped("opc not found: `nox -s contracts` installs it with npm (Node.js needed)")
    errors, warnings = comparator_findings(command)
    for warning in warnings:
        print(f"warning: {warning}")  # noqa: T201 - this is a command-line report
    if errors:
        raise Failed("PactFlow's comparator refuses the pact:\n  " + "\n  ".join(errors), errors)
    return pact_interactions()


def compatibility_gate(base: str) -> str:
    """Compare B's contract at `base` with B's contract now; fail on a breaking change A uses."""
    findings = run_gate(base)
    print(report(findings))  # noqa: T201 - this is a command-line report
    failed = [line for line in report(findings).splitlines() if line.startswith("FAILED")]
    if failed:
        names = [line.removeprefix("FAILED").strip() for line in failed]
        raise Failed(f"B's contract breaks what A uses, against {base}", names)
    return f"{len(findings)} changes"


def provider_in_process() -> str:
    """Verify the pact against B in-process, and the altered Bs."""
    run_pytest("tests/contracts/test_provider.py")
    return pact_interactions()


def provider_live() -> str:
    """Verify the pact against live B on 8000, its states set through its own URL."""
    url = f"http://127.0.0.1:{B_PORT}"
    result = verify_pact(COMMITTED_PACT, url, over_the_network(url))
    if not result.passed:
        raise Failed(
            f"live B fails {sorted(result.failed)}:\n{result.report}", sorted(result.failed)
        )
    return str(result.interactions)


async def _smoke_a(url: str) -> list[tuple[str, str | None]]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return [(result.check, result.problem) for result in await smoke(client)]


def smoke_live() -> str:
    """Smoke-test A on 8001 in front of B: HTTP and every WebSocket relay."""
    results = anyio.run(_smoke_a, f"http://127.0.0.1:{A_PORT}")
    failed = [f"{check}: {problem}" for check, problem in results if problem is not None]
    if failed:
        raise Failed("A in front of B fails the smoke test:\n  " + "\n  ".join(failed), failed)
    return f"{len(results)} checks"


async def _smoke_in_process() -> list[tuple[str, str | None]]:
    from service_a import Settings as ASettings  # noqa: PLC0415 - only this step needs A
    from service_a import create_app as create_a  # noqa: PLC0415
    from tests.conftest import B_URL  # noqa: PLC0415
    from tests.contracts.alterations import a_in_front_of  # noqa: PLC0415

    async with a_in_front_of(lambda app: app, create_a(ASettings(service_b_url=B_URL))) as client:
        return [(result.check, result.problem) for result in await smoke(client)]


def smoke_in_process() -> str:
    """Smoke-test A in front of B, both in-process: closes no message precedes, among others.

    The pact holds the closes that follow a message; a close that follows none (the
    stream refusing `interval=0` with 1008, a binary frame on `/ws/echo` with 1003) is
    checked here, before anything starts on a port.
    """
    results = anyio.run(_smoke_in_process)
    failed = [f"{check}: {problem}" for check, problem in results if problem is not None]
    if failed:
        raise Failed("A in front of B fails the smoke test:\n  " + "\n  ".join(failed), failed)
    return f"{len(results)} checks"


def sessions_check(failed: list[str], where: str) -> str:
    """Pass with the number of sessions, or fail naming each failed session and step."""
    if failed:
        raise Failed(f"{where} fails sessions:\n  " + "\n  ".join(failed), failed)
    return f"{len(load())} sessions"


async def _sessions_on_b() -> list[str]:
    from service_b import Settings as BSettings  # noqa: PLC0415 - only this step needs B
    from service_b import create_app as create_b  # noqa: PLC0415
    from tests.contracts.providers import in_process  # noqa: PLC0415

    clients = in_process(lambda: create_b(BSettings(database_path=":memory:")))
    async with clients() as client:
        return await play_all(client, load())


def sessions_in_process() -> str:
    """Play every session of contracts/sessions.json on B in-process."""
    return sessions_check(anyio.run(_sessions_on_b), "B in-process")


async def _sessions_through_a() -> list[str]:
    from service_a import Settings as ASettings  # noqa: PLC0415 - only this step needs A
    from service_a import create_app as create_a  # noqa: PLC0415
    from tests.conftest import B_URL  # noqa: PLC0415
    from tests.contracts.alterations import a_in_front_of  # noqa: PLC0415

    async with a_in_front_of(lambda app: app, create_a(ASettings(service_b_url=B_URL))) as client:
        return await play_all(client, load())


def sessions_through_a_in_process() -> str:
    """Play every session on A in front of B, both in-process."""
    return sessions_check(anyio.run(_sessions_through_a), "A in front of B in-process")


async def _sessions_at(url: str) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return await play_all(client, load())


def sessions_live_b() -> str:
    """Play every session on live B (8000)."""
    return sessions_check(anyio.run(_sessions_at, f"http://127.0.0.1:{B_PORT}"), "live B")


def sessions_live_a() -> str:
    """Play every session on live A (8001) in front of live B."""
    return sessions_check(
        anyio.run(_sessions_at, f"http://127.0.0.1:{A_PORT}"), "live A in front of B"
    )


def run(name: str, check: Callable[[], str], rows: list[Row]) -> list[Row]:
    """Run one check, time it, and add its row; give the rows."""
    print(f"\n== {name}", flush=True)  # noqa: T201 - this is a command-line report
    started = time.perf_counter()
    broke: list[str] = []
    skipped = False
    try:
        interactions, passed = check(), True
    except Skipped as why:
        print(f"SKIPPED: {why}", flush=True)  # noqa: T201
        interactions, passed, skipped, broke = "-", True, True, [str(why)]
    except BaseException as failure:
        # Whatever a check meets, it is the check's failure, reported in its row.
        if not is_a_failure(failure):
            raise
        told = describe(failure)
        print(f"FAILED: {told}", flush=True)  # noqa: T201
        interactions, passed = "-", False
        broke = failure.names if isinstance(failure, Failed) else [told.splitlines()[0]]
    rows.append(Row(name, interactions, passed, time.perf_counter() - started, broke, skipped))
    return rows


def table(rows: list[Row]) -> str:
    """Render the closing table."""
    lines = [f"{'check':<46} {'interactions':>12}  {'result':<6} {'seconds':>7}"]
    for row in rows:
        result = "skip" if row.skipped else "ok" if row.passed else "FAILED"
        lines.append(f"{row.check:<46} {row.interactions:>12}  {result:<6} {row.seconds:>7.1f}")
        lines.extend(f"    {_shortened(what)}" for what in row.broke)
    return "\n".join(lines)


def _shortened(what: str, width: int = 160) -> str:
    line = what.splitlines()[0] if what else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def run_live(rows: list[Row]) -> None:
    """Start B and A on their ports, run the live checks, and stop both."""
    start = "live: start B on 8000 and A on 8001"
    taken = [str(port) for port in (B_PORT, A_PORT) if port_is_taken(port)]
    if taken:
        print(f"\nport {', '.join(taken)} is taken: stop what listens there, then run again")  # noqa: T201
        rows.append(Row(start, "-", False, 0.0, [f"port {', '.join(taken)} is taken"]))
        return
    with tempfile.TemporaryDirectory() as folder, ExitStack() as services:
        b_env = {
            "SERVICE_B_DATABASE_PATH": str(Path(folder) / "items.sqlite3"),
            "SERVICE_B_ENABLE_PACT_PROVIDER_STATES": "true",
        }
        a_env = {"SERVICE_A_SERVICE_B_URL": f"http://127.0.0.1:{B_PORT}"}

        def start_both() -> str:
            # A service that never turns healthy is this row's failure, not a traceback.
            services.enter_context(run_service("service_b", port=B_PORT, env=b_env))
            services.enter_context(run_service("service_a", port=A_PORT, env=a_env))
            return "-"

        if run(start, start_both, rows)[-1].passed:
            run("live: B honours the pact (provider-state URL)", provider_live, rows)
            run("live: smoke test of A in front of B", smoke_live, rows)
            run("live: B plays every session", sessions_live_b, rows)
            run("live: A in front of B plays every session", sessions_live_a, rows)


def main(argv: list[str] | None = None) -> int:
    """Run every contract check; give the exit status."""
    summary = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="nox -s contracts --", description=summary)
    parser.add_argument("--update", action="store_true", help="write the regenerated pact")
    parser.add_argument(
        "--base", default="HEAD", help="git revision of B's agreed contract, for the gate"
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="stop before the live steps (nothing starts on 8000 and 8001)",
    )
    options = parser.parse_args(argv)
    rows: list[Row] = []
    started = time.perf_counter()
    consumer = ("consumer: A's tests regenerate the pact", lambda: consumer_pact(options.update))
    provider = ("provider: B in-process honours the pact", provider_in_process)
    static = [
        ("drift: B's OpenAPI and AsyncAPI files", schemas_current),
        ("static: pact fits B's OpenAPI and AsyncAPI", pact_fits_schemas),
        ("static: PactFlow's comparator on the pact", pactflow_comparator),
        (f"gate: B's contract against {options.base}", lambda: compatibility_gate(options.base)),
        ("smoke: A in front of B, in-process", smoke_in_process),
        ("sessions: B in-process plays every session", sessions_in_process),
        ("sessions: A in front of B, in-process", sessions_through_a_in_process),
    ]

    def in_turn(checks: list[tuple[str, Callable[[], str]]]) -> list[Row]:
        done: list[Row] = []
        for check in checks:
            run(*check, done)
        return done

    if options.update:
        # The provider must verify the pact the consumer tests have just written, and the
        # static checks read it.
        run(*consumer, rows)
        run(*provider, rows)
        in_turn(static)
    else:
        # Two pytest processes on two cores, the static checks beside them (mostly the
        # comparator's Node.js process): the provider verifies the committed pact, which
        # the consumer check proves equal to what A's tests generate.
        with ThreadPoolExecutor(max_workers=3) as pool:
            side_by_side = [pool.submit(run, *check, []) for check in (consumer, provider)]
            side_by_side.append(pool.submit(in_turn, static))
        rows.extend(row for future in side_by_side for row in future.result())
    offline = time.perf_counter() - started
    if not options.offline:
        run_live(rows)
    print(f"\n{table(rows)}\n\neverything but the live steps: {offline:.1f} s (wall clock)")  # noqa: T201
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
