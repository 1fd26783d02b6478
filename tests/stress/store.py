"""B's throughput on each item store: `GET /items/1` and `POST /items`, SQLite against PostgreSQL.

    python -m tests.stress.run -k store

B runs as a real process (`python -m service_b`, logging at WARNING) on a free port, once on
an SQLite file and once on a throwaway PostgreSQL (`tests/postgres.py`, with `fsync` on, as
SQLite's `synchronous=FULL` flushes too), and wrk drives each request for `SECONDS` seconds
at `CONNECTIONS` connections after a one-second warm-up. Rows give requests per second and
p99; a run with failed requests (non-2xx) or a missing engine fails. There is no target:
these figures are for the README and for the issue's closing note.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.live import run_service
from tests.postgres import throwaway_postgres
from tests.stress.run import Row

SECONDS = 5
CONNECTIONS = 16
POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"name": "bench", "is_offer": true}'
wrk.headers["Content-Type"] = "application/json"
"""
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, seconds: int, script: Path | None = None) -> tuple[float, float]:
    """Run wrk on `url`; give requests per second and the p99 in ms."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    text = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors is not None:
        raise RuntimeError(f"{errors[1]} requests failed:\n{text}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if rps is None or p99 is None:
        raise RuntimeError(f"wrk printed no Requests/sec or p99:\n{text}")
    return float(rps[1]), float(p99[1]) * _UNITS_MS[p99[2]]


@contextmanager
def _engine(kind: str, folder: Path) -> Iterator[dict[str, str]]:
    if kind == "sqlite":
        yield {"SERVICE_B_DATABASE_PATH": str(folder / "items.sqlite3")}
        return
    with throwaway_postgres(fsync=True) as server:
        yield {"SERVICE_B_DATABASE_URL": server.url("tests")}


def _measure(kind: str) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        script = folder / "post.lua"
        script.write_text(POST_SCRIPT)
        with (
            _engine(kind, folder) as env,
            run_service("service_b", env=env, args=["--log-level", "warning"]) as b,
        ):
            for method, path, lua in [("GET", "/items/1", None), ("POST", "/items", script)]:
                wrk(b.base_url + path, 1, lua)
                rps, p99 = wrk(b.base_url + path, SECONDS, lua)
                rows.append(
                    Row(
                        f"store_{kind}_{method.lower()}",
                        f"{method} {path}: {rps:.0f} req/s, p99 {p99:.1f} ms "
                        f"({CONNECTIONS} connections)",
                        "-",
                        ok=True,
                    )
                )
    return rows


def store_throughput() -> list[Row]:
    """Measure GET and POST on SQLite, then on PostgreSQL; add PostgreSQL's ratio to SQLite."""
    if shutil.which("wrk") is None:
        return [
            Row("store_throughput", "wrk is not installed (apt-get install wrk)", "-", ok=False)
        ]
    sqlite = _measure("sqlite")
    postgres = _measure("postgresql")
    ratios = [
        Row(
            f"store_ratio_{pg.probe.rsplit('_', 1)[1]}",
            f"PostgreSQL / SQLite: {_rps(pg.figure) / _rps(lite.figure):.2f}",
            "-",
            ok=True,
        )
        for lite, pg in zip(sqlite, postgres, strict=True)
    ]
    return [*sqlite, *postgres, *ratios]


def _rps(figure: str) -> float:
    found = re.search(r": ([\d.]+) req/s", figure)
    assert found is not None  # made by _measure above
    return float(found[1])


PROBES = [store_throughput]
