"""The remote Store, made from the server's route table (``rolloutdb.server.ROUTES``): for each route, a method
at its Store call (``rollouts.dequeue_many``) with the local method's signature, which puts the arguments into
the path, query string and JSON body as the route takes them and reads back the route's records.

Besides the table: ``get`` is ``find`` held to the exact id (or a run's name); ``count`` is the listing's total;
``query(limit=None)`` pages through; ``rollouts.wait`` asks again until its own timeout (the server waits at most
``MAX_WAIT_SECONDS`` per request); the conveniences the local areas define over their table calls
(``enqueue``, ``dequeue``, ``spans.add``, ``next_sequence_id``) are the local code itself. What has no route
raises NotImplementedError saying so."""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..errors import InvalidInputError, NotFoundError
from ..ids import new_id
from ..records import Event
from ..server import HEARTBEAT_SECONDS, MAX_WAIT_SECONDS, ROUTES, Operation, Page, RecordFields, invalid_request_message
from ..storable import json_text, require_storable
from ..store import Store
from ..store.attempts import Attempts
from ..store.base import MAX_LIMIT, not_found
from ..store.base import seconds as checked_seconds
from ..store.catalog import Tasks, Validators
from ..store.events import Events
from ..store.groups import Groups
from ..store.jobs import Jobs
from ..store.recording import Recording
from ..store.resources import Resources
from ..store.rollouts import Rollouts
from ..store.runs import Runs
from ..store.spans import Spans
from ..store.steps import Steps
from ..store.tokens import Tokens
from ..store.turns import Turns
from ..store.workers import Workers
from ._http import Transport

# The local areas whose methods the remote ones mirror, at the store's attribute of the same name.
AREAS: dict[str, type] = {
    "runs": Runs, "steps": Steps, "groups": Groups, "validators": Validators, "tasks": Tasks,
    "rollouts": Rollouts, "attempts": Attempts, "spans": Spans, "turns": Turns, "resources": Resources,
    "workers": Workers, "jobs": Jobs, "recording": Recording, "tokens": Tokens, "events": Events,
}
# Local methods written over the area's own table calls: the remote area runs them as they are.
BORROWED = {"rollouts": ("enqueue", "dequeue"), "spans": ("add", "next_sequence_id"),
            "jobs": ("start", "start_async")}
# Writes that change nothing when sent twice, so a request whose answer was lost may be sent again.
REPEATABLE = {"rollouts.wait", "tasks.save", "validators.save", "workers.heartbeat", "attempts.heartbeat",
              "check_health", "tokens.revoke"}


