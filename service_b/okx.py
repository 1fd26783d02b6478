"""OKX-style login signatures for `/ws/v5/private`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

from pydantic import SecretStr

from service_b.models import LoginArgs

#: What the client signs after the timestamp, as OKX's own WebSocket login does.
SIGNED_SUFFIX = "GET/users/self/verify"

_TIMESTAMP = re.compile(r"[0-9]{1,20}(\.[0-9]{1,9})?")
# A Unix time at or above this is in milliseconds: in seconds it would be year 5138.
_MILLISECONDS_FROM = 100_000_000_000


def sign(secret: str, timestamp: str) -> str:
    """Give `base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify"))`."""
    # surrogatepass: a JSON escape can put a lone surrogate in the timestamp a client sends.
    message = (timestamp + SIGNED_SUFFIX).encode(errors="surrogatepass")
    digest = hmac.new(secret.encode(), message, hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def timestamp_seconds(timestamp: str) -> float | None:
    """Read a Unix timestamp in seconds (decimals allowed) or milliseconds; None if malformed."""
    if _TIMESTAMP.fullmatch(timestamp) is None:
        return None
    value = float(timestamp)
    return value / 1000 if value >= _MILLISECONDS_FROM else value


def verify_login(
    args: LoginArgs, secrets: Mapping[str, SecretStr], *, now: float, max_skew: float
) -> bool:
    """Tell whether the login is signed by a known key's secret at a time close to `now`.

    The signature is compared in constant time, and computed even for an unknown key,
    so neither the comparison nor the key lookup tells an attacker how close they came.
    """
    secret = secrets.get(args.api_key)
    expected = sign("" if secret is None else secret.get_secret_value(), args.timestamp)
    # surrogatepass: a JSON escape can put a lone surrogate in `sign`; it must not crash us.
    signed = hmac.compare_digest(expected.encode(), args.sign.encode(errors="surrogatepass"))
    seconds = timestamp_seconds(args.timestamp)
    in_time = seconds is not None and abs(now - seconds) <= max_skew
    return secret is not None and signed and in_time
