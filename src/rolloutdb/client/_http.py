"""Requests to a RolloutDB server: pooled keep-alive connections (httpx), retries with backoff for requests
that are safe to repeat, and the server's error answers raised again as the exceptions the Python API raises."""

from __future__ import annotations

import json as stdlib_json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import orjson

from .. import errors
from ..config import display_url
from ..errors import ConflictError, RolloutDBError, ServerError, StoreUnavailableError
from ..server import API_PREFIX, CREATE_HEADER, ERROR_TOPIC, PROJECT_HEADER

JSON_CONTENT = {"Content-Type": "application/json"}
RAW_CONTENT = {"Content-Type": "application/octet-stream"}
FIRST_DELAY = 0.1  # seconds before the first retry; doubled each time, up to MAX_DELAY
MAX_DELAY = 2.0


class Transport:
    """One server, one project: every request carries the project (if named), the token (if any), and whether
    the project may be created."""

    def __init__(self, base: str, project: str | None, *, token: str | None, timeout: float, connect_timeout: float,
                 retry_for: float, create: bool = True) -> None:
        self.base = base
        self.timeout = timeout
        self.retry_for = retry_for
        headers = {**({PROJECT_HEADER: project} if project is not None else {}),
                   **({"Authorization": f"Bearer {token}"} if token else {}),
                   **({} if create else {CREATE_HEADER: "false"})}
        self._client = httpx.Client(base_url=base + API_PREFIX, headers=headers,
                                    timeout=httpx.Timeout(timeout, connect=connect_timeout),
                                    limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))

    def request(self, method: str, path: str, *, params: Any = None, body: bytes | None = None, repeatable: bool,
                read_timeout: float | None = None, replay: Callable[[], bytes | None] | None = None,
                content: Iterable[bytes] | None = None, prefer: str | None = None,
                while_waiting: Callable[[], None] | None = None) -> bytes | None:
        """The answer's JSON text (None for 204: no content) to a request of the JSON text ``body``, if any
        (``json_bytes``). ``repeatable``: the request may be sent again when the connection fails or the server
        answers 503, for ``retry_for`` seconds with backoff (honouring Retry-After); after that, or at once for
        another request, StoreUnavailableError. ``replay``: when a request sent again is answered ConflictError,
        what the first try wrote (as JSON text), if it did (else None). ``content``: a raw body instead of JSON,
        sent as it is read (so sent once: ``repeatable`` False). ``prefer``: the request's Prefer header (RFC 7240).
        ``while_waiting``: work the answer needs, done once while the server works (``WhileWaiting``).
        """
        timeout = None if read_timeout is None else httpx.Timeout(read_timeout, connect=self._client.timeout.connect)
        headers = RAW_CONTENT if content is not None else JSON_CONTENT if body is not None else None
        if prefer is not None:
            headers = {**(headers or {}), "Prefer": prefer}
        body = content if content is not None else body
        deadline = time.monotonic() + self.retry_for
        delay = FIRST_DELAY
        sent_before = False
        waiting = WhileWaiting(while_waiting) if while_waiting is not None else None
        while True:
            try:
                response = self._client.request(method, path, params=params, content=body, headers=headers,
                                                **({"timeout": timeout} if timeout else {}),
                                                **({"extensions": {"trace": waiting.trace}} if waiting else {}))
            except httpx.TransportError as exc:
                failure: str = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                wait = delay
            else:
                if response.status_code != 503:
                    try:
                        text = answer(response)
                        if waiting is not None:
                            waiting.finish()
                        return text
                    except ConflictError:
                        written = replay() if sent_before and replay is not None else None
                        if written is None:
                            raise
                        return written
                failure = error_of(response).args[0]
                wait = retry_after(response, delay)
            if not repeatable or time.monotonic() + wait > deadline:
                raise StoreUnavailableError(
                    f"the RolloutDB server at {display_url(self.base)} did not answer {method} {path}: {failure}"
                    + ("" if not repeatable else f" (retried for {self.retry_for:g} s)")) from None
            time.sleep(wait)
            sent_before = True
            delay = min(delay * 2, MAX_DELAY)

    def download(self, path: str) -> httpx.Response:
        """The answer to ``GET path``, its body not read yet (the caller closes it): the error the server names
        if it is one, StoreUnavailableError if the server cannot be reached (sent once)."""
        try:
            response = self._client.send(self._client.build_request("GET", path), stream=True)
        except httpx.TransportError as exc:
            raise StoreUnavailableError(f"the RolloutDB server at {display_url(self.base)} did not answer GET "
                                        f"{path}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            try:
                response.read()
                raise error_of(response)
            finally:
                response.close()
        return response

    def stream_events(self, params: Any, after: int, deadline: float | None,
                      quiet_for: float) -> Iterator[tuple[int | None, str, str]]:
        """The server's event stream (``GET /events``) as (id or None, topic, data) from after the id ``after``
        until ``deadline`` (``time.monotonic()``; None: never). A stream that breaks is opened again after the
        last id it gave, so nothing is missed or repeated; for ``retry_for`` seconds, then StoreUnavailableError.
        ``quiet_for``: the longest the server stays silent (its heartbeat), after which the stream counts as lost."""
        last = after
        delay = FIRST_DELAY
        away_since: float | None = None
        while deadline is None or time.monotonic() < deadline:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            try:
                with self._client.stream("GET", "/events", params=[*params, *([("timeout", remaining)]
                                                                               if remaining else [])],
                                         headers={"Last-Event-ID": str(last)},
                                         timeout=httpx.Timeout(quiet_for + self.timeout,
                                                               connect=self._client.timeout.connect)) as response:
                    if response.status_code != 200:
                        response.read()
                        if response.status_code != 503:
                            raise error_of(response)
                        failure = error_of(response).args[0]
                    else:
                        away_since, delay = None, FIRST_DELAY
                        for id, topic, data in server_sent_events(response.iter_lines()):
                            if id is None and topic == ERROR_TOPIC:  # the stream cannot go on: say why
                                raise error_in(data, "event stream", f"from {display_url(self.base)}")
                            if id is not None:
                                last = id
                            yield id, topic, data
                        continue  # the server ended it (its timeout, or it is stopping): again after the last id
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            away_since = away_since if away_since is not None else time.monotonic()
            if time.monotonic() + delay > away_since + self.retry_for:
                raise StoreUnavailableError(f"the RolloutDB server at {display_url(self.base)} did not keep the event "
                                            f"stream open: {failure} (retried for {self.retry_for:g} s)") from None
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY)

    def close(self) -> None:
        self._client.close()


