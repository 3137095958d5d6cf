"""Errors as HTTP answers: one table from RolloutDB's exceptions to status codes, and one body everywhere,
``{"error": {"type": "<exception class name>", "message": "..."}}``. The type is the name of the exception
the Python API raises for the same mistake, so a remote client can raise that exception again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import (
    AuthenticationError,
    ConflictError,
    FeedTrimmedError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
    RolloutDBError,
    SchemaOutOfDateError,
    StoreUnavailableError,
)

# The most specific class of an exception that is listed here decides its status.
STATUS: dict[type[RolloutDBError], int] = {
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    InvalidTransitionError: 409,
    FeedTrimmedError: 410,
    InvalidInputError: 422,  # AmbiguousIdError too
    StoreUnavailableError: 503,  # DatabaseNotFoundError too
    SchemaOutOfDateError: 503,
    RolloutDBError: 400,
}
RETRY_AFTER_SECONDS = 5  # when the database is away: how long a client should wait before asking again
# What an answer of the status says besides its body: how to authenticate (RFC 6750), when to ask again.
STATUS_HEADERS = {401: {"WWW-Authenticate": 'Bearer realm="rolloutdb"'}, 503: {"Retry-After": str(RETRY_AFTER_SECONDS)}}
# Errors HTTP itself raises (a body that cannot be read, no such route, no such method, a body too large), by the
# exception they would be.
HTTP_ERROR_TYPE = {400: "InvalidInputError", 404: "NotFoundError", 405: "InvalidInputError", 413: "InvalidInputError"}
INTERNAL_MESSAGE = "internal error; see the server log"
log = logging.getLogger("rolloutdb.server")


def error_response(status: int, type_name: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_name, "message": message}}, status_code=status, headers=headers)


def status_of(exc: RolloutDBError) -> int:
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


def error_answer(exc: RolloutDBError) -> JSONResponse:
    status = status_of(exc)
    return error_response(status, type(exc).__name__, str(exc), STATUS_HEADERS.get(status))


async def _rolloutdb_error(request: Request, exc: RolloutDBError) -> JSONResponse:
    return error_answer(exc)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's own check of a request (types, required and unknown fields, malformed JSON) answers as the
    store's does: InvalidInputError naming each field."""
    return error_response(422, InvalidInputError.__name__, invalid_request_message(exc.errors()))


def invalid_request_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """A request's problems, each as ``where.it.is: what is wrong`` (pydantic's errors)."""
    problems = "; ".join(f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in errors)
    return f"invalid request: {problems}"


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = exc.detail if exc.status_code != 404 else f"no route {request.method} {request.url.path}; see /docs"
    return error_response(exc.status_code, HTTP_ERROR_TYPE.get(exc.status_code, "HTTPError"), str(message),
                          getattr(exc, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RolloutDBError, _rolloutdb_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)


class InternalErrors:
    """Answer any other exception with a 500 that says only ``INTERNAL_MESSAGE``: the traceback may show code,
    paths and values, so it goes to the server's log alone, written before the answer leaves."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        answering = False

        async def watched_send(message) -> None:
            nonlocal answering
            answering = answering or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except asyncio.CancelledError:
            # The server is stopping and gave up waiting for this request (a long wait): answered as the store
            # being away, which a client asks again (of this server once it is back, or of another), not as a bug.
            if answering:
                raise
            await error_answer(StoreUnavailableError("the server is shutting down: ask again"))(scope, receive, send)
        except Exception:
            log.exception("internal error answering %s %s", scope["method"], scope["path"])
            if answering:
                raise  # too late for an answer: the ASGI server closes the connection
            await error_response(500, "InternalError", INTERNAL_MESSAGE)(scope, receive, send)
