"""The remote Store, made from the server's route table (``rolloutdb.server.ROUTES``): for each route, a method
at its Store call (``rollouts.dequeue_many``) with the local method's signature, which puts the arguments into
the path, query string and JSON body as the route takes them and reads back the route's records.

Besides the table: ``get`` is ``find`` held to the exact id (or a run's name); ``count`` is the listing's total;
``query(limit=None)`` pages through; ``rollouts.wait`` asks again until its own timeout (the server waits at most
``MAX_WAIT_SECONDS`` per request); the conveniences the local areas define over their table calls
(``enqueue``, ``dequeue``, ``spans.add``, ``next_sequence_id``, ``advisor``) are the local code itself. What has no route
raises NotImplementedError saying so."""

from __future__ import annotations

import functools
import inspect
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import quote

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..errors import InvalidInputError, NotFoundError
from ..records import Event
from ..storable import JSON_OPTIONS, json_text, require_storable
from ..server import (HEARTBEAT_SECONDS, MAX_WAIT_SECONDS, PREFER_MINIMAL, ROUTES, TYPED_FILTERS, Operation, Page,
                      invalid_request_message, read_batch_times, time_fields)
from ..store import Store
from ..store.artifacts import Artifacts
from ..store.attempts import Attempts
from ..store.base import (MAX_LIMIT, build_record, build_records, check_key, checked_records, collector_paused,
                          ids_of, not_found, seconds, validation_message)
from ..store.catalog import Tasks, Validators
from ..store.checkpoints import Checkpoints
from ..store.decisions import Decisions, Signals
from ..store.events import Events
from ..store.groups import Groups
from ..store.jobs import Jobs
from ..store.recording import Recording
from ..store.resources import Resources
from ..store.policies import Policies
from ..store.rewards import Rewards
from ..store.rollouts import Rollouts
from ..store.runs import Runs
from ..store.samples import Samples
from ..store.scripts import Scripts
from ..store.spans import Spans
from ..store.steps import Steps
from ..store.tokens import Tokens
from ..store.turns import Turns
from ..store.workers import Workers
from ._artifacts import artifact_methods
from ._http import Transport, json_bytes

# The local areas whose methods the remote ones mirror, at the store's attribute of the same name.
AREAS: dict[str, type] = {
    "runs": Runs, "steps": Steps, "groups": Groups, "validators": Validators, "tasks": Tasks,
    "rollouts": Rollouts, "attempts": Attempts, "spans": Spans, "turns": Turns, "resources": Resources,
    "workers": Workers, "jobs": Jobs, "recording": Recording, "tokens": Tokens, "events": Events,
    "scripts": Scripts, "decisions": Decisions, "signals": Signals, "rewards": Rewards,
    "artifacts": Artifacts, "policies": Policies, "samples": Samples, "checkpoints": Checkpoints,
}
# Local methods written over the area's own table calls: the remote area runs them as they are.
BORROWED = {"": ("advisor",), "rollouts": ("enqueue", "dequeue"), "spans": ("add", "next_sequence_id"),
            "jobs": ("start", "start_async"), "artifacts": ("read",)}
# Writes that change nothing when sent twice, so a request whose answer was lost may be sent again.
REPEATABLE = {"rollouts.wait", "tasks.save", "validators.save", "workers.heartbeat", "attempts.heartbeat",
              "check_health", "tokens.revoke", "scripts.record", "scripts.activate", "artifacts.link",
              "artifacts.link_many", "artifacts.gc", "decisions.declare", "policies.activate", "advise"}
# Writes whose rows the client gives ids (when the caller did not): stored once by id, so they may be sent again.
CLIENT_IDS = {"decisions.log": "decision", "decisions.log_many": "decision", "signals.add": "signal",
              "signals.add_many": "signal"}


