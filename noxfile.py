"""The project's single entry point: `nox` runs what CI runs; `nox -l` lists every session."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent


def install(session: nox.Session, *groups: str, project: bool = True) -> None:
    """Install exactly what uv.lock pins: the project (editable) and `groups`, nothing else.

    `uv sync --locked` fails when uv.lock no longer matches pyproject.toml, so a dependency
    changes only through a deliberate `nox -s lock` and a commit of the new lock.
    """
    selection = [f"--group={group}" for group in groups]
    if not project:
        selection = [f"--only-group={group}" for group in groups]
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--no-default-groups",
        *selection,
        env={"UV_PROJECT_ENVIRONMENT": str(session.virtualenv.location)},
        external=True,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    install(session, "lint", project=False)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """Type-check the services (strict) and the tests with mypy."""
    install(session, "typing")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """Run every test on asyncio and trio, with branch coverage; fail under 90 %."""
    install(session, "tests")
    session.run("coverage", "erase")
    # tests/fuzz is the fuzz session's: its budgets are its own.
    session.run("coverage", "run", "-m", "pytest", "--ignore=tests/fuzz", *session.posargs)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")


@nox.session
def contracts(session: nox.Session) -> None:
    """Check every contract and session, then B and A live on 8000/8001 (`-- --update`: rewrite)."""
    install(session, "tests")
    env = {}
    comparator = install_comparator(session)
    if comparator is not None:
        env["OPENAPI_PACT_COMPARATOR"] = str(comparator)
    session.run("python", "-m", "tests.contracts.pipeline", *session.posargs, env=env)


# PactFlow's bi-directional comparator, which the pact must pass against both of B's documents.
COMPARATOR = "@pactflow/openapi-pact-comparator@2.3.1"


def install_comparator(session: nox.Session) -> Path | None:
    """Install PactFlow's comparator with npm into the session's folder; give its command."""
    folder = Path(session.virtualenv.location) / "comparator"
    command = folder / "node_modules" / ".bin" / "opc"
    if command.exists():
        return command
    npm = shutil.which("npm")
    if npm is None:
        session.warn("npm is missing: the PactFlow comparator step is skipped (install Node.js)")
        return None
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), COMPARATOR],
        check=False,
    )
    if installed.returncode or not command.exists():
        session.warn(f"npm could not install {COMPARATOR}: the comparator step is skipped")
        return None
    return command


@nox.session
def fuzz(session: nox.Session) -> None:
    """Fuzz B and A in-process and live on 8000/8001 (`-- --max-examples N` for more)."""
    install(session, "tests")
    session.run("python", "-m", "tests.fuzz.run", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmark B and A against the seed's B and nginx (issue 12); installs wrk and nginx."""
    apt_install(session, [package for command, package in BENCH_TOOLS if not _has(command)])
    if not _has("wrk"):
        session.error("could not install wrk: run `apt-get install wrk`, then nox -s bench")
    if not _has("nginx"):
        session.warn("could not install nginx: `apt-get install nginx-light` adds the nginx rows")
    install(session, "tests")
    session.run("python", "-m", "tests.bench.bench", *session.posargs)


@nox.session(default=False)
def cluster(session: nox.Session) -> None:
    """Two Bs on PostgreSQL and Redis, A in front of both, on 8000/8002/8001: checks and figures."""
    servers = (("redis-server", "redis-server"), ("pg_ctl", "postgresql"))
    apt_install(session, [package for binary, package in servers if not _has(binary)])
    for binary, package in servers:
        if not _has(binary):
            session.error(f"could not install {package}: run `apt-get install {package}`")
    install(session, "tests")
    session.run("python", "-m", "tests.cluster.run", *session.posargs)


#: What the bench runs, and the Debian package that has it.
BENCH_TOOLS = (("wrk", "wrk"), ("nginx", "nginx-light"))


def _has(command: str) -> bool:
    # nginx lives in /usr/sbin, which a non-root PATH may lack; PostgreSQL's server binaries
    # in /usr/lib/postgresql/*/bin.
    return (
        shutil.which(command) is not None
        or Path("/usr/sbin", command).exists()
        or any(Path("/usr/lib/postgresql").glob(f"*/bin/{command}"))
    )


