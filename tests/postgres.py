"""A throwaway PostgreSQL server for the tests: `initdb` and `pg_ctl` in a temporary directory.

The session fixture `postgres_server` starts one server on a free loopback port (its unix
socket in the same temporary directory), and stops it and removes the directory at the end.
`postgres_url` gives each test a schema of its own in a shared database (`CREATE DATABASE`
takes most of a second on a busy machine, a schema a few milliseconds), and
`postgres_database_url` a whole database, for the tests that change database settings. No
mock: B's PostgreSQL store is tested against the real engine.

The binaries are found on PATH or in Debian's `/usr/lib/postgresql/<version>/bin` (the
`postgresql` package, which `.ci/run` installs). `initdb` refuses to run as root, so as root
the server runs as the `postgres` user (the package creates it). Without the binaries the
PostgreSQL tests are skipped with the reason, except under CI (`CI` set), where they fail.

The server runs with `fsync=off`: it is thrown away after the session, so a crash of the
machine loses nothing that matters, and the tests run faster on a shared disk.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.live import free_port

#: The database `postgres_url`'s schemas are made in.
SHARED_DATABASE = "tests"
#: Where Debian's `postgresql` package puts the server's binaries, one folder per version.
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
START_TIMEOUT_SECONDS = 60


def find_binaries() -> Path | None:
    """Give the folder that holds `initdb` and `pg_ctl`, or None when PostgreSQL is missing."""
    on_path = shutil.which("pg_ctl")
    if on_path is not None and shutil.which("initdb") is not None:
        return Path(on_path).parent
    versions = sorted(
        (folder for folder in DEBIAN_BINARIES.glob("*/bin") if (folder / "initdb").exists()),
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway server: trust authentication, superuser `postgres`."""

    port: int
    socket_dir: Path
    data_dir: Path
    binaries: Path
    run_as: tuple[str, ...]
    fsync: bool = False

    def url(self, dbname: str = "postgres") -> str:
        """Give the URL of database `dbname` over TCP on loopback."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """Create a new, empty database; give its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self) -> str:
        """Create a new, empty schema in the shared database; give a URL whose tables are in it."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(SHARED_DATABASE), autocommit=True) as db:
            db.execute(f'CREATE SCHEMA "{name}"')
        return self.url(SHARED_DATABASE) + "?options=" + quote(f"-c search_path={name}")

    def pg_ctl(self, *args: str) -> None:
        """Run `pg_ctl` on this server's data directory (as the server's user)."""
        subprocess.run(
            [*self.run_as, str(self.binaries / "pg_ctl"), "-D", str(self.data_dir), *args],
            # The server's user may not be allowed into the checkout (a clone under /root).
            cwd=self.socket_dir,
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_SECONDS,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200"
        )
        if not self.fsync:
            options += " -c fsync=off -c full_page_writes=off"
        log = self.data_dir.parent / "server.log"
        try:
            self.pg_ctl(
                "-o", options, "-l", str(log), "-w", "-t", str(START_TIMEOUT_SECONDS), "start"
            )
        except subprocess.CalledProcessError as exc:
            told = log.read_text(errors="replace") if log.exists() else ""
            raise PostgresUnavailable(f"PostgreSQL did not start: {exc.stderr!r}\n{told}") from exc

    def stop(self) -> None:
        """Stop the server at once (its data is thrown away)."""
        self.pg_ctl("-m", "immediate", "-w", "stop")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be started here (its binaries, or the user to run them, are missing)."""


MISSING = (
    "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql; "
    ".ci/run does it)"
)


def _run_as() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("as root, `runuser` is needed to run PostgreSQL as `postgres`")
    return ("runuser", "-u", "postgres", "--")


@contextmanager
def throwaway_postgres(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """Run a new PostgreSQL in a temporary directory until the block ends, then remove it.

    `fsync=False` (for tests) skips flushing to disk; benchmarks ask for `fsync=True`.
    """
    binaries = find_binaries()
    if binaries is None:
        raise PostgresUnavailable(MISSING)
    run_as = _run_as()
    # As root, in /tmp: the server's user must reach the folder, and $TMPDIR may be private.
    root = Path(tempfile.mkdtemp(prefix="service_b-pg-", dir="/tmp" if run_as else None))
    try:
        if run_as:
            shutil.chown(root, user="postgres")
        data_dir = root / "data"
        subprocess.run(
            [
                *run_as,
                str(binaries / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            cwd=root,
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT_SECONDS,
        )
        server = PostgresServer(free_port(), root, data_dir, binaries, run_as, fsync)
        server.start()
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{SHARED_DATABASE}"')
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL for the session; stop it and remove its files at the end.

    Skipped when PostgreSQL is not installed, except under CI; any other failure fails.
    """
    if find_binaries() is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    with throwaway_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """Give a URL whose tables are in a new, empty schema of this test's own."""
    return postgres_server.create_schema()


@pytest.fixture
def postgres_database_url(postgres_server: PostgresServer) -> str:
    """Give the URL of a new, empty database of this test's own."""
    return postgres_server.create_database()
