"""pact-python's relay servers stop at once instead of after up to half a second.

pact-python 4 runs the message relay (and the state handler) of each verification on
`http.server.ThreadingHTTPServer.serve_forever` with its default `poll_interval` of 0.5 s,
and `shutdown()` waits for the next poll: each verification of a pact with messages took
0.72 s, of which 0.48 s was that wait and 0.05 s the verification itself (cProfile, one
altered B on 2 interactions). `nox -s contracts` verifies B some twenty times (today's B,
each altered B, live B), so the waits were about ten seconds of its verdict.

pact-python has no setting for it; this gives its server class a `serve_forever` that
polls every 10 ms, nothing else changed. `tests/contracts/conftest.py` applies it, so it
holds in the contract tests, the pipeline and the catch rate; `test_quick_relays.py`
checks that pact-python still has the class it patches.
"""

from __future__ import annotations

from typing import Any

POLL_SECONDS = 0.01


def apply() -> None:
    """Make pact-python's relay servers poll for shutdown every POLL_SECONDS."""
    from pact import _server  # noqa: PLC0415 - the class has no public name

    server = _server.HandlerHttpServer
    if getattr(server.serve_forever, "quick", False):
        return
    original = server.serve_forever

    def serve_forever(self: Any, poll_interval: float = POLL_SECONDS) -> None:
        original(self, poll_interval)

    serve_forever.quick = True  # type: ignore[attr-defined]
    server.serve_forever = serve_forever  # type: ignore[method-assign]
