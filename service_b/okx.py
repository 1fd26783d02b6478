"""OKX-style login signatures for `/ws/v5/private`, and the check of a login's credentials."""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from collections.abc import Mapping

from pydantic import SecretStr

from service_b.models import LoginArgs
from service_b.settings import ApiKeyCredentials, ApiKeyEntry

#: What the client signs after the timestamp, as OKX's own WebSocket login does.
SIGNED_SUFFIX = "GET/users/self/verify"

_TIMESTAMP = re.compile(r"[0-9]{1,20}(\.[0-9]{1,9})?")
# A Unix time at or above this is in milliseconds: in seconds it would be year 5138.
_MILLISECONDS_FROM = 100_000_000_000


class Verdict(enum.Enum):
    """What the credentials of a login come to."""

    ACCEPTED = "accepted"
    #: An unknown key, a wrong signature, or a timestamp outside the acceptance window.
    REFUSED = "refused"
    #: A valid signature of a key whose passphrase the login does not carry.
    WRONG_PASSPHRASE = "wrong passphrase"  # noqa: S105 - a verdict's name, not a secret


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


def in_window(seconds: float | None, *, now: float, expiry: float, max_skew: float) -> bool:
    """Tell whether a login stamped `seconds` is still valid at `now`.

    OKX's rule: a login expires `expiry` (30) seconds after its timestamp. A timestamp in
    B's future is accepted only within `max_skew`, the allowance for a client's fast clock;
    so one signed message is good for at most `expiry + max_skew` seconds.
    """
    return seconds is not None and now - expiry <= seconds <= now + max_skew


def _secrets(entry: ApiKeyEntry | None) -> tuple[SecretStr | None, SecretStr | None]:
    if isinstance(entry, ApiKeyCredentials):
        return entry.secret, entry.passphrase
    return entry, None


def verify_login(
    args: LoginArgs,
    keys: Mapping[str, ApiKeyEntry],
    *,
    now: float,
    expiry: float,
    max_skew: float,
) -> Verdict:
    """Tell whether the login is signed by a known key's secret, in time, with its passphrase.

    The signature and the passphrase are compared in constant time, and both are computed
    even for an unknown key or a key without a passphrase, so neither the comparisons nor
    the key lookup tell an attacker how close they came. The passphrase is reported wrong
    only to a client whose signature is right, that is one who holds the key's secret.
    """
    secret, passphrase = _secrets(keys.get(args.api_key))
    expected = sign("" if secret is None else secret.get_secret_value(), args.timestamp)
    # surrogatepass: a JSON escape can put a lone surrogate in `sign`; it must not crash us.
    signed = hmac.compare_digest(expected.encode(), args.sign.encode(errors="surrogatepass"))
    expected_passphrase = "" if passphrase is None else passphrase.get_secret_value()
    passphrase_matches = hmac.compare_digest(
        expected_passphrase.encode(), args.passphrase.encode(errors="surrogatepass")
    )
    seconds = timestamp_seconds(args.timestamp)
    in_time = in_window(seconds, now=now, expiry=expiry, max_skew=max_skew)
    if secret is None or not signed or not in_time:
        return Verdict.REFUSED
    if passphrase is not None and not passphrase_matches:
        return Verdict.WRONG_PASSPHRASE
    return Verdict.ACCEPTED