def apt_install(session: nox.Session, packages: list[str]) -> None:
    """Install Debian's `packages` with apt-get (sudo when not root); the caller checks."""
    if not packages:
        return
    session.log(f"installing {', '.join(packages)} with apt-get (Debian's packages)")
    installer = ["apt-get", "install", "-y", *packages]
    if os.geteuid() != 0:
        installer.insert(0, "sudo")
    if subprocess.run(installer, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run([*installer[: -2 - len(packages)], "update"], check=False)
        subprocess.run(installer, check=False)


@nox.session(python=False, default=False)
def lock(session: nox.Session) -> None:
    """Upgrade uv.lock to the newest allowed versions (`-- --upgrade-package NAME` for one)."""
    session.run("uv", "lock", *(session.posargs or ["--upgrade"]))


@nox.session(default=False)
def stress(session: nox.Session) -> None:
    """Run the heavy probes against real processes and print a table (`-- -k NAME` picks some)."""
    install(session, "tests")
    session.run("python", "-m", "tests.stress.run", *session.posargs)


@nox.session(default=False)
def serve(session: nox.Session) -> None:
    """Run B on 8000 and A on 8001 until Ctrl+C."""
    install(session)
    python = str(Path(session.bin) / "python")
    processes = [
        subprocess.Popen([python, "-m", "service_b", "--port", "8000"]),
        subprocess.Popen([python, "-m", "service_a", "--port", "8001"]),
    ]
    session.log("B on http://127.0.0.1:8000, A on http://127.0.0.1:8001; Ctrl+C stops them")
    try:
        for process in processes:
            process.wait()
    except KeyboardInterrupt:
        session.log("stopping")
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            process.wait(timeout=15)


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Load the docs pages in headless Chromium (Debian's), loopback only; screenshots in build/."""
    if not Path(CHROMIUM).exists():
        apt_install(session, ["chromium"])
        if not Path(CHROMIUM).exists():
            session.error(
                f"could not install chromium at {CHROMIUM}: run `apt-get install chromium` "
                "(Debian's package; Playwright's browser download is not used), then nox -s docs"
            )
    install(session, "docs")
    session.run("python", "-m", "tests.docs.browser", "--chromium", CHROMIUM, *session.posargs)


CHROMIUM = "/usr/bin/chromium"
ASYNCAPI_UI = ROOT / "service_b" / "asyncapi_ui"
ASYNCAPI_PACKAGE = "@asyncapi/react-component"
# Where each vendored file is in the npm package, and its name in service_b/asyncapi_ui/.
ASYNCAPI_FILES = {
    "browser/standalone/index.js": "index.js",
    "browser/standalone/index.js.LICENSE.txt": "index.js.LICENSE.txt",
    "styles/default.min.css": "default.min.css",
    "LICENSE": "LICENSE",
}


@nox.session(name="asyncapi-ui", python=False, default=False)
def asyncapi_ui(session: nox.Session) -> None:
    """Vendor @asyncapi/react-component's browser bundle with npm (`-- 3.2.1` picks a version)."""
    import hashlib  # noqa: PLC0415 - only this session needs them
    import json  # noqa: PLC0415
    import tarfile  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    if len(session.posargs) != 1:
        session.error("give the version to vendor: nox -s asyncapi-ui -- 3.2.1")
    spec = f"{ASYNCAPI_PACKAGE}@{session.posargs[0]}"
    with tempfile.TemporaryDirectory(prefix="asyncapi-ui-") as workdir:
        packed = session.run(
            "npm", "pack", spec, "--json", "--loglevel", "error", "--pack-destination", workdir,
            external=True, silent=True,
        )  # fmt: skip
        assert isinstance(packed, str)  # noqa: S101 - silent=True returns the output
        # silent=True folds stderr in, where npm may still write a line: the JSON starts at `[`.
        (tarball,), _ = json.JSONDecoder().raw_decode(packed[packed.index("[") :])
        members = {f"package/{source}": name for source, name in ASYNCAPI_FILES.items()}
        with tarfile.open(Path(workdir) / tarball["filename"]) as archive:
            for member, name in members.items():
                extracted = archive.extractfile(member)
                if extracted is None:
                    session.error(f"{spec} has no file {member}")
                (ASYNCAPI_UI / name).write_bytes(extracted.read())
    source = {
        "package": ASYNCAPI_PACKAGE,
        "version": tarball["version"],
        "integrity": tarball["integrity"],
        "refresh": f"nox -s asyncapi-ui -- {tarball['version']}",
        "files": {
            name: {
                "from": source,
                "sha256": hashlib.sha256((ASYNCAPI_UI / name).read_bytes()).hexdigest(),
            }
            for source, name in ASYNCAPI_FILES.items()
        },
    }
    (ASYNCAPI_UI / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n")
    session.log(f"vendored {spec} ({tarball['version']}) into {ASYNCAPI_UI.relative_to(ROOT)}")
