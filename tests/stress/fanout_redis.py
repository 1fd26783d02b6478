"""Broadcast delivered per second across two Bs on one Redis, against one B (issue 13).

    python -m tests.stress.run -k fanout_redis

Real processes on free loopback ports: a throwaway redis-server (tests/redis_server.py) and
`python -m service_b` once or twice. `LISTENERS` listeners on /ws/broadcast read every
message; one sender on the first B sends `MESSAGES` messages of 64 bytes as fast as it can.
Three set-ups:

- `one B in-process`: one B without Redis (the default), every listener on it;
- `one B via Redis`: one B with `SERVICE_B_REDIS_URL`, every listener on it (each message
  goes to Redis and back before any listener gets it);
- `two Bs via Redis`: two Bs on the same Redis, half the listeners on each.

A row gives messages delivered per second (listeners x messages / time from the first send
to the last message received); the limit is that every listener gets every message, in
order. There is no speed target: the figures are for the README and the issue's note.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.live import run_service
from tests.redis_server import throwaway_redis
from tests.stress.run import Row

LISTENERS = 100
MESSAGES = 500
PAYLOAD = "x" * 64
DEADLINE_SECONDS = 120.0
OPTIONS = {"max_size": None, "ping_interval": None, "open_timeout": 30}


async def _listen(ws: ClientConnection, messages: int) -> int:
    """Read until `messages` came in order; give how many did."""
    got = 0
    try:
        while got < messages:
            message = await ws.recv()
            if message != f"New message: {got}:{PAYLOAD}":
                break
            got += 1
    except ConnectionClosed:
        pass
    return got


async def _broadcast(urls: list[str], listeners: int, messages: int) -> tuple[list[int], float]:
    """Spread `listeners` over the Bs at `urls`, send from the first; give each count, time."""
    readers = [
        await connect(urls[number % len(urls)] + "/ws/broadcast", **OPTIONS)  # type: ignore[arg-type]
        for number in range(listeners)
    ]
    sender = await connect(urls[0] + "/ws/broadcast", **OPTIONS)  # type: ignore[arg-type]
    try:
        # Every listener hears a first message, so every one is subscribed before the burst.
        await sender.send("ready")
        for ws in readers:
            assert await asyncio.wait_for(ws.recv(), 30) == "New message: ready"
        started = time.monotonic()
        tasks = [asyncio.create_task(_listen(ws, messages)) for ws in readers]
        for number in range(messages):
            await sender.send(f"{number}:{PAYLOAD}")
        done, _ = await asyncio.wait(tasks, timeout=DEADLINE_SECONDS)
        elapsed = time.monotonic() - started
        counts = [task.result() if task in done else 0 for task in tasks]
        for task in tasks:
            task.cancel()
    finally:
        for ws in [*readers, sender]:
            await ws.close()
    return counts, elapsed


def _row(name: str, counts: list[int], elapsed: float) -> Row:
    complete = sum(count == MESSAGES for count in counts)
    rate = sum(counts) / elapsed
    figure = (
        f"{rate:,.0f} msg/s delivered; {complete}/{len(counts)} listeners got all "
        f"{MESSAGES} in order in {elapsed:.1f} s"
    )
    return Row(name, figure, "every listener gets all, in order", ok=complete == len(counts))


def _run(name: str, instances: int, *, redis: bool) -> Row:
    with contextlib.ExitStack() as services:
        env = {"SERVICE_B_DATABASE_PATH": ":memory:"}
        if redis:
            server = services.enter_context(throwaway_redis())
            env["SERVICE_B_REDIS_URL"] = server.url
        bs = [services.enter_context(run_service("service_b", env=env)) for _ in range(instances)]
        urls = [b.base_url.replace("http", "ws", 1) for b in bs]
        counts, elapsed = asyncio.run(_broadcast(urls, LISTENERS, MESSAGES))
    return _row(name, counts, elapsed)


def fanout_redis() -> Iterable[Row]:
    """Broadcast to 100 listeners: one B in-process, one B via Redis, two Bs via Redis."""
    yield _run("fanout_redis one B in-process", 1, redis=False)
    yield _run("fanout_redis one B via Redis", 1, redis=True)
    yield _run("fanout_redis two Bs via Redis", 2, redis=True)


PROBES = [fanout_redis]