class Remote:
    """The calls of one server and project: what every generated method goes through."""

    areas: dict[str, Any]  # the remote store's areas, by name: where a write sent again reads back its rows
    max_artifact_bytes: int  # the largest artifact the server's store takes (artifacts.put sends no more)

    def __init__(self, transport: Transport, project: str, new_id: Callable[[str], str]) -> None:
        self.transport = transport
        self.project = project
        self.new_id = new_id  # the store's: ids of the server's shapes, made here

    def call(self, operation: Operation, arguments: Mapping[str, Any], defaults: Mapping[str, Any],
             read_timeout: float | None = None) -> Any:
        """Make ``operation``'s request with the arguments given (``defaults``: the call's defaults of those
        left out, for the path) and return its answer as records."""
        arguments = dict(arguments)
        path = operation.path
        for name in operation.path_parameters:
            noun = noun_of(operation) if name.startswith(("id", "name")) else name.removesuffix("_id").replace("_", " ")
            value = check_key(noun, arguments.pop(name) if name in arguments else defaults[name])
            path = re.sub("{%s(:path)?}" % name, lambda match: quote(value, safe="/" if match[1] else ""), path)
        params: list[tuple[str, Any]] = []
        query_fields = set(operation.query.model_fields) - {TYPED_FILTERS} if operation.query is not None else set()
        spelled_none = getattr(operation.query, "spelled_none", {})
        query = {name: arguments.pop(name) for name in list(arguments) if name in query_fields}
        if query:
            checked(operation.query, query)
        for name, value in query.items():
            params += query_parameters(name, spelled_none.get(name) if value is None else value)
        json: Any = None
        text = replay = None
        exact = False
        if operation.body_argument is not None:
            body = arguments.pop(operation.body_argument)
            if isinstance(body, Iterable) and not isinstance(body, (str, bytes, Mapping)):
                body = list(body)
            json, text, replay, exact = self._sendable(operation, body)
        elif operation.body is not None:
            if operation.fields is None:
                checked(operation.body, arguments)
            (json, text, replay, exact), arguments = self._sendable(operation, arguments), {}
        if operation.listing is not None:
            if arguments:
                params.append((TYPED_FILTERS, typed_filters(operation.listing, arguments)))
        elif arguments:
            raise TypeError(f"{operation.call}() got unexpected arguments {', '.join(arguments)}")
        minimal = exact and operation.made and isinstance(json, list)
        awaiting: list[Any] = []  # with ``minimal``, the records but for what the store makes: built meanwhile
        answer = self.transport.request(
            operation.method, path, params=params or None, body=text, read_timeout=read_timeout,
            repeatable=safe_to_repeat(operation, json, replay), replay=replay,
            prefer=PREFER_MINIMAL if minimal else None,
            while_waiting=(lambda: awaiting.extend(records_awaiting_made(operation, json))) if minimal else None)
        if operation.response is None:
            return None
        if minimal and answer is not None and answer.startswith(b"{"):  # the full answer is an array
            return records_from_made(operation, awaiting, answer)
        # From JSON text: records are strict, and JSON is how their times and choices are written. A batch of
        # records is many new objects without cycles (see collector_paused).
        with collector_paused():
            return adapter(operation.response).validate_json(answer)

    def _sendable(self, operation: Operation,
                  body: Any) -> tuple[Any, bytes, Callable[[], bytes | None] | None, bool]:
        """The body as JSON, as JSON text, ``_with_client_ids``'s replay, and whether the server's store gets the
        very values of the JSON (times as times): a batch of a record's fields that reaches the server as given
        as it is (``as_given``: spans, as a rule); else each value as JSON holds it (``jsonable``), and a record's
        fields held to its types where JSON changed them (``held_to_fields``). A value JSON cannot carry at all is
        refused after a value of the wrong type, as the store refuses them."""
        body_with_ids, replay = self._with_client_ids(operation, body)
        if operation.fields is not None and operation.body_argument is not None:
            given = as_given(operation.fields, body_with_ids)
            if given is not None:
                return *given, replay, True
        try:
            json = jsonable(body_with_ids)
        except InvalidInputError:
            if operation.fields is not None:
                held_to_fields(operation, body, None)
            raise
        if operation.fields is not None:
            held_to_fields(operation, body, json)
        return json, json_bytes(json), replay, False

    def _with_client_ids(self, operation: Operation, body: Any) -> tuple[Any, Callable[[], bytes | None] | None]:
        """The body with ids made here for the rows a create or enqueue writes, so that it may be sent again: a
        row the first try stored is found by its id (``replay``) instead of being stored twice."""
        if operation.call == "rollouts.enqueue_many" and isinstance(body, list) and all(
                isinstance(request, Mapping) and "id" not in request for request in body):
            ids = [self.new_id("rollout") for _ in body]
            area = self.areas["rollouts"]

            def stored_rollouts() -> bytes | None:
                found = {rollout.id: rollout for rollout in area.query(id=ids, limit=len(ids))}
                if len(found) < len(ids):
                    return None  # the conflict is the caller's own
                return adapter(operation.response).dump_json([found[id] for id in ids])

            return [{**request, "id": id} for request, id in zip(body, ids)], stored_rollouts
        if operation.call in CLIENT_IDS:
            kind = CLIENT_IDS[operation.call]
            if isinstance(body, list):
                return [{**item, "id": self.new_id(kind)} if isinstance(item, Mapping) and item.get("id") is None
                        else item for item in body], None
            return ({**body, "id": self.new_id(kind)} if body.get("id") is None else body), None
        if operation.call.endswith(".create") and "id" in operation.body.model_fields and "id" not in body:
            made = self.new_id(operation.call.partition(".")[0].removesuffix("s"))
            area = self.areas[operation.call.partition(".")[0]]

            def stored_row() -> bytes | None:
                try:
                    return area.find(made).model_dump_json().encode()
                except NotFoundError:
                    return None  # the conflict is the caller's own

            return {**body, "id": made}, stored_row
        return body, None


