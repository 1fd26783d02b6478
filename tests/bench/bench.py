"""`nox -s bench`: B and A against the seed's B and nginx, side by side in one run (issue 12).

    python -m tests.bench.bench [--duration 2] [--rounds 3] [--only http,echo,broadcast,writes]
                                [--compare /work/main]

Every target runs for the whole run as a real process on a free port, logging at WARNING:
the project's B (`python -m service_b`, SQLite in a temporary folder), the seed's B
(tests/bench/seed_b.py under plain uvicorn), A in front of each, and nginx (Debian's
nginx-light, one worker, keep-alive upstream, a config of its own in a temporary folder) in
front of each when it is installed (README, "Speed", says what each anchor is).

Rows, each measured once per round, rounds interleaved across targets (round 1 measures every
target, then round 2 ...), so a burst of load on the shared machine hits them alike:
- HTTP: wrk (one thread) `GET /items/1` at 32 and 4 connections; req/s, p50, p99.
- WebSocket echo (`/ws/echo`, websockets client, no compression): one client's p50 round trip,
  and 32 clients at once in messages per second.
- Broadcast (`/ws/broadcast`): one sender, `BROADCAST_RECEIVERS` receivers, the sender at most
  `BROADCAST_WINDOW` messages ahead of the slowest; messages delivered per second, B and A->B.
- Writes: wrk `POST /items` at 1, 8 and 32 connections, B and A->B (reported, no target).

Ratios are taken within each round (target / its anchor in the same round); the table gives
the median over rounds and the spread (min-max). A missed target exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from tests.live import ServiceProcess, free_port, run_service

ROOT = Path(__file__).resolve().parents[2]
PATH = "/items/1"
HTTP_CONNECTIONS = (32, 4)
WRITERS = (1, 8, 32)
ECHO_CLIENTS = 32
BROADCAST_RECEIVERS = 8
BROADCAST_WINDOW = 16
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
QUIET = ["--log-level", "warning"]

SEED, B = "seed B", "B"
NGINX_SEED, NGINX_B = "nginx>seed B", "nginx>B"
A_SEED, A_B = "A>seed B", "A>B"
# With --compare TREE: B and A from another checkout (say main), in the same rounds.
B_OLD, A_OLD = "B@compare", "A>B@compare"


@dataclass(frozen=True)
class Target:
    """A target ratio: `row` of `target` over `row` of `anchor`, within one round."""

    what: str
    row: str
    target: str
    anchor: str
    bound: float
    # "ratio": target/anchor >= bound; "added": target - anchor <= bound (latency, ms).
    kind: str = "ratio"


TARGETS = (
    Target("B >= 0.7 of the seed's B", "http c=32 req/s", B, SEED, 0.7),
    Target("A>seed B >= 0.5 of seed B", "http c=32 req/s", A_SEED, SEED, 0.5),
    Target("A>B >= 0.65 of B", "http c=32 req/s", A_B, B, 0.65),
    Target("A adds <= 1 ms to the p50 at c=4", "http c=4 p50 ms", A_B, B, 1.0, "added"),
    Target("echo, 32 clients: A>B >= 0.5 of B", "echo 32 clients msg/s", A_B, B, 0.5),
    Target("echo, 1 client: A adds <= 0.15 ms", "echo 1 client p50 ms", A_B, B, 0.15, "added"),
    Target("broadcast: A>B >= 0.5 of B", "broadcast delivered/s", A_B, B, 0.5),
)


# --- wrk --------------------------------------------------------------------------------------


def _latency_ms(text: str, percentile: str) -> float:
    found = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no {percentile}% latency:\n{text}")
    return float(found[1]) * _UNITS_MS[found[2]]


def wrk(url: str, connections: int, seconds: float, script: Path | None = None) -> dict[str, float]:
    """Run wrk (one thread) against `url`; give req/s, p50 and p99 in ms, and the non-2xx."""
    # One wrk thread: on two cores a second takes CPU from the servers, and one alone drives
    # far more requests per second than any target here serves.
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    text = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    # A refusal under load (A's 503 when its deadline passes, say) is counted, not fatal.
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if rps is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{text}")
    return {
        "req/s": float(rps[1]),
        "p50 ms": _latency_ms(text, "50"),
        "p99 ms": _latency_ms(text, "99"),
        "non-2xx": 0.0 if errors is None else float(errors[1]),
    }


POST_SCRIPT = """\
wrk.method = "POST"
wrk.body = '{"name": "bench item"}'
wrk.headers["Content-Type"] = "application/json"
"""


# --- WebSocket clients --------------------------------------------------------------------------


def _ws(url: str) -> connect:
    # No permessage-deflate: A refuses it to its clients anyway; the same for every target.
    return connect(url, compression=None, max_size=None, open_timeout=10, ping_interval=None)


async def _echo_loop(socket: ClientConnection, until: float, times: list[float] | None) -> int:
    count = 0
    loop = asyncio.get_running_loop()
    while (now := loop.time()) < until:
        await socket.send("hello")
        answer = await socket.recv()
        if answer != "Echo: hello":
            raise RuntimeError(f"echo answered {answer!r}")
        if times is not None:
            times.append(loop.time() - now)
        count += 1
    return count


async def _echo(url: str, clients: int, seconds: float) -> tuple[int, list[float]]:
    sockets = [await _ws(url) for _ in range(clients)]
    try:
        times: list[float] = []
        until = asyncio.get_running_loop().time() + seconds
        counts = await asyncio.gather(
            *(_echo_loop(s, until, times if clients == 1 else None) for s in sockets)
        )
        return sum(counts), times
    finally:
        await asyncio.gather(*(s.close() for s in sockets))


def echo_one(url: str, seconds: float) -> dict[str, float]:
    """One client, one message at a time: the p50 round trip in ms."""
    _, times = asyncio.run(_echo(url, 1, seconds))
    return {"p50 ms": statistics.median(times) * 1000}


def echo_many(url: str, seconds: float) -> dict[str, float]:
    """`ECHO_CLIENTS` clients at once, each one message at a time: messages per second."""
    count, _ = asyncio.run(_echo(url, ECHO_CLIENTS, seconds))
    return {"msg/s": count / seconds}


async def _broadcast(url: str, seconds: float) -> float:
    receivers = [await _ws(url) for _ in range(BROADCAST_RECEIVERS)]
    sender = await _ws(url)
    received = [0] * BROADCAST_RECEIVERS
    progress = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def receive(number: int) -> None:
        async for _ in receivers[number]:
            received[number] += 1
            progress.set()

    tasks = [asyncio.create_task(receive(n)) for n in range(BROADCAST_RECEIVERS)]
    try:
        # Every receiver is subscribed once it is connected (B subscribes before it accepts);
        # through A, once A's upstream handshake is done, which precedes A's accept too.
        sent = 0
        started = loop.time()
        until = started + seconds
        while loop.time() < until:
            if sent - min(received) >= BROADCAST_WINDOW:
                progress.clear()
                # Bounded: a receiver the server closed (1013 when it falls behind) never
                # catches up, and the round still ends on time.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.wait(), max(until - loop.time(), 0.001))
                continue
            await sender.send("m")
            sent += 1
        elapsed = loop.time() - started
        return sum(received) / elapsed
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in [*receivers, sender]))


def broadcast(url: str, seconds: float) -> dict[str, float]:
    """Messages delivered per second to `BROADCAST_RECEIVERS` receivers of one sender."""
    return {"delivered/s": asyncio.run(_broadcast(url, seconds))}


# --- the targets' processes ---------------------------------------------------------------------

NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream target {{ server {upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://target;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


@contextlib.contextmanager
def run_nginx(upstream: str) -> Iterator[str]:
    """Run nginx in the foreground in front of `upstream` (host:port); give its base URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as folder:
        conf = Path(folder) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(folder=folder, upstream=upstream, port=port))
        # -e: the error log before the config is read is ours too, never the system's.
        command = [nginx, "-p", folder, "-e", f"{folder}/error.log", "-c", str(conf)]
        process = subprocess.Popen(command, stderr=subprocess.STDOUT, stdout=subprocess.DEVNULL)
        try:
            _wait_for(f"http://127.0.0.1:{port}/status", process, Path(folder) / "error.log")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import httpx  # noqa: PLC0415 - only the start-up check needs it

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1.0).is_success:
                return
        time.sleep(0.05)
    output = log.read_text(errors="replace") if log.exists() else ""
    raise RuntimeError(f"{url} did not answer; nginx said:\n{output}")


