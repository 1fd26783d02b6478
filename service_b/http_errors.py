"""How B answers HTTP requests it cannot serve: always JSON `{"detail": ...}`."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from service_b.json_text import dump_json

logger = logging.getLogger(__name__)


def _json(content: object, status_code: int) -> Response:
    return Response(dump_json(content), status_code=status_code, media_type="application/json")


#: How a 422 quotes inputs that JSON cannot carry as they are: a body that is not JSON is
#: quoted as bytes, which need not be UTF-8; Python's lenient parse of a JSON body lets
#: NaN and infinities through, which are not JSON.
QUOTED_INPUT: dict[Any, Callable[[Any], Any]] = {
    bytes: lambda data: data.decode(errors="backslashreplace"),
    float: lambda number: number if math.isfinite(number) else str(number),
}


async def invalid_request(_: Request, exc: Exception) -> Response:
    """Answer 422 with FastAPI's list of errors, even when they quote undecodable input."""
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this class
    errors = jsonable_encoder(exc.errors(), custom_encoder=QUOTED_INPUT)
    return _json({"detail": errors}, status.HTTP_422_UNPROCESSABLE_CONTENT)


async def internal_error(request: Request, exc: Exception) -> Response:
    """Answer 500 in JSON, without the traceback; reached only through a bug."""
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json({"detail": "Internal server error"}, status.HTTP_500_INTERNAL_SERVER_ERROR)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def http_error(request: Request, exc: Exception) -> Response:
    """Answer an HTTP error in JSON; a 405 lists in `Allow` every method the path takes.

    Starlette's own 405 names only the methods of the first route that matched the path,
    while each method of a path is a route of its own here (RFC 9110 section 15.5.6).
    """
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this class
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        router = request.app.router
        allowed = [
            method
            for method in _METHODS
            if any(
                route.matches({**request.scope, "method": method})[0] == Match.FULL
                for route in router.routes
            )
        ]
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
    return await http_exception_handler(request, exc)


def install_http_error_handlers(app: FastAPI) -> None:
    """Register B's HTTP error handlers on `app`."""
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, internal_error)