def records_awaiting_made(operation: Operation, sent: list[dict[str, Any]]) -> list[Any]:
    """The records of an answer that will hold only what the store made of each (see ``PREFER_MINIMAL``), built
    from ``sent`` (as the server's store got it, and checked it: ``as_given``) while the server works, with those
    fields None for ``records_from_made`` to fill in. ``sent``'s values become the records' (``checked_records``)."""
    placeholders = dict.fromkeys(operation.made)
    with collector_paused():
        return checked_records(get_args(operation.response)[0], [{**item, **placeholders} for item in sent])


def records_from_made(operation: Operation, awaiting: list[Any], answer: bytes) -> list[Any]:
    """The records of an answer that holds only what the store made of each sent item, in the order it gives
    them (a span stored before is left out): ``awaiting``'s, with those values, times read as times, which is what
    the full answer would give."""
    made = orjson.loads(answer)
    names = made["made"]
    times = [place for place, name in enumerate(names, 1) if name in time_fields(get_args(operation.response)[0])]
    records = []
    for row in made["rows"]:
        for place in times:
            if row[place] is not None:
                row[place] = datetime.fromisoformat(row[place])
        record = awaiting[row[0]]
        vars(record).update(zip(names, row[1:]))
        records.append(record)
    return records


def checked(model: type[BaseModel], values: dict[str, Any]) -> None:
    """JSON and query strings carry fewer types than Python, and the server reads them leniently: arguments are
    held to the route's model here, strictly (``"10"`` is no limit), as the local call holds them."""
    lists = list_fields(model)
    try:
        model.model_validate({name: list(value) if name in lists and isinstance(value, (tuple, set, frozenset))
                              else value for name, value in values.items()}, strict=True)
    except ValidationError as exc:
        raise InvalidInputError(invalid_request_message(exc.errors(include_url=False))) from None


