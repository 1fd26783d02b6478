"""Serve A with uvicorn: `python -m service_a [--host 127.0.0.1] [--port 8001]`."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from service_a.app import create_app
from service_a.protocol import (
    BoundedHttpToolsProtocol,
    EdgeLimits,
    bounded_protocol,
    connection_cap,
    raise_open_file_limit,
)
from service_a.settings import Settings
from service_a.ws_protocol import delivery_checked_protocol

#: File descriptors kept for A's own use (listening socket, logs) under the cap, besides
#: its connections to B.
RESERVED_FILES = 64


def protocol_max_message_bytes(app_max_bytes: int) -> int:
    """Give uvicorn's own message limit: a backstop a little above the relay's limit.

    The relay reads a message up to a bit over its limit and closes with 1009 and a reason
    once the client finished sending; only a message far over it is cut off by uvicorn.
    """
    return app_max_bytes + 64 * 1024


def edge_protocol(settings: Settings, open_file_limit: int) -> type[BoundedHttpToolsProtocol]:
    """Give the HTTP protocol class that enforces A's edge limits (see service_a.protocol)."""
    limits = EdgeLimits(
        max_header_count=settings.max_header_count,
        max_header_line_bytes=settings.max_header_line_bytes,
        max_head_bytes=settings.max_head_bytes,
        header_timeout_seconds=settings.header_timeout_seconds,
        max_connections=connection_cap(
            settings.max_client_connections,
            open_file_limit,
            RESERVED_FILES + settings.max_connections,
        ),
    )
    return bounded_protocol(limits)


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
    open_file_limit, _ = raise_open_file_limit()
    uvicorn.run(
        create_app(settings),
        host=options.host,
        port=options.port,
        log_config=None,
        log_level=options.log_level,
        access_log=False,  # A's edge middleware writes one line per request, with its id
        proxy_headers=False,  # A is the edge: a caller's X-Forwarded-* are not believed
        ws_max_size=protocol_max_message_bytes(settings.ws_max_message_bytes),
        # No permessage-deflate with A's clients: A relays frames and would hold a
        # compressor per session, about 45 KiB of the 121 KiB an idle relayed session cost.
        ws_per_message_deflate=False,
        http=edge_protocol(settings, open_file_limit),
        # Closes a client that stops reading even while the kernel absorbs what A relays
        # (issue 11). A subclass of uvicorn's websockets-sansio protocol: its wsproto one was
        # 3.5 KiB lighter per idle relayed session (80 against 83.5 KiB, 3 runs each over
        # 1,000 sessions), too little to keep a second copy of the delivery check for it.
        ws=delivery_checked_protocol(settings.ws_send_timeout),
        timeout_keep_alive=settings.idle_timeout_seconds,  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    main()
