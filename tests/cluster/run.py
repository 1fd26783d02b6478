"""`nox -s cluster`: two Bs on PostgreSQL and Redis, A in front of both, checked across instances.

Starts a throwaway PostgreSQL (tests.postgres) and a redis-server on free ports, B on 8000
and 8002 sharing both, and A on 8001 in front of the two (`SERVICE_A_SERVICE_B_URL` a list),
all as real processes. Then it checks what only several instances can get wrong:

- a broadcast from a client of one B reaches a client of the other, directly and through A;
- an item created through one B is read through the other, and pushed to a logged-in
  `items` subscriber of the other;
- with one B killed, A keeps answering through the other, and a relayed client of the
  killed B, closed by A, reconnects through A to the live B.

It prints a table of the checks, then the figures: `GET /items/1` and `POST /items` per
second on PostgreSQL against SQLite (one B each, wrk when installed, else httpx), and
broadcast messages delivered per second with the listeners on one B against spread over
two. Everything is stopped at the end, on a failure and on Ctrl+C too; nothing is left
listening on 8000, 8001 or 8002. The exit status is 1 when a check failed (2 when the
cluster could not be started, a port being taken for one).

    python -m tests.cluster.run [--seconds 3] [--listeners 20] [--messages 200]
                                [--ports 8000,8001,8002] [--no-figures]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
from httpx_ws import AsyncWebSocketSession, aconnect_ws

from service_b.login_message import login_message
from tests.live import ServiceProcess, free_port, port_is_taken, run_service
from tests.postgres import PostgresUnavailable, throwaway_postgres

logger = logging.getLogger("cluster")

B_PORTS = (8000, 8002)
A_PORT = 8001
HOST = "127.0.0.1"
#: How long a check waits for what it expects to arrive.
WAIT_SECONDS = 5.0
REDIS_START_SECONDS = 10.0


class ClusterError(RuntimeError):
    """The cluster could not be started."""


@dataclass
class Cluster:
    """The running processes: B1 and B2, A in front of both, and the engines' URLs."""

    bs: list[ServiceProcess]
    a: ServiceProcess
    database_url: str
    redis_url: str

    def b_url(self, index: int, scheme: str = "http") -> str:
        """Give B number `index`'s URL."""
        return f"{scheme}://{HOST}:{self.bs[index].port}"

    def a_url(self, scheme: str = "http") -> str:
        """Give A's URL."""
        return f"{scheme}://{HOST}:{self.a.port}"


@dataclass
class Report:
    """The checks' results and the figures, printed as tables."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether a check failed."""
        return any(not ok for _, ok, _ in self.checks)

    def print(self) -> None:
        """Print both tables (Markdown)."""
        lines = ["", "| check | result |", "|---|---|"]
        lines += [
            f"| {name} | {'PASS' if ok else 'FAIL'}{': ' + detail if detail else ''} |"
            for name, ok, detail in self.checks
        ]
        if self.figures:
            lines += ["", "| figure | value |", "|---|---|"]
            lines += [f"| {name} | {value} |" for name, value in self.figures]
        print("\n".join(lines))  # noqa: T201 - the runner's report


