"""Stress probes of A's edge towards B: head cost, relayed sessions, bursts (issue 10).

* `a_head_cost`: what A's client for B spends on a request per caller header, with 1,000
  and with 4,000 headers, against a B double in another process. Linear cost keeps the
  per-header figure flat; httpx's cookie jar made it grow with the count.
* `relay_sessions`: 1,000 idle WebSocket sessions relayed through a real A to a real B
  with their default settings: all must connect, A's RSS per idle session, A's RSS
  after they all closed, against its baseline, and what a second round of as many
  sessions adds to the first round's RSS (memory kept after a close is used again).
* `burst_creates`: 2,000 concurrent `POST /items` through a real A: each is created, or
  refused with 503 and `Retry-After` and never reached B.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import websockets
import websockets.asyncio.client

from service_a import Settings as ASettings
from service_a.b_client import build_client, call_service_b
from tests.live import ServiceProcess, run_service
from tests.raw_server import RawServer, send
from tests.stress.run import Row

SESSIONS = 1_000
SESSION_KIB_LIMIT = 64
RSS_BACK_MIB_LIMIT = 20
#: How much more a second round of `SESSIONS` may take than the first: a leak adds it all.
REUSED_MIB_LIMIT = 10
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


@contextlib.contextmanager
def a_and_b(**a_env: str) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """Run B and A in front of it as processes on free ports, with their defaults."""
    quiet = ["--log-level", "warning"]
    with tempfile.TemporaryDirectory(prefix="edge-relay-") as workdir:
        b_env = {"SERVICE_B_DATABASE_PATH": str(Path(workdir) / "items.sqlite3")}
        with run_service("service_b", env=b_env, args=quiet) as b:
            env = {"SERVICE_A_SERVICE_B_URL": b.base_url, **a_env}
            with run_service("service_a", env=env, args=quiet) as a:
                yield a, b


def rss_kib(pid: int) -> int:
    """Give a process's resident set size in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")  # pragma: no cover - Linux always has it


def open_fds(pid: int) -> int:
    """Give how many file descriptors a process has open."""
    return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())


def wait_for_fds(pid: int, count: int, seconds: float) -> None:
    """Wait until a process has at most `count` descriptors open, or `seconds` passed."""
    deadline = time.monotonic() + seconds
    while open_fds(pid) > count and time.monotonic() < deadline:
        time.sleep(0.1)


