"""`nox -s bench`: B's direct throughput, and A's in front of it, on each candidate transport.

    python -m tests.bench.bench [--duration 5] [--rounds 3] [--transports fast,httpx]

B and A run as real processes (`python -m service_b`, `python -m service_a`, logging at
WARNING) on free ports; wrk drives `GET /items/1` at 4 and 32 connections, directly to B and
through A with each transport (SERVICE_A_TRANSPORT). The table gives requests per second,
p50 and p99, the ratio to B in the same round, and the p50 A adds. The targets, for the
transport A uses by default: at least 0.35 of B's throughput at 32 connections, and at most
1.5 ms added to the p50 at 4. A missed target exits 1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.live import run_service

CONNECTIONS = (4, 32)
PATH = "/items/1"
TARGET_RATIO_AT_32 = 0.35
TARGET_ADDED_P50_AT_4_MS = 1.5
DEFAULT_TRANSPORT = "fast"
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class Measure:
    """One wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float


def _latency_ms(text: str, percentile: str) -> float:
    found = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no {percentile}% latency:\n{text}")
    return float(found[1]) * _UNITS_MS[found[2]]


def wrk(url: str, connections: int, seconds: int) -> Measure:
    """Run wrk against `url`; give requests per second, p50 and p99."""
    # One wrk thread: on two cores a second takes CPU from A and B, and one alone drives far
    # more requests per second than either serves.
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors is not None:
        raise RuntimeError(f"{errors[1]} requests failed:\n{text}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rps is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{text}")
    return Measure(float(rps[1]), _latency_ms(text, "50"), _latency_ms(text, "99"))


def measure(url: str, seconds: int) -> dict[int, Measure]:
    """Warm up, then measure `url` at each number of connections."""
    wrk(url, 4, 1)
    return {connections: wrk(url, connections, seconds) for connections in CONNECTIONS}


def main(argv: list[str] | None = None) -> int:
    """Benchmark; print the table; give the exit status."""
    parser = argparse.ArgumentParser(prog="nox -s bench --", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument("--transports", default="fast,httpx", help="SERVICE_A_TRANSPORT values")
    options = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is not installed: apt-get install wrk (nox -s bench tries itself)\n")
        return 2
    transports = options.transports.split(",")
    rounds: list[dict[str, dict[int, Measure]]] = []
    with tempfile.TemporaryDirectory() as folder:
        b_env = {"SERVICE_B_DATABASE_PATH": str(Path(folder) / "items.sqlite3")}
        quiet = ["--log-level", "warning"]
        with run_service("service_b", env=b_env, args=quiet) as b:
            a_env_base = {"SERVICE_A_SERVICE_B_URL": b.base_url}
            for number in range(options.rounds):
                results = {"B direct": measure(b.base_url + PATH, options.duration)}
                for transport in transports:
                    env = {**a_env_base, "SERVICE_A_TRANSPORT": transport}
                    with run_service("service_a", env=env, args=quiet) as a:
                        results[f"A on {transport}"] = measure(a.base_url + PATH, options.duration)
                rounds.append(results)
                print(f"round {number + 1} of {options.rounds} done", flush=True)  # noqa: T201
                time.sleep(1)
    return report(rounds, transports)


def report(rounds: list[dict[str, dict[int, Measure]]], transports: list[str]) -> int:
    """Print the medians of the rounds, with ratios to B of the same round; check targets."""

    def median(target: str, connections: int, field: str) -> float:
        values: list[float] = [getattr(r[target][connections], field) for r in rounds]
        return statistics.median(values)

    def ratio(target: str, connections: int) -> float:
        return statistics.median(
            r[target][connections].rps / r["B direct"][connections].rps for r in rounds
        )

    def added_p50(target: str, connections: int) -> float:
        return statistics.median(
            r[target][connections].p50_ms - r["B direct"][connections].p50_ms for r in rounds
        )

    header = "target          conns     req/s   p50 ms   p99 ms  ratio  +p50 ms"
    lines = [f"GET {PATH}, median of {len(rounds)} rounds", header]
    lines.extend(
        f"{target:<14} {connections:>5} {median(target, connections, 'rps'):>9.0f} "
        f"{median(target, connections, 'p50_ms'):>8.2f} "
        f"{median(target, connections, 'p99_ms'):>8.2f} "
        f"{ratio(target, connections):>6.2f} {added_p50(target, connections):>8.2f}"
        for target in ["B direct", *(f"A on {t}" for t in transports)]
        for connections in CONNECTIONS
    )
    print("\n".join(lines))  # noqa: T201
    if DEFAULT_TRANSPORT not in transports:
        return 0
    chosen = f"A on {DEFAULT_TRANSPORT}"
    at_32, at_4 = ratio(chosen, 32), added_p50(chosen, 4)
    met = at_32 >= TARGET_RATIO_AT_32 and at_4 <= TARGET_ADDED_P50_AT_4_MS
    print(  # noqa: T201
        f"\ntarget for {chosen}: ratio at 32 >= {TARGET_RATIO_AT_32} (got {at_32:.2f}), "
        f"+p50 at 4 <= {TARGET_ADDED_P50_AT_4_MS} ms (got {at_4:.2f}): "
        f"{'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
