"""Probes of B's fan-out on /ws/broadcast, directly on B and through A (issue 11).

100 listeners read every message; one more listener never reads; one sender sends 2,000
messages of about 4 KiB as fast as it can. The limit: every reading listener gets all 2,000,
in order, and is not closed; the one that never reads is closed by B with 1013.

The messages are 4 KiB because a socket that is not read absorbs about 4 MB on Linux
loopback (measured: 3,943,424 bytes before a non-blocking send would block) before B can
see that its client stopped reading; 2,000 messages of 4 KiB (8 MiB) exceed that, smaller
ones may not (the README says so). But B negotiates permessage-deflate, and `"x" * 4096`
crosses the wire in a few bytes: so `fanout_stalled` sends incompressible text instead, and
reports when B closed a listener that never calls `recv`, for 200-byte and 4 KiB messages.

The never-reading listener learns of its close only when it reads again, after the burst;
whether B's close frame is still in its stream by then depends on how long B waited to
write it (the send timeout). So the probe reports what B logged for it, with the time,
and what the client saw.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.live import ServiceProcess, run_service
from tests.stress.run import Row

LISTENERS = 100
MESSAGES = 2000
PAYLOAD = "x" * 4096
#: How long the burst may take to reach every listener before the probe gives up.
DEADLINE_SECONDS = 120.0
B_ENV = {"SERVICE_B_DATABASE_PATH": ":memory:"}
#: B's default SERVICE_B_WS_SEND_TIMEOUT_SECONDS, which the stalled-reader probe keeps.
DEFAULT_SEND_TIMEOUT = 10.0

_B_CLOSE = re.compile(
    r"^(?P<at>\S+ \S+) INFO service_\w\.\w+: closing WebSocket /ws/broadcast "
    r"with (?P<code>\d+): (?P<reason>.*)$",
    re.MULTILINE,
)


@dataclass
class Heard:
    """What one listener got: messages in order, and the close code if it was closed."""

    in_order: int = 0
    close_code: int | None = None


@dataclass(frozen=True)
class Scenario:
    """How many listeners, how many messages of what size, and whether one never reads."""

    listeners: int = LISTENERS
    messages: int = MESSAGES
    payload: str = PAYLOAD
    stalled: bool = True


async def _listen(ws: ClientConnection, heard: Heard, messages: int) -> None:
    try:
        while heard.in_order < messages:
            message = await ws.recv()
            if not isinstance(message, str) or not message.startswith(
                f"New message: {heard.in_order}:"
            ):
                return
            heard.in_order += 1
    except ConnectionClosed as closed:
        heard.close_code = closed.rcvd.code if closed.rcvd else 1006


async def _drain(ws: ClientConnection) -> tuple[int, int | None]:
    """Read what the stalled listener was sent: how many messages, then the close code."""
    count = 0
    try:
        async with asyncio.timeout(30):
            while True:
                await ws.recv()
                count += 1
    except ConnectionClosed as closed:
        return count, closed.rcvd.code if closed.rcvd else 1006
    except TimeoutError:
        return count, None


async def _burst(
    ws_url: str, scenario: Scenario
) -> tuple[list[Heard], tuple[int, int | None], float, float]:
    """Run the scenario; give each listener's result, the stalled one's, start and time."""
    url = ws_url + "/ws/broadcast"
    options = {"max_size": None, "ping_interval": None, "open_timeout": 30}
    listeners = [await connect(url, **options) for _ in range(scenario.listeners)]  # type: ignore[arg-type]
    stalled = await connect(url, max_queue=1, **options)  # type: ignore[arg-type]
    if not scenario.stalled:
        await stalled.close()
    sender = await connect(url, **options)  # type: ignore[arg-type]
    try:
        # Every listener hears a first message, so every one is subscribed before the burst.
        await sender.send("ready")
        for ws in listeners:
            assert await asyncio.wait_for(ws.recv(), 30) == "New message: ready"
        heard = [Heard() for _ in listeners]
        started_wall = time.time()
        started = time.monotonic()
        tasks = [
            asyncio.create_task(_listen(ws, h, scenario.messages))
            for ws, h in zip(listeners, heard, strict=True)
        ]
        for number in range(scenario.messages):
            await sender.send(f"{number}:{scenario.payload}")
        await asyncio.wait(tasks, timeout=DEADLINE_SECONDS)
        elapsed = time.monotonic() - started
        for task in tasks:
            task.cancel()
        stalled_result = await _drain(stalled) if scenario.stalled else (0, None)
    finally:
        for ws in [*listeners, stalled, sender]:
            await ws.close()
    return heard, stalled_result, started_wall, elapsed


def _b_closes(log: str, started_wall: float) -> str:
    """Summarise the 1013 closes B logged on /ws/broadcast: how many, when, and why."""
    closes = [m for m in _B_CLOSE.finditer(log) if m["code"] == "1013"]
    if not closes:
        return "B logged no 1013"
    first = datetime.strptime(closes[0]["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # noqa: DTZ007 - B logs local time, as time.time() is read here
    return (
        f"B logged {len(closes)} x 1013 ({closes[0]['reason']!r}, first at "
        f"+{first - started_wall:.1f} s)"
    )


def _readers_row(probe: str, scenario: Scenario, heard: list[Heard], elapsed: float) -> Row:
    counts = [h.in_order for h in heard]
    codes = Counter(h.close_code for h in heard if h.close_code is not None)
    complete = sum(1 for count in counts if count == scenario.messages)
    figure = (
        f"{complete}/{scenario.listeners} got all {scenario.messages} in order "
        f"(min {min(counts)}), closed {dict(codes) or 'none'}, {elapsed:.1f} s, "
        f"{sum(counts) / elapsed:,.0f} msg/s delivered"
    )
    limit = f"{scenario.listeners} x {scenario.messages} in order, none closed"
    return Row(probe, figure, limit, ok=complete == scenario.listeners and not codes)


def _stalled_row(probe: str, stalled: tuple[int, int | None], b_closes: str) -> Row:
    return Row(
        probe,
        f"read {stalled[0]} after the burst, then close {stalled[1]}; {b_closes}",
        "closed 1013 by B",
        ok=b_closes.startswith("B logged 1 x 1013"),
    )


def _run(probe: str, scenario: Scenario, *, through_a: bool) -> Iterable[Row]:
    with contextlib.ExitStack() as services:
        b = services.enter_context(run_service("service_b", env=B_ENV))
        target = b
        if through_a:
            # A relays each WebSocket session on a connection of its pool to B: room for all.
            pool = str(2 * (scenario.listeners + 2))
            env = {"SERVICE_A_SERVICE_B_URL": b.base_url, "SERVICE_A_MAX_CONNECTIONS": pool}
            target = services.enter_context(run_service("service_a", env=env))
        url = target.base_url.replace("http", "ws", 1)
        heard, stalled, started_wall, elapsed = asyncio.run(_burst(url, scenario))
        log = b.log()
    yield _readers_row(probe + " readers", scenario, heard, elapsed)
    if scenario.stalled:
        yield _stalled_row(probe + " stalled", stalled, _b_closes(log, started_wall))


def fanout_direct() -> Iterable[Row]:
    """100 listeners, one stalled listener and one sender of 2,000 x 4 KiB, directly on B."""
    yield from _run("fanout_direct", Scenario(), through_a=False)


def fanout_through_a() -> Iterable[Row]:
    """Run the same through A, which relays each of the 102 sessions to B."""
    yield from _run("fanout_through_a", Scenario(), through_a=True)


#: Small messages, so the cost is per message: how it grows with the number of listeners.
SCALING = (10, 100, 1000)


def fanout_scaling() -> Iterable[Row]:
    """Messages delivered per second to 10, 100 and 1,000 listeners, on B and through A."""
    for through_a in (False, True):
        for listeners in SCALING:
            scenario = Scenario(listeners=listeners, messages=200, payload="x" * 64, stalled=False)
            where = "through A" if through_a else "on B"
            yield from _run(f"fanout_scaling {listeners} {where}", scenario, through_a=through_a)


#: Message sizes for the stalled-reader probe (of incompressible text): within the socket
#: buffers for long, and not.
STALL_PAYLOADS = (200, 4096)
#: How long the stalled-reader probe waits for a 1013: past uvicorn's ping timeout (40 s).
STALL_SECONDS = 60.0


def _incompressible(size: int) -> str:
    """Give `size` characters that permessage-deflate (on by default in B) hardly shrinks.

    `"x" * 4096` goes over the wire in a few bytes, so it never fills a socket buffer.
    """
    return base64.b64encode(random.Random(size).randbytes(size))[:size].decode()


def _first_close(log: str, started_wall: float) -> tuple[float, str] | None:
    """Give when (seconds after `started_wall`) and why the first 1013 in `log` was sent."""
    for match in _B_CLOSE.finditer(log):
        if match["code"] == "1013":
            at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # noqa: DTZ007 - local time, as time.time()
            return at - started_wall, match["reason"]
    return None


async def _stall(ws_url: str, payload: str, logs: list[ServiceProcess]) -> tuple[float, ...]:
    """Send to a reader and to one that never calls `recv`, until a 1013 is logged.

    Gives up after `STALL_SECONDS`. Gives the start, the messages sent, how many the stalled
    reader read afterwards and the close code it then saw.
    """
    url = ws_url + "/ws/broadcast"
    async with (
        connect(url, max_size=None, ping_interval=None) as listener,
        connect(url, max_size=None, ping_interval=None) as stalled,  # default max_queue
        connect(url, max_size=None, ping_interval=None) as sender,
    ):
        started_wall, started, sent = time.time(), time.monotonic(), 0
        while time.monotonic() - started < STALL_SECONDS:
            # Paced by the listener: as fast as a reader that keeps up takes them.
            await sender.send(f"{sent}:{payload}")
            await listener.recv()
            sent += 1
            if sent % 100 == 0 and any(
                _first_close(service.log(), started_wall) for service in logs
            ):
                break
        read, code = await _drain(stalled)
    return started_wall, sent, read, code if code is not None else 0


def _stalled_reader(probe: str, *, through_a: bool) -> Iterable[Row]:
    for size in STALL_PAYLOADS:
        with contextlib.ExitStack() as services:
            b = services.enter_context(run_service("service_b", env=B_ENV))
            target = b
            if through_a:
                env = {"SERVICE_A_SERVICE_B_URL": b.base_url}
                target = services.enter_context(run_service("service_a", env=env))
            url = target.base_url.replace("http", "ws", 1)
            logs = [b, target] if through_a else [b]
            started_wall, sent, read, code = asyncio.run(_stall(url, _incompressible(size), logs))
            closes = [_first_close(service.log(), started_wall) for service in logs]
        first = min((c for c in closes if c is not None), default=None)
        when = (
            f"1013 sent at +{first[0]:.1f} s ({first[1]!r})"
            if first
            else f"no 1013 in {STALL_SECONDS:.0f} s"
        )
        figure = f"{size} B: {when}; {sent} sent, it read {read} after, then close {code}"
        ok = first is not None and first[0] < DEFAULT_SEND_TIMEOUT + 5 and code == 1013
        yield Row(f"{probe} {size} B", figure, "1013 within the send timeout (10 s)", ok=ok)


def fanout_stalled() -> Iterable[Row]:
    """Time to close a reader that stops reading, for 200-byte and 4 KiB messages, on B."""
    yield from _stalled_reader("fanout_stalled on B", through_a=False)


def fanout_stalled_through_a() -> Iterable[Row]:
    """Run the same through A, which reads B's messages: A's client is the stalled one."""
    yield from _stalled_reader("fanout_stalled through A", through_a=True)


PROBES = [
    fanout_direct,
    fanout_through_a,
    fanout_scaling,
    fanout_stalled,
    fanout_stalled_through_a,
]
