"""`nox -s fuzz`: Schemathesis and WebSocket fuzzing in-process, then Schemathesis on live B and A.

    python -m tests.fuzz.run [--max-examples N] [--seed S]

The in-process run fuzzes B, and A with B behind it (tests/fuzz). Then B and A start on
8000 and 8001 and `schemathesis run` fuzzes each, with every check and the seed of
tests/fuzz/schemathesis.toml (or `--seed`), so a failure can be replayed. A table of cases,
seconds and cases per second closes the run; any failure exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.conftest import CONFIG_FILE
from tests.live import port_is_taken, run_service

ROOT = Path(__file__).parents[2]
B_PORT, A_PORT = 8000, 8001


@dataclass
class Row:
    """One fuzzing run's line in the closing table."""

    run: str
    cases: int
    seconds: float
    passed: bool

    def render(self) -> str:
        """Give the table line."""
        rate = self.cases / self.seconds if self.seconds else 0.0
        result = "ok" if self.passed else "FAILED"
        return f"{self.run:<40} {self.cases:>7} {self.seconds:>8.1f} {rate:>8.0f}  {result}"


def in_process(budget: int | None, seed: int | None, folder: Path) -> list[Row]:
    """Run tests/fuzz with pytest; give a row per service and one for the WebSockets.

    The budget and the seed reach Schemathesis there (tests/fuzz/conftest.py's `config`)
    through `FUZZ_MAX_EXAMPLES` and `FUZZ_SEED`; the WebSocket sessions take the budget too.
    """
    report = folder / "in-process.json"
    env = {**os.environ, "FUZZ_REPORT": str(report)}
    if budget is not None:
        env["FUZZ_MAX_EXAMPLES"] = str(budget)
    if seed is not None:
        env["FUZZ_SEED"] = str(seed)
    started = time.perf_counter()
    plugins = ["-p", "no:cacheprovider", "-p", "schemathesis"]  # off by default: pyproject.toml
    command = [sys.executable, "-m", "pytest", "-q", *plugins, "tests/fuzz"]
    passed = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode == 0
    elapsed = time.perf_counter() - started
    if not report.exists():
        return [Row("in-process (pytest tests/fuzz)", 0, elapsed, passed=False)]
    figures = json.loads(report.read_text())
    rows = [
        Row(f"in-process HTTP, {title}", cases, seconds, passed)
        for title, (cases, seconds) in sorted(figures["http"].items())
    ]
    sessions = sum(figures["ws"].values())
    http_seconds = sum(seconds for _, seconds in figures["http"].values())
    rows.append(
        Row("in-process WebSockets, B and A (sessions)", sessions, elapsed - http_seconds, passed)
    )
    return rows


def live(name: str, port: int, options: list[str], folder: Path) -> Row:
    """Run `schemathesis run` against the service on `port`; give its row."""
    report = folder / f"{name}.json"
    command = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(CONFIG_FILE),
        "run", f"http://127.0.0.1:{port}/openapi.json",
        "--checks", "all",
        "--workers", "1",  # more workers trip a CPython 3.11 bug in Hypothesis' threads
        "--report", "json", "--report-json-path", str(report),
        "--no-color",
        *options,
    ]  # fmt: skip
    started = time.perf_counter()
    passed = subprocess.run(command, cwd=ROOT, check=False).returncode == 0
    elapsed = time.perf_counter() - started
    cases = 0
    if report.exists():
        figures = json.loads(report.read_text())
        cases, elapsed = figures["test_cases"]["generated"], figures["running_time"]
    return Row(f"live, {name} on {port} (schemathesis run)", cases, elapsed, passed)


def main(argv: list[str] | None = None) -> int:
    """Fuzz both services in-process and live; give the exit status."""
    parser = argparse.ArgumentParser(prog="nox -s fuzz --", description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, help="budget per operation and per test")
    parser.add_argument("--seed", type=int, help="instead of the seed in schemathesis.toml")
    options = parser.parse_args(argv)
    cli = []
    if options.max_examples is not None:
        cli += ["--max-examples", str(options.max_examples)]
    if options.seed is not None:
        cli += ["--seed", str(options.seed)]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        rows = in_process(options.max_examples, options.seed, folder)
        taken = [str(port) for port in (B_PORT, A_PORT) if port_is_taken(port)]
        if taken:
            print(f"port {', '.join(taken)} is taken: stop what listens there, then run again")  # noqa: T201
            rows.append(Row("live: start B on 8000 and A on 8001", 0, 0.0, passed=False))
        else:
            b_env = {"SERVICE_B_DATABASE_PATH": str(folder / "items.sqlite3")}
            a_env = {"SERVICE_A_SERVICE_B_URL": f"http://127.0.0.1:{B_PORT}"}
            with (
                run_service("service_b", port=B_PORT, env=b_env),
                run_service("service_a", port=A_PORT, env=a_env),
            ):
                rows.append(live("B", B_PORT, cli, folder))
                rows.append(live("A", A_PORT, cli, folder))
    header = f"{'run':<40} {'cases':>7} {'seconds':>8} {'cases/s':>8}  result"
    print("\n" + "\n".join([header, *(row.render() for row in rows)]))  # noqa: T201
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
