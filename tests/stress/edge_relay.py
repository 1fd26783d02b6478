"""Stress probes of A's edge towards B: head cost, relayed sessions, bursts (issue 10).

* `a_head_cost`: what A's client for B spends on a request per caller header, with 1,000
  and with 4,000 headers, against a B double in another process. Linear cost keeps the
  per-header figure flat; httpx's cookie jar made it grow with the count.
* `relay_sessions`: 1,000 idle WebSocket sessions relayed through a real A to a real B
  with their default settings: all must connect, A's RSS per idle session, and A's RSS
  after they all closed, against its baseline.
* `burst_creates`: 2,000 concurrent `POST /items` through a real A: each is created, or
  refused with 503 and `Retry-After` and never reached B.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio

from service_a import Settings as ASettings
from service_a.b_client import build_client, call_service_b
from tests.raw_server import RawServer, send
from tests.stress.run import Row

SESSIONS = 1_000
SESSION_KIB_LIMIT = 64
RSS_BACK_MIB_LIMIT = 20
BURST = 2_000
HEAD_COUNTS = (1_000, 4_000)
HEAD_RATIO_LIMIT = 2.5  # linear: 1; quadratic: 4

_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


def serve_fixed_answer() -> None:
    """Answer `GET /h` on a free port with a fixed 200 for ever (run in its own process)."""
    server = RawServer({"/h": send(_ANSWER)})
    sys.stdout.write(f"{server.port}\n")
    sys.stdout.flush()
    while True:
        time.sleep(3600)


@contextlib.contextmanager
def fixed_answer_server() -> Iterator[str]:
    """Run `serve_fixed_answer` in a child process; give its URL."""
    code = "from tests.stress.edge_relay import serve_fixed_answer; serve_fixed_answer()"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


async def _head_cost(url: str, count: int, repeat: int = 9) -> float:
    """Give the least CPU seconds one request with `count` caller headers cost A's client."""
    headers = [(b"x-h-%d" % i, b"value-%d" % i) for i in range(count)]
    best = float("inf")
    async with build_client(ASettings(service_b_url=url)) as client:
        for _ in range(repeat):
            started = time.process_time()  # CPU: steadier than wall time on a busy machine
            await call_service_b(client, "GET", "/h", expect={200: None}, headers=headers)
            best = min(best, time.process_time() - started)
    return best


def a_head_cost() -> Iterator[Row]:
    """A's cost per caller header stays flat from 1,000 to 4,000 headers."""
    with fixed_answer_server() as url:
        costs = {count: anyio.run(_head_cost, url, count) for count in HEAD_COUNTS}
    per_header = {count: costs[count] / count * 1e6 for count in HEAD_COUNTS}
    low, high = HEAD_COUNTS
    ratio = per_header[high] / per_header[low]
    figure = ", ".join(
        f"{count}: {costs[count] * 1e3:.1f} ms ({per_header[count]:.1f} us/header)"
        for count in HEAD_COUNTS
    )
    yield Row(
        "a_head_cost",
        f"{figure}; ratio {ratio:.2f}",
        f"ratio <= {HEAD_RATIO_LIMIT}",
        ratio <= HEAD_RATIO_LIMIT,
    )


PROBES = [a_head_cost]
