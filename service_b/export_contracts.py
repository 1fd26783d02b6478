"""Write B's schemas into `contracts/`, or check that the committed ones are current.

python -m service_b.export_contracts            # rewrite contracts/service_b.*.json
python -m service_b.export_contracts --check    # exit 1 when a file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from service_b.app import create_app
from service_b.asyncapi import asyncapi_document
from service_b.settings import Settings

OPENAPI_FILE = "service_b.openapi.json"
ASYNCAPI_FILE = "service_b.asyncapi.json"
COMMAND = "python -m service_b.export_contracts"


def openapi_document() -> dict[str, Any]:
    """Give B's OpenAPI document, as B serves it at /openapi.json with its default settings."""
    # model_construct: the defaults, whatever this shell's SERVICE_B_* variables say.
    return create_app(Settings.model_construct()).openapi()


def rendered() -> dict[str, str]:
    """Give each contract file's name and the text it should hold."""
    return {
        OPENAPI_FILE: as_text(openapi_document()),
        ASYNCAPI_FILE: as_text(asyncapi_document()),
    }


def as_text(document: dict[str, Any]) -> str:
    """Serialise a document the way the committed files are written."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write or check the files; give the exit status."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("contracts"), help="default: %(default)s")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 on a difference")
    options = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = options.out / name
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not options.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if options.check and stale:
        names = ", ".join(str(path) for path in stale)
        sys.stderr.write(f"{names}: out of date with B's code; run `{COMMAND}` and commit\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