def _host(service: ServiceProcess) -> str:
    return f"127.0.0.1:{service.port}"


@contextlib.contextmanager
def targets(folder: str, with_nginx: bool, compare: Path | None) -> Iterator[dict[str, str]]:
    """Start every target; give each one's base URL."""
    b_env = {"SERVICE_B_DATABASE_PATH": str(Path(folder) / "items.sqlite3")}
    seed_args = ["tests.bench.seed_b:app", "--app-dir", str(ROOT), "--no-access-log", *QUIET]
    with contextlib.ExitStack() as stack:
        b = stack.enter_context(run_service("service_b", env=b_env, args=QUIET))
        seed = stack.enter_context(run_service("uvicorn", args=seed_args))
        urls = {SEED: seed.base_url, B: b.base_url}
        for name, upstream in ((A_SEED, seed), (A_B, b)):
            env = {"SERVICE_A_SERVICE_B_URL": upstream.base_url}
            urls[name] = stack.enter_context(run_service("service_a", env=env, args=QUIET)).base_url
        if compare is not None:
            # PYTHONPATH comes before the editable install: that tree's service_a and service_b.
            old = {"PYTHONPATH": str(compare.resolve())}
            b_old_env = {**old, "SERVICE_B_DATABASE_PATH": str(Path(folder) / "old.sqlite3")}
            b_old = stack.enter_context(run_service("service_b", env=b_old_env, args=QUIET))
            urls[B_OLD] = b_old.base_url
            a_old_env = {**old, "SERVICE_A_SERVICE_B_URL": b_old.base_url}
            urls[A_OLD] = stack.enter_context(
                run_service("service_a", env=a_old_env, args=QUIET)
            ).base_url
        if with_nginx:
            urls[NGINX_SEED] = stack.enter_context(run_nginx(_host(seed)))
            urls[NGINX_B] = stack.enter_context(run_nginx(_host(b)))
        yield urls