# --------------------------------------------------------------------------- #
# Starting and stopping
# --------------------------------------------------------------------------- #
def check_ports_free(ports: tuple[int, ...]) -> None:
    """Fail at once, naming them, when any of `ports` is taken."""
    taken = [port for port in ports if port_is_taken(port)]
    if taken:
        raise ClusterError(
            f"port(s) {', '.join(map(str, taken))} already in use: stop what listens there "
            "(`ss -ltnp`), then run nox -s cluster again"
        )


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Run a redis-server on a free loopback port, no persistence; give its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ClusterError("redis-server is missing: apt-get install redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cluster-redis-") as workdir:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", workdir, "--logfile", str(Path(workdir) / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + REDIS_START_SECONDS
            while not _redis_answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise ClusterError(f"redis-server did not start on port {port}")
                time.sleep(0.05)
            yield f"redis://{HOST}:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _redis_answers(port: int) -> bool:
    import socket  # noqa: PLC0415 - only here

    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_cluster(stack: contextlib.ExitStack, b_ports: tuple[int, int], a_port: int) -> Cluster:
    """Start PostgreSQL, Redis, the two Bs and A; `stack` stops them all when it closes."""
    check_ports_free((*b_ports, a_port))
    try:
        postgres = stack.enter_context(throwaway_postgres())
    except PostgresUnavailable as exc:
        raise ClusterError(str(exc)) from exc
    database_url = postgres.create_database()
    redis_url = stack.enter_context(redis_server())
    b_env = {
        "SERVICE_B_DATABASE_URL": database_url,
        "SERVICE_B_REDIS_URL": redis_url,
        # Every relayed login reaches B from A's address: keep them all checked.
        "SERVICE_B_LOGIN_FAILURES_BURST": "1000",
    }
    bs = [stack.enter_context(run_service("service_b", port=port, env=b_env)) for port in b_ports]
    a_env = {
        "SERVICE_A_SERVICE_B_URL": ",".join(f"http://{HOST}:{port}" for port in b_ports),
        "SERVICE_A_B_RETRY_AFTER_SECONDS": "2",
    }
    a = stack.enter_context(run_service("service_a", port=a_port, env=a_env))
    return Cluster(bs, a, database_url, redis_url)


# --------------------------------------------------------------------------- #
# The checks
# --------------------------------------------------------------------------- #
def ws(
    url: str, client: httpx.AsyncClient
) -> contextlib.AbstractAsyncContextManager[AsyncWebSocketSession]:
    """Open a WebSocket session at `url`."""
    return aconnect_ws(url, client, session_class=AsyncWebSocketSession)


async def _receive_until(session: AsyncWebSocketSession, wanted: Callable[[str], bool]) -> bool:
    """Receive texts until one is `wanted` (True), or WAIT_SECONDS pass (False)."""
    with anyio.move_on_after(WAIT_SECONDS):
        while True:
            if wanted(await session.receive_text()):
                return True
    return False


async def broadcast_across(client: httpx.AsyncClient, sender: str, listeners: list[str]) -> str:
    """Send one broadcast from a client at `sender`; give "" when each listener got it."""
    text = f"cluster-{uuid.uuid4().hex[:8]}"
    expected = f"New message: {text}"
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(ws(url, client)) for url in listeners]
        speaker = await stack.enter_async_context(ws(sender, client))
        await speaker.send_text(text)
        got = [await _receive_until(session, expected.__eq__) for session in sessions]
    missed = [url for url, ok in zip(listeners, got, strict=True) if not ok]
    return f"not received at {', '.join(missed)}" if missed else ""


@contextlib.asynccontextmanager
async def ws_quietly_closed(
    url: str, client: httpx.AsyncClient
) -> AsyncIterator[AsyncWebSocketSession]:
    """Open a WebSocket session at `url`; whatever its close raises (its peer died) is dropped."""
    opened = ws(url, client)
    session = await opened.__aenter__()
    try:
        yield session
    finally:
        with contextlib.suppress(Exception):
            await opened.__aexit__(None, None, None)


