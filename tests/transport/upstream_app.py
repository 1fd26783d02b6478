"""Upstream used by the transport tests (served by a real uvicorn subprocess)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
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


async def sleep(request: Request) -> JSONResponse:
    """Sleep t seconds, then answer."""
    await anyio.sleep(float(request.query_params.get("t", "1")))
    return JSONResponse({"slept": True})


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