# --- the run ------------------------------------------------------------------------------------

Measure = Callable[[str], dict[str, float]]


@dataclass
class Row:
    """One measurement made on several targets each round."""

    group: str
    names: tuple[str, ...]
    measure: Measure
    figures: dict[str, list[dict[str, float]]] = field(default_factory=dict)


def rows(options: argparse.Namespace, script: Path) -> list[Row]:
    """Give the rows `--only` picks, each with its targets."""
    seconds = options.duration
    http_names = (SEED, B, NGINX_SEED, NGINX_B, A_SEED, A_B, B_OLD, A_OLD)
    made: list[Row] = []
    if "http" in options.only:
        made.extend(
            Row(f"http c={conns}", http_names, partial(_get, connections=conns, seconds=seconds))
            for conns in HTTP_CONNECTIONS
        )
    if "echo" in options.only:
        made.append(Row("echo 1 client", http_names, lambda u: echo_one(_ws_url(u), seconds)))
        made.append(
            Row(
                f"echo {ECHO_CLIENTS} clients", http_names, lambda u: echo_many(_ws_url(u), seconds)
            )
        )
    if "broadcast" in options.only:
        made.append(
            Row(
                "broadcast",
                (B, A_B, B_OLD, A_OLD),
                lambda u: broadcast(_ws_url(u, "/ws/broadcast"), seconds),
            )
        )
    if "writes" in options.only:
        made.extend(
            Row(
                f"POST /items {writers} writers",
                (B, A_B, B_OLD, A_OLD),
                partial(_post, writers=writers, seconds=seconds, script=script),
            )
            for writers in WRITERS
        )
    return made


def _get(base: str, connections: int, seconds: float) -> dict[str, float]:
    return wrk(base + PATH, connections, seconds)


