"""Limits that keep a server's memory bounded however hard it is pushed: the size of one request body, and how
many writes wait or run at once."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from ..errors import StoreUnavailableError
from ._errors import HTTP_ERROR_TYPE, error_response

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BUSY_RETRY_AFTER_SECONDS = 1


class BodyLimit:
    """Refuse a request body over ``max_bytes`` with 413, by its Content-Length or, when it streams without
    one, as soon as more has arrived: the server never holds more than that of one request. ``unlimited``: the
    (method, path) of a route that streams its body on rather than holding it, and limits it itself."""

    def __init__(self, app, max_bytes: int, unlimited: tuple[str, str] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.unlimited = unlimited

    def _too_large(self) -> str:
        return (f"request body is over the server's limit of {self.max_bytes:,} bytes (max_body_bytes); "
                "send smaller batches")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) == self.unlimited:
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await error_response(413, HTTP_ERROR_TYPE[413], self._too_large())(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._too_large())  # FastAPI passes it on to _http_error
            return message

        await self.app(scope, limited_receive, send)


class WriteLimit:
    """At most ``max_in_flight`` writes (requests that change or wait: POST, PUT, PATCH, DELETE) are taken at
    once; another is answered 503 with Retry-After at once, before its body is read, rather than queued. Reads
    are not counted: they hold no body and no write lock."""

    def __init__(self, app, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.in_flight = 0  # only the event loop's thread changes it

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_in_flight:
            busy = error_response(
                503, StoreUnavailableError.__name__,
                f"the server is busy: {self.in_flight} writes in flight, its limit; try again in "
                f"{BUSY_RETRY_AFTER_SECONDS} s", {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)})
            return await busy(scope, receive, send)
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
