"""Least busy against round robin: A's balancer in front of a fast B and a slow one.

Two scripted Bs on loopback (tests.raw_server), one answering in 2 ms and one in 20 ms;
callers send requests through the balancer as fast as it answers. Round robin is the
balancer with the busy count left out of its choice. Prints, per run, requests per second,
p50 and p99 latency, and how many requests went to the slow B (README, Running several Bs).

    python -m tests.cluster.policy [--runs 5] [--requests 800] [--callers 16]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

import anyio
import httpx

from service_a.balancer import Balancer, Upstream
from service_a.transport import PooledHTTP11Transport
from tests.raw_server import RawServer, Script


def _answer_after(seconds: float) -> Script:
    def script(conn: socket.socket) -> bool:
        time.sleep(seconds)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    return script


class RoundRobin(Balancer):
    """The balancer choosing in turn only, however busy each B is."""

    def order(self, method: str) -> list[Upstream]:
        """Give the Bs in turn order."""
        count = len(self.upstreams)
        return sorted(
            super().order(method),
            key=lambda upstream: (self.upstreams.index(upstream) - self._next) % count,
        )


async def _run(
    policy: type[Balancer], urls: list[str], requests: int, callers: int
) -> tuple[float, float, float]:
    upstreams = [Upstream(url, PooledHTTP11Transport()) for url in urls]
    latencies: list[float] = []
    left = requests
    async with httpx.AsyncClient(
        base_url=urls[0], transport=policy(upstreams, retry_after=5.0), timeout=10
    ) as client:

        async def caller() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                started = time.perf_counter()
                (await client.get("/x")).raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(callers):
                group.start_soon(caller)
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    return requests / elapsed, statistics.median(latencies) * 1000, p99 * 1000


def main(argv: list[str] | None = None) -> None:
    """Run both policies in turn and print a line per run."""
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.policy", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--callers", type=int, default=16)
    options = parser.parse_args(argv)
    fast = RawServer({"/x": _answer_after(0.002)})
    slow = RawServer({"/x": _answer_after(0.020)})
    try:
        for policy in (RoundRobin, Balancer) * options.runs:
            before = len(slow.requests)
            rate, p50, p99 = anyio.run(
                _run, policy, [fast.url, slow.url], options.requests, options.callers
            )
            name = "least busy" if policy is Balancer else "round robin"
            print(  # noqa: T201 - the probe's report
                f"{name:11s} {rate:6.0f} req/s  p50 {p50:5.1f} ms  p99 {p99:5.1f} ms  "
                f"to the slow B: {len(slow.requests) - before}/{options.requests}",
                flush=True,
            )
    finally:
        fast.close()
        slow.close()


if __name__ == "__main__":
    main()