class Remote:
    """The calls of one server and project: what every generated method goes through."""

    areas: dict[str, Any]  # the remote store's areas, by name: where a write sent again reads back its rows

    def __init__(self, transport: Transport, project: str) -> None:
        self.transport = transport
        self.project = project

    def call(self, operation: Operation, arguments: Mapping[str, Any], defaults: Mapping[str, Any],
             read_timeout: float | None = None) -> Any:
        """Make ``operation``'s request with the arguments given (``defaults``: the call's defaults of those
        left out, for the path) and return its answer as records."""
        arguments = dict(arguments)
        path = operation.path
        for name in operation.path_parameters:
            value = arguments.pop(name) if name in arguments else defaults[name]
            if not isinstance(value, str):
                raise InvalidInputError(f"invalid request: {name}: a row is named by a string, got "
                                        f"{type(value).__name__} {value!r:.80}")
            path = re.sub("{%s(:path)?}" % name, lambda match: quote(value, safe="/" if match[1] else ""), path)
        params: list[tuple[str, Any]] = []
        query_fields = operation.query.model_fields if operation.query is not None else {}
        spelled_none = getattr(operation.query, "spelled_none", {})
        query = {name: arguments.pop(name) for name in list(arguments) if name in query_fields}
        if query:
            checked(operation.query, query)
        for name, value in query.items():
            params += query_parameters(name, spelled_none.get(name) if value is None else value)
        json: Any = None
        replay = None
        if operation.body_argument is not None:
            json, replay = self._with_client_ids(operation, list(arguments.pop(operation.body_argument)))
        elif operation.body is not None:
            if not issubclass(operation.body, RecordFields):
                checked(operation.body, arguments)
            (json, replay), arguments = self._with_client_ids(operation, arguments), {}
        if operation.listing is not None:
            for name, value in arguments.items():
                params += filter_parameters(name, value)
        elif arguments:
            raise TypeError(f"{operation.call}() got unexpected arguments {', '.join(arguments)}")
        answer = self.transport.request(
            operation.method, path, params=params or None, json=json, read_timeout=read_timeout,
            repeatable=safe_to_repeat(operation, json, replay), replay=replay)
        # From JSON text: records are strict, and JSON is how their times and choices are written.
        return None if operation.response is None else adapter(operation.response).validate_json(answer)

    def _with_client_ids(self, operation: Operation, body: Any) -> tuple[Any, Callable[[], bytes | None] | None]:
        """The body with ids made here for the rows a create or enqueue writes, so that it may be sent again: a
        row the first try stored is found by its id (``replay``) instead of being stored twice."""
        if operation.call == "rollouts.enqueue_many" and all("id" not in request for request in body):
            ids = [new_id() for _ in body]
            area = self.areas["rollouts"]

            def stored_rollouts() -> bytes | None:
                found = {rollout.id: rollout for rollout in area.query(id=ids, limit=len(ids))}
                if len(found) < len(ids):
                    return None  # the conflict is the caller's own
                return adapter(operation.response).dump_json([found[id] for id in ids])

            return [{**jsonable(request), "id": id} for request, id in zip(body, ids)], stored_rollouts
        if operation.call.endswith(".create") and "id" in operation.body.model_fields and "id" not in body:
            made = new_id()
            area = self.areas[operation.call.partition(".")[0]]

            def stored_row() -> bytes | None:
                try:
                    return area.find(made).model_dump_json().encode()
                except NotFoundError:
                    return None  # the conflict is the caller's own

            return jsonable({**body, "id": made}), stored_row
        return jsonable(body), None


def checked(model: type[BaseModel], values: dict[str, Any]) -> None:
    """JSON and query strings carry fewer types than Python, and the server reads them leniently: arguments are
    held to the route's model here, strictly (``"10"`` is no limit), as the local call holds them."""
    try:
        model.model_validate({name: list(value) if isinstance(value, (tuple, set, frozenset)) else value
                              for name, value in values.items()}, strict=True)
    except ValidationError as exc:
        raise InvalidInputError(invalid_request_message(exc.errors(include_url=False))) from None


def safe_to_repeat(operation: Operation, body: Any, replay: Callable[[], Any] | None) -> bool:
    """Whether a request may be sent again when its answer did not come: a read, a write that changes nothing
    the second time, one whose rows are found by the ids made here (``replay``), or spans that all carry their
    sequence id (the store skips those it has; the retry returns only the others)."""
    if operation.call == "spans.add_many":
        return all(isinstance(span, dict) and span.get("sequence_id") is not None for span in body)
    return operation.method == "GET" or operation.call in REPEATABLE or replay is not None