@functools.lru_cache(maxsize=None)
def list_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` that hold a list, which the local call takes as any collection (ids as a set, say);
    not a JSON value, which JSON would turn a set or a tuple into a list for, where the store refuses them."""
    def holds_list(kind: Any) -> bool:
        origin = get_origin(kind)
        return origin is list or (origin in (Annotated, Union, UnionType) and any(map(holds_list, get_args(kind))))

    return frozenset(name for name, info in model.model_fields.items() if holds_list(info.annotation))


def as_given(model: type[BaseModel], values: Any) -> tuple[list[Any], bytes] | None:
    """A batch of ``model``'s fields as JSON, and as the server reads it (``read_times``), when that equals what was
    given: the server's store then takes the very values a store called here would, and holds them to the same
    rules, so nothing needs holding here first. Two passes in C where ``jsonable`` and ``held_to_fields`` go
    value by value in Python: the usual batch of spans. None when JSON would change a value or cannot carry it
    (a tuple, a NaN, bytes, text that spells a time): the caller takes the long way, which says what."""
    if type(values) is not list:
        return None
    try:
        text = orjson.dumps(values, option=JSON_OPTIONS)
    except TypeError:
        return None
    try:
        read = read_batch_times(model, orjson.loads(text))
        return (read, text) if read == values else None
    except ValueError:  # a NumPy array compares item by item
        return None


def held_to_fields(operation: Operation, values: Any, sent: Any) -> None:
    """A record's fields (a list of them, with ``body_argument``) that JSON changes on the way (``sent``: their
    JSON; None: any but a JSON scalar), held to the record's own types, strictly, as the store holds them: a str
    given for a time would arrive as a time, bytes as text, a set or a tuple as a list, and the store would take
    them then. Refused here in the store's words; values JSON carries as they are, what is no field of the record,
    or no mapping of fields, are left to the store itself."""
    model, noun = operation.fields, noun_of(operation)
    if operation.body_argument is None:
        changed = changed_by_json(model, values, sent)
        build_record(model, changed, noun)
        held_to_storable(changed)
    elif isinstance(values, list) and all(isinstance(item, Mapping) for item in values):
        changed = [changed_by_json(model, item, as_sent)
                   for item, as_sent in zip(values, sent if sent is not None else [None] * len(values))]
        if any(changed):
            build_records(model, changed, noun)
            for item in changed:  # a batch is written in bulk, whose errors name the table (the area)
                held_to_storable(item, operation.call.partition(".")[0])


def held_to_storable(fields: Mapping[str, Any], table: str | None = None) -> None:
    """Fields that their record's types let through (a span's free-form ones take any value) held to what the
    database can hold (``storable``'s rule), as the store holds them when it writes them: bytes or a set, which JSON
    would carry as text and a list, are refused."""
    for name, value in fields.items():
        require_storable(name, value, table)


def changed_by_json(model: type[BaseModel], values: Mapping[str, Any],
                    sent: Mapping[str, Any] | None) -> dict[str, Any]:
    names, times = field_names(model), time_fields(model)
    return {name: value for name, value in values.items() if name in names and (
        isinstance(value, str) if name in times  # a datetime is read back as one, a str would be too
        else type(value) not in JSON_SCALARS and (sent is None or differs(sent[name], value)))}


JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


@functools.lru_cache(maxsize=None)
def field_names(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(model.model_fields)


def differs(sent: Any, given: Any) -> bool:
    """Whether JSON made ``sent`` of ``given`` other than it was (a tuple a list, a datetime a string)."""
    try:
        return bool(sent != given)
    except ValueError:  # a NumPy array compares item by item
        return True


def noun_of(operation: Operation) -> str:
    area = operation.call.partition(".")[0]
    return getattr(AREAS.get(area), "noun", area)


def typed_filters(record: type, filters: Mapping[str, Any]) -> str:
    """A listing's filters as the JSON object of the ``filters`` query parameter, which the server gives the store
    as they are: each value keeps its JSON type for the store to check (a query string's ``field=value`` has none).
    A str given for a time, which JSON would make a time on the way, is refused here, as the store refuses it."""
    times = time_fields(record)
    members = []
    for key, value in filters.items():
        if key.partition("__")[0] in times:
            for item in value if isinstance(value, (list, tuple, set, frozenset)) else [value]:
                if isinstance(item, (str, bytes)):
                    try:
                        adapter(record.model_fields[key.partition("__")[0]].annotation).validate_python(
                            item, strict=True)
                    except ValidationError as exc:
                        raise InvalidInputError(f"filter {key!r}: {validation_message(exc)}") from None
        try:
            # ASCII, so that a NUL or a lone surrogate reaches the store, which names it.
            text = json.dumps(value, ensure_ascii=True, allow_nan=False, default=json_default)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"filter {key!r}: {exc}") from None
        members.append(f"{json.dumps(str(key))}:{text}")
    return "{" + ",".join(members) + "}"


def json_default(value: Any) -> Any:
    """What the standard JSON encoder does not take, as JSON: times (ISO 8601), NumPy values, enums, sets."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, bytes) or not isinstance(converted := json_field("", value), (str, int, float, bool, list,
                                                                                        dict, type(None))):
        raise TypeError(f"{type(value).__name__} is not JSON")
    return converted


def safe_to_repeat(operation: Operation, body: Any, replay: Callable[[], Any] | None) -> bool:
    """Whether a request may be sent again when its answer did not come: a read, a write that changes nothing
    the second time, one whose rows are found by the ids made here (``replay``), or spans that all carry their
    sequence id (the store skips those it has; the retry returns only the others)."""
    if operation.call == "spans.add_many":
        return isinstance(body, list) and all(isinstance(span, dict) and span.get("sequence_id") is not None
                                              for span in body)
    return operation.method == "GET" or operation.call in REPEATABLE or operation.call in CLIENT_IDS or replay is not None


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
        rollout_ids = ids_of("rollout", arguments["rollout_ids"])
        timeout = arguments.get("timeout")
        deadline = None if timeout is None else time.monotonic() + seconds("timeout", timeout)
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
            seconds("timeout", timeout)
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
    if owner == "artifacts.":
        methods.update(artifact_methods(methods))
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