async def settled_rss_kib(pid: int, seconds: float = 5.0) -> int:
    """Give the RSS once it stops falling (or after `seconds`): frees land a little late."""
    deadline = time.monotonic() + seconds
    last = rss_kib(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = rss_kib(pid)
        if now >= last:
            return now
        last = now
    return last


async def _open_sessions(
    url: str, count: int
) -> tuple[list[websockets.asyncio.client.ClientConnection], list[str]]:
    """Open `count` echo sessions, each proven by one round trip; give them and the failures."""
    opened: list[websockets.asyncio.client.ClientConnection] = []
    failures: list[str] = []

    async def one(number: int) -> None:
        try:
            ws = await websockets.asyncio.client.connect(url, open_timeout=20)
            await ws.send(f"hi {number}")
            answer = await asyncio.wait_for(ws.recv(), 20)
            if answer != f"Echo: hi {number}":
                failures.append(f"answer {answer!r}")
            opened.append(ws)
        except websockets.InvalidStatus as exc:
            body = exc.response.body.decode(errors="replace") if exc.response.body else ""
            failures.append(f"{exc.response.status_code} {body[:120]}")
        except Exception as exc:  # noqa: BLE001 - every failure is counted, by kind
            failures.append(type(exc).__name__ + ": " + str(exc)[:80])

    batch = 50
    for start in range(0, count, batch):
        await asyncio.gather(*(one(n) for n in range(start, min(start + batch, count))))
    return opened, failures


async def _relay_sessions(a: ServiceProcess) -> list[Row]:
    url = a.base_url.replace("http", "ws", 1) + "/ws/echo"
    pid = a.process.pid
    warm, _ = await _open_sessions(url, 20)  # first sessions load code and caches
    await asyncio.gather(*(ws.close() for ws in warm))
    baseline = await settled_rss_kib(pid)
    baseline_fds = open_fds(pid)
    sessions, failures = await _open_sessions(url, SESSIONS)
    opened = await settled_rss_kib(pid)
    await asyncio.gather(*(ws.close() for ws in sessions))
    # A is done with the sessions once it closed their sockets, both legs.
    await asyncio.to_thread(wait_for_fds, pid, baseline_fds, 30.0)
    after = await settled_rss_kib(pid, 10.0)
    # A second round of as many sessions: memory kept after the first is used again, not
    # added to (a session that leaked would add its whole cost again).
    again, _ = await _open_sessions(url, SESSIONS)
    reopened = await settled_rss_kib(pid)
    await asyncio.gather(*(ws.close() for ws in again))
    await asyncio.to_thread(wait_for_fds, pid, baseline_fds, 30.0)
    per_session = (opened - baseline) / max(len(sessions), 1)
    back = (after - baseline) / 1024
    regrowth = (reopened - opened) / 1024
    first_failure = f"; first failure: {failures[0]}" if failures else ""
    why = [line for line in a.log().splitlines() if "cannot open" in line]
    if why:
        first_failure += f" ({why[0].split(': ', 1)[-1][:160]})"
    return [
        Row(
            "relay_sessions_connected",
            f"{len(sessions)} of {SESSIONS} relayed{first_failure}",
            f"all {SESSIONS}",
            len(sessions) == SESSIONS,
        ),
        Row(
            "relay_session_memory",
            f"{per_session:.0f} KiB per idle session in A "
            f"(RSS {baseline / 1024:.0f} -> {opened / 1024:.0f} MiB)",
            f"<= {SESSION_KIB_LIMIT} KiB",
            per_session <= SESSION_KIB_LIMIT,
        ),
        Row(
            "relay_memory_after_close",
            f"{back:+.1f} MiB over baseline after close ({after / 1024:.0f} MiB)",
            f"<= {RSS_BACK_MIB_LIMIT} MiB",
            back <= RSS_BACK_MIB_LIMIT,
        ),
        Row(
            "relay_memory_reused",
            f"{len(again)} sessions again after the close: RSS {regrowth:+.1f} MiB over the"
            f" first round's ({reopened / 1024:.0f} MiB)",
            f"<= {REUSED_MIB_LIMIT} MiB",
            regrowth <= REUSED_MIB_LIMIT,
        ),
    ]


def relay_sessions() -> Iterator[Row]:
    """1,000 idle sessions through A with its defaults: all relayed, memory per session, after."""
    with a_and_b() as (a, _):
        yield from asyncio.run(_relay_sessions(a))


async def _post(host: str, port: int, body: bytes) -> tuple[int, dict[str, str]]:
    """Send one `POST /items` on a connection of its own; give the status and headers."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            b"POST /items HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%b" % (len(body), body)
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(headers.get("content-length", "0"))
        headers["body"] = (await reader.readexactly(length)).decode(errors="replace")
    finally:
        writer.close()
    return int(lines[0].split(" ", 2)[1]), headers


async def _burst(a: ServiceProcess, b: ServiceProcess) -> list[Row]:
    outcomes: dict[str, int] = {}
    refusals_without_retry_after = 0
    details: list[str] = []

    async def one(number: int) -> None:
        nonlocal refusals_without_retry_after
        body = json.dumps({"name": f"burst {number}"}).encode()
        try:
            code, headers = await _post("127.0.0.1", a.port, body)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            key = type(exc).__name__
        else:
            key = str(code)
            if code == 503 and "retry-after" not in headers:
                refusals_without_retry_after += 1
            if code != 201 and len(details) < 3:
                details.append(f"{code} {headers['body'][:100]}")
        outcomes[key] = outcomes.get(key, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(BURST)))
    elapsed = time.monotonic() - started
    created = outcomes.get("201", 0)
    async with httpx.AsyncClient(base_url=b.base_url) as direct:
        last = (await direct.post("/items", json={"name": "after the burst"})).json()
    why = [line for line in a.log().splitlines() if "unavailable" in line or "Error" in line]
    if why:
        details.insert(0, why[0][-160:])
    reached_b = last["item_data"]["item_id"] - 2  # item 1 is there from the start
    refused = outcomes.get("503", 0)
    ok = created + refused == BURST and reached_b == created and not refusals_without_retry_after
    figure = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))
    if details:
        figure += f" (e.g. {details[0]})"
    return [
        Row(
            "burst_creates",
            f"{BURST} at once in {elapsed:.1f} s: {figure}; {reached_b} reached B",
            "201, or 503 + Retry-After never sent",
            ok,
        )
    ]


def burst_creates() -> Iterator[Row]:
    """2,000 concurrent creates through A with its defaults: created, or refused unsent."""
    with a_and_b() as (a, b):
        yield from asyncio.run(_burst(a, b))


PROBES = [a_head_cost, relay_sessions, burst_creates]
