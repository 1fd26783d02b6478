"""Print a freshly signed login message for `/ws/v5/private`.

python -m service_b.login_message --api-key abc --secret def
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from service_b.okx import sign
from service_b.settings import DEMO_API_KEY, DEMO_API_SECRET


def login_message(api_key: str, secret: str, passphrase: str, timestamp: str) -> str:
    """Give the JSON text of a login request signed with `secret` at `timestamp`."""
    args = {
        "apiKey": api_key,
        "passphrase": passphrase,
        "timestamp": timestamp,
        "sign": sign(secret, timestamp),
    }
    return json.dumps({"op": "login", "args": [args]})


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and print the signed message on standard output."""
    parser = argparse.ArgumentParser(
        prog="python -m service_b.login_message",
        description="Print a signed login message for ws://HOST:PORT/ws/v5/private. "
        "B accepts it once, within 30 seconds.",
    )
    parser.add_argument("--api-key", default=DEMO_API_KEY, help="default: the demo key abc")
    parser.add_argument("--secret", default=DEMO_API_SECRET, help="default: the demo secret def")
    parser.add_argument(
        "--passphrase",
        default="demo",
        help="B checks it only for a key configured with a passphrase (the demo key has none)",
    )
    parser.add_argument(
        "--timestamp",
        default=None,
        help="Unix time in seconds or milliseconds (default: now, in seconds)",
    )
    options = parser.parse_args(argv)
    timestamp = options.timestamp or str(int(time.time()))
    sys.stdout.write(
        login_message(options.api_key, options.secret, options.passphrase, timestamp) + "\n"
    )


if __name__ == "__main__":
    main()