def describe(exc: BaseException) -> str:
    """Name `exc`, or the exceptions an exception group holds, leaves only."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def _login() -> str:
    return login_message("abc", "def", "cluster", f"{time.time():.6f}")


async def item_across(client: httpx.AsyncClient, c: Cluster) -> tuple[str, str]:
    """Create an item through B1; give what is wrong reading it, and its push, on B2."""
    name = f"cluster item {uuid.uuid4().hex[:8]}"
    async with ws(f"{c.b_url(1, 'ws')}/ws/v5/private", client) as private:
        await private.send_text(_login())
        logged = json.loads(await private.receive_text())
        if logged != {"event": "login", "success": True}:
            return f"login on B2 answered {logged}", "no subscriber"
        await private.send_text(json.dumps({"op": "subscribe", "args": [{"channel": "items"}]}))
        await private.receive_text()  # the subscribe answer
        created = await client.post(f"{c.b_url(0)}/items", json={"name": name})
        if created.status_code != 201:
            return f"POST on B1 answered {created.status_code}", "nothing created"
        item_id = created.json()["item_data"]["item_id"]
        read = await client.get(f"{c.b_url(1)}/items/{item_id}")
        read_problem = ""
        if read.status_code != 200 or read.json().get("name") != name:
            read_problem = f"GET /items/{item_id} on B2 answered {read.status_code} {read.text}"

        def pushed(text: str) -> bool:
            message = json.loads(text)
            data = message.get("data") or [{}]
            return bool(message.get("action") == "created" and data[0].get("item_id") == item_id)

        push_problem = "" if await _receive_until(private, pushed) else "no push on B2"
    return read_problem, push_problem


async def a_outlives_a_b(client: httpx.AsyncClient, c: Cluster) -> tuple[str, str]:
    """Kill B1; give what is wrong with A's answers, and with its relayed clients after."""
    async with contextlib.AsyncExitStack() as stack:
        # Two sessions through A: one on each B (the least busy B takes the next session).
        echo = f"{c.a_url('ws')}/ws/echo"
        relayed = [await stack.enter_async_context(ws_quietly_closed(echo, client)) for _ in c.bs]
        for session in relayed:
            await session.send_text("before")
            await session.receive_text()
        c.bs[0].kill()
        answers = [(await client.get(f"{c.a_url()}/items/1")).status_code for _ in range(10)]
        http_problem = "" if answers == [200] * 10 else f"A answered {answers}"
        closed = 0
        for session in relayed:
            try:
                await session.send_text("after")
                with anyio.fail_after(WAIT_SECONDS):
                    await session.receive_text()
            except Exception:  # noqa: BLE001 - closed, whichever way httpx-ws tells it
                closed += 1
    problems = []
    if closed != 1:
        problems.append(f"{closed} of the 2 relayed sessions were closed, not 1")
    for attempt in range(3):  # the closed client reconnects; each must reach the live B
        try:
            async with ws(f"{c.a_url('ws')}/ws/echo", client) as again:
                await again.send_text(f"again {attempt}")
                if await again.receive_text() != f"Echo: again {attempt}":
                    problems.append("a reconnected session did not echo")
        except Exception as exc:  # noqa: BLE001 - reported in the table
            problems.append(f"reconnect {attempt} failed: {exc!r}")
    return http_problem, "; ".join(problems)


