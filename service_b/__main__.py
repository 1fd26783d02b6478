"""Serve B with uvicorn: `python -m service_b [--host 127.0.0.1] [--port 8000]`."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from service_b.app import create_app
from service_b.protocol import (
    BoundedHttpToolsProtocol,
    EdgeLimits,
    bounded_protocol,
    connection_cap,
    raise_open_file_limit,
)
from service_b.settings import Settings
from service_b.ws_protocol import delivery_checked_protocol

#: File descriptors kept for B's own use (listening socket, SQLite, logs) under the cap.
RESERVED_FILES = 64


def protocol_max_message_bytes(app_max_bytes: int) -> int:
    """Give uvicorn's own message limit: a backstop a little above the app's limit.

    The app reads a message up to a bit over its limit and closes with 1009 and its reason,
    after the client finished sending, so the close handshake completes. Only a message far
    over the limit is cut off by the protocol layer (also 1009), without being buffered.
    """
    return app_max_bytes + 64 * 1024


def edge_protocol(settings: Settings, open_file_limit: int) -> type[BoundedHttpToolsProtocol]:
    """Give the HTTP protocol class that enforces B's edge limits (see service_b.protocol)."""
    limits = EdgeLimits(
        max_header_count=settings.max_header_count,
        max_header_line_bytes=settings.max_header_line_bytes,
        max_head_bytes=settings.max_head_bytes,
        header_timeout_seconds=settings.header_timeout_seconds,
        max_connections=connection_cap(
            settings.max_client_connections, open_file_limit, RESERVED_FILES
        ),
    )
    return bounded_protocol(limits)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, then serve B until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m service_b",
        description="Serve service B. Settings come from SERVICE_B_* environment variables.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s")
    parser.add_argument("--port", type=int, default=8000, help="default: %(default)s")
    parser.add_argument("--ssl-certfile", help="serve https and wss with this certificate")
    parser.add_argument("--ssl-keyfile", help="the certificate's private key")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="default: %(default)s",
    )
    options = parser.parse_args(argv)
    if (options.ssl_certfile is None) != (options.ssl_keyfile is None):
        parser.error("--ssl-certfile and --ssl-keyfile go together")

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
        ssl_certfile=options.ssl_certfile,
        ssl_keyfile=options.ssl_keyfile,
        log_config=None,
        log_level=options.log_level,
        ws_max_size=protocol_max_message_bytes(settings.ws_max_message_bytes),
        http=edge_protocol(settings, open_file_limit),
        # Closes a client that stops reading even while the kernel absorbs what B sends.
        ws=delivery_checked_protocol(settings.ws_send_timeout_seconds),
        timeout_keep_alive=settings.idle_timeout_seconds,  # type: ignore[arg-type]
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: any local client, or
        # any client of a proxy that passes the header on, could then pick the address the
        # failed-login limit counts. Only the proxies configured are believed.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


if __name__ == "__main__":
    main()
