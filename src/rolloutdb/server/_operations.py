"""How a route is declared: an ``Operation`` names one Store call and how its arguments travel over HTTP
(path, query, JSON body), and what it answers with. Factories give the routes every area of one kind has.

The declarations are data, not code: the server mounts them (``_app``), and a remote client can be made from
the same list — for each operation, a method at ``operation.call`` on a client store that puts its arguments
into the path, query and body the same way and reads back ``operation.response``."""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.fields import FieldInfo

from ..records import Record
from ..store.base import DEFAULT_LIMIT, MAX_LIMIT, Area

T = TypeVar("T")


@dataclass(frozen=True)
class Operation:
    """One route: ``method path`` runs the Store call ``call`` (``"rollouts.dequeue_many"``).

    Its keyword arguments are the path's parameters (named as the call names them), the fields of ``query``
    and those of ``body`` given in the request; or, with ``body_argument``, the whole body is that one
    argument (a list). ``listing``: the call is an area's ``query``; the answer is a ``Page`` with the total
    its ``count`` gives, and query parameters other than ``query``'s are its filters. ``required_role``: what
    an API token needs to make the call (reader < writer < admin)."""

    method: str
    path: str  # below /api/v1, in FastAPI's syntax ({name}, {name:path} for run names that hold "/")
    call: str
    summary: str
    response: Any = None  # None: 204, no content
    query: type[BaseModel] | None = None
    body: Any = None  # a model, or with body_argument any type (list[Model])
    body_argument: str | None = None
    listing: type[Record] | None = None  # the record whose fields filter a listing
    status_code: int = 200
    role: str | None = None  # the least API token role that may call it (None: reader for GET, writer otherwise)
    made: tuple[str, ...] = ()  # the fields of the answered records that the store makes: see PREFER_MINIMAL

    @property
    def required_role(self) -> str:
        return self.role or ("reader" if self.method == "GET" else "writer")

    @property
    def path_parameters(self) -> list[str]:
        return [name.partition(":")[0] for name in re.findall(r"{([^}]+)}", self.path)]

    @property
    def fields(self) -> type[RecordFields] | None:
        """The model of a record's fields that the body is (or, with ``body_argument``, a list of), if it is one:
        such a body goes to the store as JSON gave it, for the store to check (``RecordFields``)."""
        body = get_args(self.body)[0] if get_origin(self.body) is list else self.body
        return body if isinstance(body, type) and issubclass(body, RecordFields) else None


# RFC 7240: a request that prefers it, of a call whose records are the request's own items with what the store made
# (``Operation.made``), is answered with only what the store made: ``{"made": [the names of those fields], "rows":
# [[the item's place in the request, the values of those fields], ...]}``, a row for each record the full answer
# holds, in its order (the server gives the items it writes ids, to find their places). Its client has the rest.
PREFER_MINIMAL = "return=minimal"


class Page(BaseModel, Generic[T]):
    """One page of a listing: its rows, how many rows match in all, and where the page is."""

    items: list[T]
    total: int
    limit: int
    offset: int


class Strict(BaseModel):
    """Request models: a field the call does not take is an error, as it is in Python. Read leniently, as a query
    string must be (its values are all text)."""

    model_config = ConfigDict(extra="forbid")


class StrictBody(Strict):
    """Request bodies (but a record's fields, ``RecordFields``): JSON values taken as the types JSON gives them, as
    the store takes a Python caller's (``"5"`` is no limit, ``1`` no flag). A field that JSON must spell in another
    type (a duration, a pair) says so (``Strict(False)``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


PAGE_WINDOW = ("sort", "order", "limit", "offset")  # what a listing's count does not take
TYPED_FILTERS = "filters"  # the query parameter of filters as JSON, typed (``Paging.filters``)


class Paging(BaseModel):
    """A listing's window and order. Its other query parameters are filters, read apart (``_app.filters_from``)."""

    sort: str | None = Field(None, description="A sortable field of the area; default: its own order.")
    order: str = Field("asc", description="asc or desc.")
    limit: int = Field(DEFAULT_LIMIT, description=f"At most this many rows (0 to {MAX_LIMIT:,}).")
    offset: int = Field(0, description="Rows to skip.")
    match: str = Field("all", description="all: every filter holds; any: one does.")
    filters: str | None = Field(None, description='Filters as one JSON object, {"field" or "field__op": value}, each '
                                                  "value as JSON types it (the remote client sends its filters so).")


class SpanScope(Paging):
    """Spans of a rollout's latest attempt by default, as ``store.spans.query``."""

    rollout_id: str | None = None
    attempt_id: str | None = Field("latest", description="An attempt's id, latest, or all (every attempt).")
    spelled_none: ClassVar[dict[str, str]] = {"attempt_id": "all"}  # how a client asks for the call's None

    @field_validator("attempt_id")
    @classmethod
    def _all_attempts(cls, value: str | None) -> str | None:
        return None if value == "all" else value


