"""`nox -s stress`: heavy probes against real processes; a table of probe, figure, limit, result.

    python -m tests.stress.run [-k SUBSTRING]

Each module in `MODULES` holds `PROBES`, a list of functions that each start what they need
(on free ports, loopback only), stop by themselves within a bounded time and count, and
give one or more `Row`s. A probe that raises becomes a FAILED row naming the probe and the
error, never a traceback that hides the rest of the table. The run exits 1 when any row
failed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: The modules whose `PROBES` this run collects, in the order their rows are printed.
MODULES: tuple[str, ...] = (
    "tests.stress.edge_heads",
    "tests.stress.edge_relay",
    "tests.stress.fanout",
    "tests.stress.fanout_redis",
    "tests.stress.login",
    "tests.stress.store",
)


@dataclass(frozen=True)
class Row:
    """One line of the table: what was probed, what was measured, the limit, and the verdict."""

    probe: str
    figure: str
    limit: str
    ok: bool


Probe = Callable[[], Iterable[Row]]


def collect(modules: Iterable[str]) -> list[Probe]:
    """Give every probe of `modules`, in order."""
    probes: list[Probe] = []
    for name in modules:
        probes.extend(importlib.import_module(name).PROBES)
    return probes


def run(probe: Probe) -> list[Row]:
    """Run one probe; an error it raises is a failed row of its own."""
    try:
        return list(probe())
    except Exception as exc:  # reported as a row, so the table stays whole
        logger.exception("probe %s raised", probe.__name__)
        return [Row(probe.__name__, f"raised {exc!r}"[:200], "-", ok=False)]


def table(rows: Iterable[Row]) -> str:
    """Render rows as an aligned text table."""
    lines = [("probe", "figure", "limit", "result")]
    lines += [(r.probe, r.figure, r.limit, "ok" if r.ok else "FAILED") for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def main(argv: list[str] | None = None) -> int:
    """Run the probes (those whose name holds `-k`), print the table; 1 when any failed."""
    parser = argparse.ArgumentParser(prog="python -m tests.stress.run")
    parser.add_argument("-k", default="", help="run only probes whose name holds this")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    rows: list[Row] = []
    started = time.monotonic()
    for probe in collect(MODULES):
        if options.k in probe.__name__:
            rows.extend(run(probe))
    sys.stdout.write(table(rows) + "\n")
    sys.stdout.write(f"{len(rows)} rows in {time.monotonic() - started:.1f} s\n")
    if not rows:
        sys.stdout.write("no probe ran\n")
        return 1
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
