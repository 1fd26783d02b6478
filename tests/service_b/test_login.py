"""The OKX-style signature, the timestamp rules and the command that prints a login message."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import SecretStr

from service_b.login_message import main
from service_b.models import LoginArgs
from service_b.okx import Verdict, sign, timestamp_seconds, verify_login
from service_b.settings import ApiKeyCredentials, ApiKeyEntry

SECRETS: dict[str, ApiKeyEntry] = {
    "abc": SecretStr("def"),
    "pp": ApiKeyCredentials(secret=SecretStr("ghi"), passphrase=SecretStr("open sesame")),
}


def test_sign_matches_a_known_vector() -> None:
    """The signature is base64(HMAC-SHA256(secret, timestamp + 'GET/users/self/verify'))."""
    # Computed independently: printf '1538054050GET/users/self/verify' |
    #   openssl dgst -sha256 -hmac def -binary | base64
    assert "8NcMfVfPjFwVZTvyo8gtvQCMPwExQfY820g0zNX4sZw=" == sign("def", "1538054050")


@pytest.mark.parametrize(
    ("timestamp", "seconds"),
    [
        ("1700000000", 1_700_000_000.0),
        ("1700000000.25", 1_700_000_000.25),
        ("1700000000250", 1_700_000_000.25),
        ("0", 0.0),
    ],
)
def test_timestamp_in_seconds_or_milliseconds(timestamp: str, seconds: float) -> None:
    """A timestamp is read as seconds, or as milliseconds when it is that large."""
    assert seconds == timestamp_seconds(timestamp)


@pytest.mark.parametrize(
    "timestamp", ["", "-1", "1e9", "17e8", " 1", "1.", ".5", "nan", "0x10", "١٢٣"]
)
def test_malformed_timestamps_are_refused(timestamp: str) -> None:
    """Anything but plain decimal digits (with an optional fraction) is not a timestamp."""
    assert timestamp_seconds(timestamp) is None


def _args(
    timestamp: str, secret: str = "def", api_key: str = "abc", passphrase: str = "p"
) -> LoginArgs:
    return LoginArgs(
        apiKey=api_key, passphrase=passphrase, timestamp=timestamp, sign=sign(secret, timestamp)
    )


NOW = 1_700_000_000.0


ACCEPTED, REFUSED, WRONG_PASSPHRASE = Verdict.ACCEPTED, Verdict.REFUSED, Verdict.WRONG_PASSPHRASE


@pytest.mark.parametrize(
    ("args", "verdict"),
    [
        (_args("1700000000"), ACCEPTED),
        (_args("1700000005"), ACCEPTED),  # 5 s early: the clock-skew allowance
        (_args("1700000004.999"), ACCEPTED),
        (_args("1700000005.001"), REFUSED),
        (_args("1700000006"), REFUSED),
        (_args("1700000029"), REFUSED),
        (_args("1699999970"), ACCEPTED),  # 30 s late: OKX's expiry
        (_args("1699999969"), REFUSED),
        (_args("1700000000", secret="nope"), REFUSED),
        (_args("1700000000", api_key="zzz"), REFUSED),
        (_args("1699999970000"), ACCEPTED),  # milliseconds
        (_args("1699999969999"), REFUSED),
        (_args("1700000005001"), REFUSED),
        (_args("1700000000.5"), ACCEPTED),
        (_args("1700000000", "ghi", "pp", "open sesame"), ACCEPTED),
        (_args("1700000000", "ghi", "pp", "open sesame!"), WRONG_PASSPHRASE),
        (_args("1700000000", "ghi", "pp", ""), WRONG_PASSPHRASE),
        (_args("1700000000", "nope", "pp", "open sesame!"), REFUSED),  # needs the secret
        (_args("1700000040", "ghi", "pp", "open sesame!"), REFUSED),
        (_args("1700000000", passphrase="anything"), ACCEPTED),  # a bare secret: no check
    ],
)
def test_verify_login(args: LoginArgs, verdict: Verdict) -> None:
    """A login passes with a known key, its signature, a time from 30 s ago to 5 s ahead."""
    assert verdict == verify_login(args, SECRETS, now=NOW, expiry=30, max_skew=5)


def test_command_prints_a_signed_login(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m service_b.login_message` prints a login that B would accept right now."""
    main(["--api-key", "abc", "--secret", "def", "--passphrase", "pp"])
    message = json.loads(capsys.readouterr().out)
    assert "login" == message["op"]
    args = LoginArgs.model_validate(message["args"][0])
    assert "pp" == args.passphrase
    assert ACCEPTED == verify_login(args, SECRETS, now=time.time(), expiry=30, max_skew=5)


def test_command_takes_a_given_timestamp(capsys: pytest.CaptureFixture[str]) -> None:
    """With --timestamp, the message is signed for that time."""
    main(["--timestamp", "1538054050"])
    args = json.loads(capsys.readouterr().out)["args"][0]
    assert {"apiKey": "abc", "timestamp": "1538054050", "sign": sign("def", "1538054050")} == {
        key: args[key] for key in ("apiKey", "timestamp", "sign")
    }
