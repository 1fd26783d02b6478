"""A as a real process: the forwarding headers B gets are A's, even from a caller on loopback."""

from __future__ import annotations

import httpx
import pytest

from tests.live import run_service
from tests.raw_server import RawServer, send

pytestmark = pytest.mark.live

B_ANSWER = (
    b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{"b":"b"}'
)


def test_caller_on_loopback_cannot_spoof_its_address() -> None:
    """A caller on loopback sends X-Forwarded-For: B still gets the real address, not the claim."""
    b = RawServer({"/b/": send(B_ANSWER)})
    try:
        with run_service(
            "service_a", env={"SERVICE_A_SERVICE_B_URL": b.url}, health_path="/a/"
        ) as a:
            response = httpx.get(
                a.base_url + "/a/call_b",
                headers={
                    "x-forwarded-for": "6.6.6.6",
                    "x-forwarded-proto": "https",
                    "x-real-ip": "6.6.6.6",
                    "forwarded": "for=6.6.6.6",
                },
                timeout=10,
            )
    finally:
        b.close()
    assert 200 == response.status_code, response.text
    [head] = b.requests
    lines = [line.lower() for line in head.split(b"\r\n")[1:]]
    forwarding = [
        line for line in lines if line.startswith((b"x-forwarded-", b"x-real-ip:", b"forwarded:"))
    ]
    host = f"127.0.0.1:{a.port}".encode()
    assert [
        b"x-forwarded-for: 127.0.0.1",
        b"x-forwarded-host: " + host,
        b"x-forwarded-proto: http",
        b"x-real-ip: 127.0.0.1",
        b'forwarded: for=127.0.0.1;host="' + host + b'";proto=http',
    ] == forwarding
