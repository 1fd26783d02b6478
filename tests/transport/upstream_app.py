"""Upstream used by the transport tests, served by uvicorn in a process of its own.

`python -m tests.transport.upstream_app --port N [--timeout-keep-alive SECONDS]`: the
keep-alive timeout is a float here (uvicorn's command line takes whole seconds), so the
tests of connections the server closes while idle need not wait a second for it. It
also counts the `/sleep` requests in flight by `group`, which tells a test how many of its
own were served at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import anyio.lowlevel
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


async def echo(request: Request) -> JSONResponse:
    """Return the request as JSON."""
    body = await request.body()
    client = request.client
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "body": body.decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw],
            "client_port": client.port if client else None,
        }
    )


async def status(request: Request) -> Response:
    """Return an empty 204 or a JSON body with the requested status."""
    code = int(request.path_params["code"])
    if code == 204:
        return Response(status_code=204)
    return JSONResponse({"detail": "status"}, status_code=code)


async def chunked(request: Request) -> StreamingResponse:
    """Stream n chunks of size bytes (chunked transfer encoding)."""
    n = int(request.query_params.get("n", "5"))
    size = int(request.query_params.get("size", "10"))

    async def gen() -> object:
        """Yield the chunks."""
        for i in range(n):
            yield bytes([97 + i % 26]) * size
            await anyio.lowlevel.checkpoint()

    return StreamingResponse(gen(), media_type="application/octet-stream")  # type: ignore[arg-type]


class _InFlight:
    """How many `/sleep` requests of one group are served at once, now and at the most."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    @contextmanager
    def one(self) -> Iterator[None]:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            yield
        finally:
            self.now -= 1


async def sleep(request: Request) -> JSONResponse:
    """Sleep t seconds, then answer with the most `/sleep` requests of its `group` at once."""
    groups: dict[str, _InFlight] = request.app.state.in_flight
    in_flight = groups.setdefault(request.query_params.get("group", ""), _InFlight())
    with in_flight.one():
        await anyio.sleep(float(request.query_params.get("t", "1")))
        return JSONResponse({"slept": True, "most_at_once": in_flight.most})


async def multi(_: Request) -> Response:
    """Answer with repeated x-multi and set-cookie headers."""
    response = Response(b"ok", media_type="text/plain")
    response.raw_headers += [
        (b"x-multi", b"a"),
        (b"x-multi", b"b"),
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; Path=/"),
    ]
    return response


async def ws_echo(ws: WebSocket) -> None:
    """Echo WebSocket messages."""
    await ws.accept()
    while True:
        msg = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("text") is not None:
            await ws.send_text("echo:" + msg["text"])
        elif msg.get("bytes") is not None:
            await ws.send_bytes(msg["bytes"])


app = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
        Route("/status/{code}", status, methods=["GET", "POST", "PUT", "DELETE"]),
        Route("/chunked", chunked),
        Route("/sleep", sleep),
        Route("/multi", multi),
        WebSocketRoute("/ws", ws_echo),
    ]
)
app.state.in_flight = {}


def main(argv: list[str] | None = None) -> None:
    """Serve the upstream on 127.0.0.1 with the keep-alive timeout asked for."""
    parser = argparse.ArgumentParser(prog="python -m tests.transport.upstream_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--timeout-keep-alive", type=float, default=5.0)
    options = parser.parse_args(argv)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=options.port,
        log_level="warning",
        timeout_keep_alive=options.timeout_keep_alive,
    )


if __name__ == "__main__":
    main()