@functools.lru_cache(maxsize=None)
def adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def jsonable(value: Any) -> Any:
    """``value`` as JSON holds it (records as dicts, times as ISO 8601, iterables as lists); InvalidInputError
    naming the field for what the database could not hold (``storable``'s rule) or JSON cannot carry."""
    try:  # the usual case, in one pass: everything converts and can be stored (a batch of spans: 4x faster)
        converted = to_jsonable_python(value, fallback=_fallback)
        for item in converted if isinstance(converted, list) else [converted]:
            json_text(item)  # item by item: a dict's own None fields spare it the closer look
        return converted
    except (TypeError, ValueError, PydanticSerializationError):
        pass  # Unstorable is a ValueError: found again below, field by field, to name where it is
    if isinstance(value, Mapping):
        return {key: json_field(str(key), item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return json_field("", value)


def _fallback(item: Any) -> Any:
    if hasattr(item, "tolist") and hasattr(item, "dtype"):  # NumPy scalars and arrays, as storable takes them
        return item.tolist()
    if isinstance(item, Iterable):
        return list(item)
    raise TypeError(f"{type(item).__name__} is not JSON")


def json_field(field: str, value: Any) -> Any:
    try:
        converted = to_jsonable_python(value, fallback=_fallback)
    except (TypeError, ValueError, PydanticSerializationError):
        require_storable(field, value)  # names where inside the value the problem is
        raise InvalidInputError(f"cannot store {field}: {type(value).__name__} is not JSON") from None
    require_storable(field, converted)
    return converted


def query_parameters(name: str, value: Any) -> list[tuple[str, Any]]:
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    return [(name, item) for item in jsonable(list(values)) if item is not None]


def filter_parameters(name: str, value: Any) -> list[tuple[str, Any]]:
    """A listing filter as the server reads it: ``field=None`` is ``field__isnull=true``; a list of values, the
    field given once for each (``__in`` when it has one value, which would otherwise read as ``eq``)."""
    if value is None and "__" not in name:
        return [(f"{name}__isnull", "true")]
    if isinstance(value, (list, tuple, set, frozenset)) and len(value) == 1 and "__" not in name:
        name = f"{name}__in"
    return query_parameters(name, value)


def given(signature: inspect.Signature, args: tuple, kwargs: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments a call was given, by name (``**fields`` spread out), and the defaults of the others."""
    bound = signature.bind(None, *args, **kwargs)
    arguments: dict[str, Any] = {}
    for name, value in list(bound.arguments.items())[1:]:
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        else:
            arguments[name] = value
    defaults = {name: parameter.default for name, parameter in signature.parameters.items()
                if parameter.default is not inspect.Parameter.empty}
    return arguments, defaults


def method_like(local: Callable[..., Any], body: Callable[..., Any]) -> Callable[..., Any]:
    """``body(self, arguments, defaults)`` as a method with ``local``'s name, signature and documentation."""
    signature = inspect.signature(local)

    def method(self, *args: Any, **kwargs: Any) -> Any:
        return body(self, *given(signature, args, kwargs))

    functools.update_wrapper(method, local)
    del method.__wrapped__  # the signature is the local one, read from __signature__
    method.__signature__ = signature  # type: ignore[attr-defined]
    return method


def route_method(operation: Operation, local: Callable[..., Any]) -> Callable[..., Any]:
    return method_like(local, lambda self, arguments, defaults: self._remote.call(operation, arguments, defaults))


def listing_methods(operation: Operation, kind: type) -> dict[str, Callable[..., Any]]:
    """``query`` (``limit=None`` pages through) and ``count`` (the total of an empty page) of a listing."""
    def one_page(self, arguments: dict[str, Any]) -> Page:
        return self._remote.call(operation, arguments, {})

    def query(self, arguments: dict[str, Any], defaults: dict[str, Any]) -> list[Any]:
        if arguments.get("limit", 0) is not None:
            return one_page(self, arguments).items
        rows, offset = [], arguments.get("offset", 0)
        while True:
            items = one_page(self, {**arguments, "limit": MAX_LIMIT, "offset": offset}).items
            rows += items
            offset += len(items)
            if len(items) < MAX_LIMIT:
                return rows

    def count(self, arguments: dict[str, Any], defaults: dict[str, Any]) -> int:
        return one_page(self, {**arguments, "limit": 0}).total

    return {"query": method_like(getattr(kind, "query"), query), "count": method_like(getattr(kind, "count"), count)}


def exact_get(kind: type) -> Callable[..., Any]:
    """``get``: the row ``find`` finds, when its id (or a run's name) is the one asked for."""
    def get(self, arguments: dict[str, Any], defaults: dict[str, Any]) -> Any:
        (key,) = arguments.values()
        record = self.find(key)
        if key not in (record.id, getattr(record, "name", None)):
            raise not_found(kind.noun, key, self._remote.project)
        return record

    return method_like(kind.get, get)


def waiting(operation: Operation) -> Callable[..., Any]:
    """``rollouts.wait`` for any timeout: one request per ``MAX_WAIT_SECONDS`` at most, until the rollouts
    finish or the timeout passes; each request may take its wait and the client's read timeout."""
    def wait(self, arguments: dict[str, Any], defaults: dict[str, Any]) -> Any:
        rollout_ids = list(arguments["rollout_ids"])
        timeout = arguments.get("timeout")
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            chunk = MAX_WAIT_SECONDS if deadline is None else min(max(deadline - time.monotonic(), 0.0),
                                                                   MAX_WAIT_SECONDS)
            finished = self._remote.call(operation, {"rollout_ids": rollout_ids, "timeout": chunk}, {},
                                         read_timeout=chunk + self._remote.transport.timeout)
            if len(finished) == len(set(rollout_ids)) or (deadline is not None and time.monotonic() >= deadline):
                return finished

    return method_like(Rollouts.wait, wait)


def following(query: Operation, latest: Operation) -> Callable[..., Any]:
    """``events.follow`` through the server's event stream (``GET /api/v1/events``), resumed after the last id
    whenever it breaks. The filters are checked at the call, as locally, by a request of the same filters."""
    def follow(self, arguments: dict[str, Any], defaults: dict[str, Any]) -> Any:
        topics, run, timeout = arguments.get("topics"), arguments.get("run"), arguments.get("timeout")
        after = arguments.get("after")
        self._remote.call(query, {"after": 0 if after is None else after, "topics": topics, "run": run,
                                  "limit": 1}, {})
        if timeout is not None:
            checked_seconds("timeout", timeout)
        start = self._remote.call(latest, {}, {}) if after is None else after
        params = [*query_parameters("topic", topics or []), *query_parameters("run", run)]
        deadline = None if timeout is None else time.monotonic() + timeout
        stream = self._remote.transport.stream_events(params, start, deadline, HEARTBEAT_SECONDS)
        return (adapter(Event).validate_json(data) for id, _, data in stream if id is not None)

    return method_like(Events.follow, follow)


def unavailable(owner: str, name: str, local: Callable[..., Any]) -> Callable[..., Any]:
    def absent(self, arguments: dict[str, Any], defaults: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{owner}{name}() has no route on the server yet (issue 15): call it on a store "
                                  "connected to the database")

    return method_like(local, absent)


def methods_of(kind: type, owner: str, operations: list[Operation]) -> dict[str, Callable[..., Any]]:
    """The remote methods of one local class (an area, or the Store itself with ``owner`` empty)."""
    methods: dict[str, Callable[..., Any]] = {}
    for operation in operations:
        name = operation.call.rpartition(".")[2]
        if operation.listing is not None:
            methods.update(listing_methods(operation, kind))
        elif operation.call == "rollouts.wait":
            methods[name] = waiting(operation)
        elif operation.call == "events.query":
            methods[name] = route_method(operation, getattr(kind, name))
            methods["follow"] = following(operation, next(op for op in operations if op.call == "events.latest_id"))
        else:
            methods[name] = route_method(operation, getattr(kind, name))
    if "find" in methods:
        methods["get"] = exact_get(kind)
    for name in BORROWED.get(owner.rstrip("."), ()):
        methods[name] = getattr(kind, name)
    for name, local in inspect.getmembers(kind, inspect.isfunction):
        if not name.startswith("_") and name not in methods:
            methods[name] = unavailable(owner, name, local)
    return methods


def operations_of(owner: str) -> list[Operation]:
    return [operation for operation in ROUTES if operation.call.rpartition(".")[0] == owner]


class RemoteArea:
    """An area of a remote store: its methods are made from the route table (``methods_of``)."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote


REMOTE_AREAS = {
    area: type(f"Remote{kind.__name__}", (RemoteArea,),
               {"__doc__": f"``store.{area}`` through a server.", "noun": getattr(kind, "noun", area),
                **methods_of(kind, f"{area}.", operations_of(area))})
    for area, kind in AREAS.items()
}
STORE_METHODS = methods_of(Store, "", operations_of(""))
