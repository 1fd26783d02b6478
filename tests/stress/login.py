"""Failed logins per second that one client gets B to check on `/ws/v5/private`.

    python -m tests.stress.login [--seconds 3]

One client opens connection after connection to a real B and sends a login with a wrong
signature on each, as fast as B answers. The figure is how many of those B checked and
answered "Authentication failed" per second, and how many it refused unchecked with
`60014 Requests too frequent`. The limit is B's failure allowance for one client address
(`SERVICE_B_LOGIN_FAILURES_PER_SECOND`, burst `SERVICE_B_LOGIN_FAILURES_BURST`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator

import anyio
import httpx
from httpx_ws import WebSocketDisconnect

from service_b.login_message import login_message
from tests.live import run_service
from tests.stress.run import Row, table
from tests.ws import connect_ws

logger = logging.getLogger(__name__)

#: What B is started with: its defaults, so the figure is what a deployment gets.
RATE = 5.0
BURST = 10


async def hammer(base_url: str, seconds: float) -> Counter[str]:
    """Send wrong logins one connection after another for `seconds`; count the answers."""
    answers: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        while time.monotonic() < deadline:
            login = login_message("abc", "wrong", "p", f"{time.time():.6f}")
            async with connect_ws("/ws/v5/private", client) as ws:
                await ws.send_text(login)
                answer = json.loads(await ws.receive_text(5))
                answers[answer.get("code") or answer.get("message", "?")] += 1
                try:
                    await ws.receive_text(5)
                except WebSocketDisconnect as closed:
                    answers[f"close {closed.code}"] += 1
    return answers


def _row(where: str, answers: Counter[str], seconds: float) -> Row:
    checked = answers["Authentication failed"] / seconds
    refused = answers["60014"] / seconds
    allowed = BURST / seconds + RATE
    return Row(
        f"failed logins, one client, {where}",
        f"{checked:.0f}/s checked, {refused:.0f}/s refused 60014 ({dict(answers)})",
        f"checked <= {allowed:.1f}/s (burst {BURST} + {RATE:g}/s)",
        ok=checked <= allowed,
    )


def failed_logins(seconds: float = 3.0) -> Iterator[Row]:
    """Measure checked and refused failed logins per second from one client, on B and via A."""
    with run_service("service_b", env={"SERVICE_B_DATABASE_PATH": ":memory:"}) as b:
        yield _row("on B", anyio.run(hammer, b.base_url, seconds), seconds)
        with run_service("service_a", env={"SERVICE_A_SERVICE_B_URL": b.base_url}) as a:
            yield _row("through A", anyio.run(hammer, a.base_url, seconds), seconds)


PROBES = [failed_logins]


def main(argv: list[str] | None = None) -> int:
    """Run the probe alone and print its row."""
    parser = argparse.ArgumentParser(prog="python -m tests.stress.login")
    parser.add_argument("--seconds", type=float, default=3.0)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = list(failed_logins(options.seconds))
    sys.stdout.write(table(rows) + "\n")
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
