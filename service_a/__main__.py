"""Serve A with uvicorn: `python -m service_a [--host 127.0.0.1] [--port 8001]`."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from service_a.app import create_app
from service_a.settings import Settings


def protocol_max_message_bytes(app_max_bytes: int) -> int:
    """Give uvicorn's own message limit: a backstop a little above the relay's limit.

    The relay reads a message up to a bit over its limit and closes with 1009 and a reason
    once the client finished sending; only a message far over it is cut off by uvicorn.
    """
    return app_max_bytes + 64 * 1024


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, then serve A until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m service_a",
        description="Serve service A. Settings come from SERVICE_A_* environment variables.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8001, help="default: %(default)s")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="default: %(default)s",
    )
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=options.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=options.host,
        port=options.port,
        log_config=None,
        log_level=options.log_level,
        access_log=False,  # A's edge middleware writes one line per request, with its id
        proxy_headers=False,  # A is the edge: a caller's X-Forwarded-* are not believed
        ws_max_size=protocol_max_message_bytes(settings.ws_max_message_bytes),
    )


if __name__ == "__main__":
    main()
