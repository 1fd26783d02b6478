"""An ASGI middleware that bounds the size of HTTP request bodies, answering 413 in JSON."""

from __future__ import annotations

from fastapi import HTTPException, status
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The methods whose request body is read, and so bounded.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodySizeLimit:
    """Refuse a body larger than `max_bytes` with a JSON 413.

    A declared `Content-Length` is refused before anything is read; a streamed body as
    soon as the bytes read pass the limit. Only methods whose body B reads are bounded: a
    body sent with a GET or a DELETE is never read, and their operations document no 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap `app`."""
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"Request body is larger than {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection."""
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse(
                {"detail": self.detail}, status_code=status.HTTP_413_CONTENT_TOO_LARGE
            )
            await response(scope, receive, send)
            return
        read = 0

        async def receive_within_limit() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body,
                    # so its handler answers: the same JSON as above.
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, self.detail)
            return message

        await self.app(scope, receive_within_limit, send)