async def run_checks(c: Cluster, report: Report) -> None:
    """Run every cross-instance check, recording each in `report`."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def check(name: str, step: Awaitable[str]) -> None:
            try:
                problem = await step
            except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed check
                problem = describe(exc)
            report.checks.append((name, not problem, problem))

        b0, b1, a = c.b_url(0, "ws"), c.b_url(1, "ws"), c.a_url("ws")
        await check(
            "broadcast from a client of B1 reaches a client of B2",
            broadcast_across(client, f"{b0}/ws/broadcast", [f"{b1}/ws/broadcast"]),
        )
        await check(
            "broadcast through A reaches A's clients on both Bs",
            broadcast_across(client, f"{a}/ws/broadcast", [f"{a}/ws/broadcast"] * 2),
        )
        try:
            read_problem, push_problem = await item_across(client, c)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            read_problem = push_problem = describe(exc)
        report.checks.append(
            ("item created through B1 is read through B2", not read_problem, read_problem)
        )
        report.checks.append(
            ("item created through B1 is pushed to a subscriber of B2",
             not push_problem, push_problem)
        )  # fmt: skip
        try:
            status = (await client.get(f"{c.a_url()}/status")).json()
            each = [b.get("status") for b in status.get("service_bs", [])]
            problem = "" if each == ["ok", "ok"] else f"{status}"
        except Exception as exc:  # noqa: BLE001 - reported in the table
            problem = describe(exc)
        report.checks.append(("A's /status reports both Bs ok", not problem, problem))


async def run_kill_checks(c: Cluster, report: Report) -> None:
    """Kill B1 and check A goes on through B2 (last: it leaves one B)."""
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            http_problem, relay_problem = await a_outlives_a_b(client, c)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            http_problem = relay_problem = describe(exc)
        report.checks.append(
            ("B1 killed: A answers GET /items/1 through B2", not http_problem,
             http_problem)
        )  # fmt: skip
        report.checks.append(
            ("B1 killed: its relayed client is closed and reconnects to B2",
             not relay_problem, relay_problem)
        )  # fmt: skip
        try:
            status = await client.get(f"{c.a_url()}/status")
            each = [b.get("status") for b in status.json().get("service_bs", [])]
            ok = status.status_code == 200 and each == ["unavailable", "ok"]
            problem = "" if ok else f"{status.status_code} {status.text}"
        except Exception as exc:  # noqa: BLE001 - reported in the table
            problem = describe(exc)
        report.checks.append(
            ("B1 killed: A's /status says so, and is still ok", not problem, problem)
        )


# --------------------------------------------------------------------------- #
# The figures
# --------------------------------------------------------------------------- #
_POST_LUA = """wrk.method = "POST"
wrk.body = '{"name": "load"}'
wrk.headers["Content-Type"] = "application/json"
"""


def throughput(url: str, method: str, seconds: float, connections: int = 16) -> float:
    """Give requests per second of `method url` for `seconds` (2xx only, wrk or httpx)."""
    wrk = shutil.which("wrk")
    if wrk is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write(_POST_LUA if method == "POST" else "")
            script.flush()
            out = subprocess.run(
                [wrk, "-t2", f"-c{connections}", f"-d{max(int(seconds), 1)}s", "-s",
                 script.name, url],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
        if "Non-2xx" in out:
            raise RuntimeError(f"wrk saw error answers from {url}:\n{out}")
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if match is None:
            raise RuntimeError(f"wrk printed no rate:\n{out}")
        return float(match.group(1))
    return anyio.run(_httpx_throughput, url, method, seconds, connections)


async def _httpx_throughput(url: str, method: str, seconds: float, connections: int) -> float:
    done = 0
    async with httpx.AsyncClient(timeout=10) as client:
        deadline = anyio.current_time() + seconds

        async def worker() -> None:
            nonlocal done
            while anyio.current_time() < deadline:
                body = {"name": "load"} if method == "POST" else None
                answer = await client.request(method, url, json=body)
                answer.raise_for_status()
                done += 1

        started = anyio.current_time()
        async with anyio.create_task_group() as group:
            for _ in range(connections):
                group.start_soon(worker)
        return done / (anyio.current_time() - started)


async def broadcast_rate(
    client: httpx.AsyncClient, sender: str, listeners: list[str], messages: int
) -> tuple[float, int, int]:
    """Send `messages` broadcasts from `sender`; give delivered per second, delivered, expected.

    Delivery ends when every listener has every message, or WAIT_SECONDS after the last
    delivery (what a listener never got is not waited for).
    """
    delivered = 0
    last = anyio.current_time()
    tag = uuid.uuid4().hex[:6]
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(ws(url, client)) for url in listeners]
        speaker = await stack.enter_async_context(ws(sender, client))
        await speaker.send_text(f"{tag} ready")  # each listener is in before the clock starts
        async with anyio.create_task_group() as group:
            for session in sessions:
                group.start_soon(_receive_until, session, f"New message: {tag} ready".__eq__)
        started = anyio.current_time()

        async def listen(session: AsyncWebSocketSession) -> None:
            nonlocal delivered, last
            got = 0
            while got < messages:
                with anyio.move_on_after(WAIT_SECONDS) as idle:
                    text = await session.receive_text()
                if idle.cancelled_caught:
                    return
                if text.startswith(f"New message: {tag} "):
                    got += 1
                    delivered += 1
                    last = anyio.current_time()

        async with anyio.create_task_group() as group:
            for session in sessions:
                group.start_soon(listen, session)
            for number in range(messages):
                await speaker.send_text(f"{tag} {number}")
    elapsed = max(last - started, 1e-9)
    return delivered / elapsed, delivered, messages * len(listeners)


async def broadcast_figures(c: Cluster, listeners: int, messages: int) -> list[tuple[str, str]]:
    """Give broadcast delivered per second, all listeners on one B against spread over two."""
    b0, b1 = f"{c.b_url(0, 'ws')}/ws/broadcast", f"{c.b_url(1, 'ws')}/ws/broadcast"
    figures = []
    async with httpx.AsyncClient(timeout=10) as client:
        for what, urls in (
            ("one B (B1)", [b0] * listeners),
            ("two Bs (B1, B2)", [b0, b1] * (listeners // 2)),
        ):
            rate, delivered, expected = await broadcast_rate(client, b0, urls, messages)
            figures.append(
                (
                    f"broadcast delivered/s, {len(urls)} listeners on {what}, sender on B1",
                    f"{rate:,.0f} ({delivered:,} of {expected:,} delivered)",
                )
            )
    return figures


def store_figures(c: Cluster, seconds: float) -> list[tuple[str, str]]:
    """Give GET /items/1 and POST /items per second on one B: PostgreSQL, then SQLite."""
    figures = []
    with tempfile.TemporaryDirectory(prefix="cluster-sqlite-") as workdir:
        sqlite_env = {"SERVICE_B_DATABASE_PATH": str(Path(workdir) / "items.sqlite3")}
        with run_service("service_b", env=sqlite_env) as sqlite_b:
            for engine, base in (("PostgreSQL", c.b_url(0)), ("SQLite", sqlite_b.base_url)):
                for method, path in (("GET", "/items/1"), ("POST", "/items")):
                    rate = throughput(base + path, method, seconds)
                    figures.append(
                        (f"{method} {path} per second, one B on {engine}", f"{rate:,.0f}")
                    )
    return figures


def measure(c: Cluster, options: argparse.Namespace, report: Report) -> None:
    """Measure the figures into `report` (one that cannot be measured says why)."""
    try:
        logger.info("throughput, PostgreSQL against SQLite")
        report.figures += store_figures(c, options.seconds)
        logger.info("broadcast, one B against two")
        report.figures += anyio.run(broadcast_figures, c, options.listeners, options.messages)
    except Exception as exc:  # noqa: BLE001 - the figures are reported, not checked
        report.figures.append(("figures", f"not measured: {describe(exc)}"))


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #
def main(argv: list[str] | None = None) -> int:
    """Start the cluster, check it, measure it, stop it; give the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.run", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="each throughput load")
    parser.add_argument("--listeners", type=int, default=20, help="broadcast listeners")
    parser.add_argument("--messages", type=int, default=200, help="broadcast messages")
    parser.add_argument(
        "--ports",
        default=f"{B_PORTS[0]},{A_PORT},{B_PORTS[1]}",
        help="B1's, A's and B2's ports (default: %(default)s)",
    )
    parser.add_argument("--no-figures", action="store_true", help="run the checks only")
    options = parser.parse_args(argv)
    b1_port, a_port, b2_port = (int(port) for port in options.ports.split(","))
    ports = (b1_port, a_port, b2_port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    report = Report()
    still: list[int] = []
    started = False  # once the ports were found free: they must be free again at the end
    try:
        with contextlib.ExitStack() as stack:
            logger.info(
                "starting PostgreSQL, Redis, B1 on %d, B2 on %d, A on %d", b1_port, b2_port, a_port
            )
            check_ports_free(ports)
            started = True
            c = start_cluster(stack, (b1_port, b2_port), a_port)
            logger.info("cross-instance checks")
            anyio.run(run_checks, c, report)
            if not options.no_figures:
                measure(c, options, report)
            logger.info("killing B1")
            anyio.run(run_kill_checks, c, report)
            logger.info("stopping everything")
    except ClusterError as exc:
        logger.error("the cluster could not be started: %s", exc)  # noqa: TRY400 - told plainly
        return 2
    except KeyboardInterrupt:
        logger.warning("interrupted: everything was stopped")
        report.print()
        return 130
    except Exception as exc:  # noqa: BLE001 - the runner's own failure, after the stop
        logger.error("the run failed: %s; everything was stopped", describe(exc))  # noqa: TRY400
        report.print()
        return 1
    finally:
        still = [port for port in ports if started and port_is_taken(port)]
        if still:
            logger.error("still listening after the stop: %s", still)
    print(f"B1 on {b1_port}, B2 on {b2_port}, A on {a_port} in front of both")  # noqa: T201
    report.print()
    return 1 if report.failed or still else 0


if __name__ == "__main__":
    sys.exit(main())
