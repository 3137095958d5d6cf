"""How a route is declared: an ``Operation`` names one Store call and how its arguments travel over HTTP
(path, query, JSON body), and what it answers with. Factories give the routes every area of one kind has.

The declarations are data, not code: the server mounts them (``_app``), and a remote client can be made from
the same list — for each operation, a method at ``operation.call`` on a client store that puts its arguments
into the path, query and body the same way and reads back ``operation.response``."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
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

    @property
    def required_role(self) -> str:
        return self.role or ("reader" if self.method == "GET" else "writer")

    @property
    def path_parameters(self) -> list[str]:
        return [name.partition(":")[0] for name in re.findall(r"{([^}]+)}", self.path)]


class Page(BaseModel, Generic[T]):
    """One page of a listing: its rows, how many rows match in all, and where the page is."""

    items: list[T]
    total: int
    limit: int
    offset: int


class Strict(BaseModel):
    """Request models: a field the call does not take is an error, as it is in Python."""

    model_config = ConfigDict(extra="forbid")


PAGE_WINDOW = ("sort", "order", "limit", "offset")  # what a listing's count does not take


class Paging(BaseModel):
    """A listing's window and order. Its other query parameters are filters, read apart (``_app.filters_from``)."""

    sort: str | None = Field(None, description="A sortable field of the area; default: its own order.")
    order: str = Field("asc", description="asc or desc.")
    limit: int = Field(DEFAULT_LIMIT, description=f"At most this many rows (0 to {MAX_LIMIT:,}).")
    offset: int = Field(0, description="Rows to skip.")
    match: str = Field("all", description="all: every filter holds; any: one does.")


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
    """Request models of a record's fields: read leniently here (JSON spells times and choices as strings), then
    strictly by the store. The other request models take the call's own Python types, and a client holds its
    arguments to them strictly."""


def field_type(info: FieldInfo) -> Any:
    """A record field's type with its constraints (an INTEGER column's range, a name's length)."""
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def input_model(record: type[Record], name: str, fields: frozenset[str] | None = None,
                **extra: Any) -> type[BaseModel]:
    """A request body of ``record``'s fields (those in ``fields``, if given), each optional: what is left
    out is left to the store, which checks what is required and says so by field. ``extra``: more fields,
    as ``create_model`` takes them."""
    declared = {
        field_name: (field_type(info), Field(None, description=info.description))
        for field_name, info in record.model_fields.items()
        if field_name != "project_id" and (fields is None or field_name in fields)
    }
    return create_model(name, __base__=RecordFields, **declared, **extra)


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