class RecordFields(Strict):
    """Request models of a record's fields. The server documents a body by them but does not check it: the body
    goes to the store as JSON gave it (its times read as times, ``read_times``), and the store checks it as it
    checks a Python caller's fields, in its own words. A remote client holds a caller's values to them strictly
    (the record's own types) before sending, for what JSON would change on the way (a str given for a time, bytes
    for text, a set for a list). The other request models take the call's own Python types, read by FastAPI; a
    client holds its arguments to them strictly too."""

    model_config = ConfigDict(strict=True)


@functools.lru_cache(maxsize=None)
def time_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` (a record or a model of its fields) that hold a time."""
    def holds_time(kind: Any) -> bool:
        return kind is AwareDatetime or (isinstance(kind, type) and issubclass(kind, datetime)) or any(
            holds_time(inner) for inner in get_args(kind))

    return frozenset(name for name, info in model.model_fields.items() if holds_time(info.annotation))


def read_times(model: type[BaseModel], values: Any) -> Any:
    """``values`` (a JSON object of ``model``'s fields, or of filters on them, ``field__op``) with the strings given
    for its time fields read as the times they spell (ISO 8601): JSON has no times. Anything else is left as it
    is, a string that is no time too, for the store to refuse in its own words, naming the field."""
    if not isinstance(values, dict):
        return values
    times = time_fields(model)
    if times.isdisjoint(values) and "__" not in "".join(values):  # no time in it (most spans): as it is, at once
        return values
    return {key: _time(value) if key.partition("__")[0] in times else value for key, value in values.items()}


def read_batch_times(model: type[BaseModel], items: list[Any]) -> list[Any]:
    """``read_times`` of each of ``items``: the list as it is, at once, when none of them names a time field (a
    batch of spans, as a rule), found in one pass over their keys."""
    if all(type(item) is dict for item in items):
        keys = set().union(*items)
        if time_fields(model).isdisjoint(keys) and "__" not in "".join(keys):
            return items
    return [read_times(model, item) for item in items]


def _time(value: Any) -> Any:
    if isinstance(value, list):  # the values of field__in
        return [_one_time(item) for item in value]
    return _one_time(value)


def _one_time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    return value


def field_type(info: FieldInfo) -> Any:
    """A record field's type with its constraints (an INTEGER column's range, a name's length)."""
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def input_model(record: type[Record], name: str, fields: frozenset[str] | None = None,
                base: type[BaseModel] = RecordFields, **extra: Any) -> type[BaseModel]:
    """A request body of ``record``'s fields (those in ``fields``, if given), each optional: what is left
    out is left to the store, which checks what is required and says so by field. ``base``: ``Strict`` for
    rows inside another body, which FastAPI reads (leniently, as JSON spells times). ``extra``: more fields,
    as ``create_model`` takes them."""
    declared = {
        field_name: (field_type(info), Field(None, description=info.description))
        for field_name, info in record.model_fields.items()
        if field_name != "project_id" and (fields is None or field_name in fields)
    }
    return create_model(name, __base__=base, **declared, **extra)


def editable_area(area: str, kind: type[Area], *, key: str = "{id}",
                  extra: tuple[Operation, ...] = ()) -> list[Operation]:
    """The routes of an ``EditableArea`` (``kind``, at ``store.<area>``): list, get (by id or its unique start),
    create, update. ``key``: how the path names a row (``{id:path}`` where names may hold a slash)."""
    record = kind.record
    return [
        *extra,  # before the routes by id, which would take their paths for an id
        *readable_area(area, kind, key=key.replace("{id", "{id_or_prefix")),
        Operation("POST", f"/{area}", f"{area}.create", f"Create a {kind.noun}", record,
                  body=input_model(record, f"{record.__name__}Create"), status_code=201),
        Operation("PATCH", f"/{area}/{key}", f"{area}.update",
                  f"Change a {kind.noun} (a status change must be legal and is written to history)", record,
                  body=update_model(kind)),
    ]


def update_model(kind: type[Area]) -> type[BaseModel]:
    """The body of an area's ``update``: its updatable fields, and ``reason`` when the call takes one."""
    takes_reason = "reason" in inspect.signature(kind.update).parameters
    return input_model(kind.record, f"{kind.record.__name__}Update", kind.updatable, **(
        {"reason": (str | None, Field(None, description="Why, for the status history."))} if takes_reason else {}))


def readable_area(area: str, kind: type[Area], scope: type[Paging] = Paging,
                  key: str = "{id_or_prefix}") -> list[Operation]:
    """The routes every area has (``kind``, at ``store.<area>``): list (filtered, sorted, paginated, with a
    total) and get."""
    return [
        Operation("GET", f"/{area}", f"{area}.query", f"List {area} (filters: field=value, field__op=value)",
                  Page[kind.record], query=scope, listing=kind.record),
        Operation("GET", f"/{area}/{key}", f"{area}.find",
                  f"Get a {kind.noun} by its id or a unique start of it", kind.record),
    ]