class WhileWaiting:
    """Work that a request's answer needs but not its sending, done once while the server works on the request
    (the client would only wait then): at httpcore's trace event of starting to read the answer, which comes after
    the whole request is sent. Done after the answer instead when the request never got that far; an error it
    raises is raised after the answer, where the work would otherwise be done."""

    STARTED_READING = "http11.receive_response_headers.started"

    def __init__(self, work: Callable[[], None]) -> None:
        self.work: Callable[[], None] | None = work
        self.error: Exception | None = None

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == self.STARTED_READING and self.work is not None:
            try:
                self.run()
            except Exception as exc:  # raised in httpcore it would fail a request already sent
                self.error = exc

    def run(self) -> None:
        work, self.work = self.work, None
        if work is not None:
            work()

    def finish(self) -> None:
        self.run()
        if self.error is not None:
            raise self.error


def server_sent_events(lines: Iterator[str]) -> Iterator[tuple[int | None, str, str]]:
    """(id, event, data) of each Server-Sent Event in ``lines``; comments (heartbeats) are skipped."""
    id: int | None = None
    topic, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield id, topic, "\n".join(data)
            id, topic, data = None, "message", []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id" and value.isdigit():
            id = int(value)
        elif name == "event":
            topic = value
        elif name == "data":
            data.append(value)


def json_bytes(value: Any) -> bytes:
    """A request body as JSON: by orjson (a batch of spans: several times faster than httpx's json module),
    or by the json module for what orjson does not write (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return stdlib_json.dumps(value).encode()


def retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return default


def answer(response: httpx.Response) -> bytes | None:
    if not response.is_success:
        raise error_of(response)
    return response.content or None


def error_of(response: httpx.Response) -> RolloutDBError:
    """The exception the server's answer names (a class of ``rolloutdb.errors``), with its message; ServerError
    for an answer that names none (a 500, or something that is not a RolloutDB server)."""
    return error_in(response.content, f"HTTP {response.status_code}",
                    f"from {response.request.method} {response.request.url}")


def error_in(body: bytes | str, status: str, where: str) -> RolloutDBError:
    """The exception an error body (``{"error": {"type", "message"}}``) names, as ``error_of`` says."""
    try:
        error = stdlib_json.loads(body)["error"]
        type_name, message = error["type"], str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return ServerError(f"{status} {where}: {text[:500]}")
    kind = getattr(errors, type_name, None) if isinstance(type_name, str) else None
    if not (isinstance(kind, type) and issubclass(kind, RolloutDBError)):
        return ServerError(f"{type_name} ({status}): {message}")
    return kind(message)