def _post(base: str, writers: int, seconds: float, script: Path) -> dict[str, float]:
    return wrk(base + "/items", writers, seconds, script)


def _ws_url(base: str, path: str = "/ws/echo") -> str:
    return base.replace("http://", "ws://", 1) + path


def main(argv: list[str] | None = None) -> int:
    """Benchmark; print the table; give the exit status."""
    parser = argparse.ArgumentParser(prog="nox -s bench --", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are shown")
    parser.add_argument(
        "--only", default="http,echo,broadcast,writes", help="rows: http,echo,broadcast,writes"
    )
    parser.add_argument(
        "--compare",
        type=Path,
        help="also run B and A from this checkout (e.g. /work/main) in the same rounds",
    )
    options = parser.parse_args(argv)
    options.only = set(options.only.split(","))
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is not installed: apt-get install wrk (nox -s bench tries itself)\n")
        return 2
    with_nginx = shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
    if not with_nginx:
        sys.stderr.write("nginx is not installed (apt-get install nginx-light): no nginx rows\n")
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        script = Path(folder) / "post.lua"
        script.write_text(POST_SCRIPT)
        table = rows(options, script)
        with targets(folder, with_nginx, options.compare) as urls:
            for url in urls.values():  # warm every target up once, outside the rounds
                wrk(url + PATH, 4, 1)
            for number in range(options.rounds):
                started = time.monotonic()
                for row in table:
                    for name in row.names:
                        if name in urls:
                            row.figures.setdefault(name, []).append(row.measure(urls[name]))
                took = time.monotonic() - started
                print(f"round {number + 1} of {options.rounds} done in {took:.0f} s", flush=True)  # noqa: T201
    return report(table, options.rounds)


ANCHOR_OF = {
    B: SEED,
    NGINX_SEED: SEED,
    A_SEED: SEED,
    NGINX_B: B,
    A_B: B,
    B_OLD: SEED,
    A_OLD: B_OLD,
}


def _spread(values: list[float], digits: int) -> str:
    median = statistics.median(values)
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def report(table: list[Row], rounds: int) -> int:
    """Print medians and spreads, with ratios within each round; check the targets."""
    title = f"median of {rounds} rounds (min-max); [x ratio to the anchor] for throughput, "
    lines = [f"\n{title}[+ ms added] for the p50, both within each round"]
    per_round: dict[str, dict[str, list[float]]] = {}
    for row in table:
        lines.append(f"\n{row.group}")
        for name, figures in row.figures.items():
            anchor = ANCHOR_OF.get(name)
            cells = []
            for figure in figures[0]:
                values = [f[figure] for f in figures]
                per_round.setdefault(f"{row.group} {figure}", {})[name] = values
                latency = figure.endswith("ms")
                cell = f"{figure} {_spread(values, 2 if latency else 0)}"
                if anchor in row.figures and figure not in {"p99 ms", "non-2xx"}:
                    anchors = [a[figure] for a in row.figures[anchor]]
                    if latency:
                        added = [v - a for v, a in zip(values, anchors, strict=True)]
                        cell += f" [+{_spread(added, 2)}]"
                    else:
                        ratios = [v / a for v, a in zip(values, anchors, strict=True)]
                        cell += f" [x{_spread(ratios, 2)}]"
                cells.append(cell)
            against = f"vs {anchor}" if anchor in row.figures else "anchor"
            lines.append(f"  {name:<13} {against:<10} " + "  ".join(cells))
    lines.append("\ntargets (medians of the per-round figure):")
    missed = 0
    for target in TARGETS:
        measured = per_round.get(target.row, {})
        if target.target not in measured or target.anchor not in measured:
            lines.append(f"  {target.what}: not measured in this run")
            continue
        pairs = zip(measured[target.target], measured[target.anchor], strict=True)
        if target.kind == "ratio":
            got = statistics.median(t / a for t, a in pairs)
            met = got >= target.bound
        else:
            got = statistics.median(t - a for t, a in pairs)
            met = got <= target.bound
        missed += not met
        lines.append(f"  {target.what}: got {got:.2f}: {'met' if met else 'MISSED'}")
    print("\n".join(lines))  # noqa: T201
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
