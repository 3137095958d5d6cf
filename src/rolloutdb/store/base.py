"""What every store area shares: create / get / update / query over one table, with
whitelisted filters and sorting, parent checks, status transitions and their history."""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from .. import states
from ..errors import AmbiguousIdError, ConflictError, InvalidInputError, InvalidTransitionError, NotFoundError
from ..records import Record
from ..schema import status_changes
from .bulk import bulk_insert
from .statements import Prepared

if TYPE_CHECKING:
    from . import Store

R = TypeVar("R", bound=Record)

MAX_LIMIT = 10_000
OPERATORS = ("eq", "ne", "in", "contains", "gt", "gte", "lt", "lte", "isnull")


def insert_ignoring_conflicts(connection: Connection, table: Table):
    """``INSERT ... ON CONFLICT DO NOTHING`` for the connection's backend."""
    dialect_insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    return dialect_insert(table).on_conflict_do_nothing()


def validation_message(exc: ValidationError, item: str | None = None, positions: Sequence[int] | None = None) -> str:
    """Each error as ``field: message``; for a list of ``item``s, ``item #index: field: message``, where
    the index is the item's place in the list, or in the caller's batch if ``positions`` maps it there."""
    def where(loc: tuple) -> str:
        if item is not None and loc and isinstance(loc[0], int):
            place = loc[0] if positions is None else positions[loc[0]]
            return f"{item} #{place}: {'.'.join(str(p) for p in loc[1:]) or 'value'}"
        return ".".join(str(p) for p in loc) or "value"

    return "; ".join(f"{where(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False))


def build_record(model: type[R], values: Mapping[str, Any], what: str) -> R:
    """Validate ``values`` into a record, or raise InvalidInputError naming each bad field."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise InvalidInputError(f"invalid {what}: {validation_message(exc)}") from None


@functools.lru_cache(maxsize=None)
def _list_of(model: type[R]) -> TypeAdapter[list[R]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def build_records(model: type[R], values: Sequence[Mapping[str, Any]], what: str,
                  positions: Sequence[int] | None = None) -> list[R]:
    """``build_record`` for a batch, in one validator call (bulk paths); errors name the item's index
    (``positions``: each item's place in the caller's batch, when ``values`` is part of it)."""
    try:
        with collector_paused():
            return _list_of(model).validate_python(values)
    except ValidationError as exc:
        raise InvalidInputError(f"invalid {what}: {validation_message(exc, what, positions)}") from None


_collector_lock = threading.Lock()
_collector_pausers = 0
_collector_was_enabled = False


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a batch of records is built.

    Every few hundred new objects the collector runs, and whenever enough of them live on it walks the
    whole process heap (in a trainer: the model, the framework, everything). A batch of records is
    new objects that all stay alive and hold no cycles, so those runs find nothing and cost more than
    the inserts. Collection resumes when the last thread building a batch is done; nothing is missed."""
    global _collector_pausers, _collector_was_enabled
    with _collector_lock:
        if _collector_pausers == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pausers += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pausers -= 1
            if _collector_pausers == 0 and _collector_was_enabled:
                gc.enable()


def status_change_row(
    project_id: str, entity_type: str, entity_id: str, old: str | None, new: str, now: datetime,
    reason: str | None = None,
) -> dict[str, Any]:
    return {"project_id": project_id, "entity_type": entity_type, "entity_id": entity_id, "old_status": old,
            "new_status": new, "changed_at": now, "reason": reason}


PENDING = "rolloutdb_pending"  # connection.info key: see pending()
AFTER_COMMIT = "after_commit"  # connection.info key: callbacks the store runs once the transaction commits
Q = TypeVar("Q")


def pending(connection: Connection, flush: Callable[[Connection, Q], None], empty: Callable[[], Q]) -> Q:
    """What the transaction has queued so far for ``flush`` to write (``empty()`` at first). The store
    calls each flush with its queue just before the commit (``flush_pending``); a rollback drops them."""
    queues = connection.info.setdefault(PENDING, {})
    if flush not in queues:
        queues[flush] = empty()
    return queues[flush]


def flush_pending(connection: Connection) -> None:
    # A flush may queue more (statistics refreshed change statuses, which queue history): until none is left.
    while queues := connection.info.pop(PENDING, None):
        for flush, queued in queues.items():
            flush(connection, queued)


@contextlib.contextmanager
def savepoint(connection: Connection) -> Iterator[None]:
    """A nested transaction whose rollback also drops what it queued for commit time (history rows,
    statistics, wake-ups), so that a part undone leaves no trace."""
    saved = {PENDING: {flush: copy.copy(queued) for flush, queued in connection.info.get(PENDING, {}).items()},
             AFTER_COMMIT: list(connection.info.get(AFTER_COMMIT, []))}
    try:
        with connection.begin_nested():
            yield
    except BaseException:
        for key in (PENDING, AFTER_COMMIT):
            connection.info.pop(key, None)
        connection.info.update(saved)
        raise


def record_status_changes(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Queue status-change rows (see ``status_change_row``) of the transaction that changes the statuses;
    they are written all at once, just before it commits."""
    pending(connection, _insert_status_changes, list).extend(rows)


def _insert_status_changes(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        bulk_insert(connection, status_changes, rows)


def lifetime_stamps(entity_type: str, row: Mapping[str, Any], new_status: str, now) -> dict[str, Any]:
    """started_at / ended_at values implied by entering ``new_status``."""
    stamps: dict[str, Any] = {}
    if new_status in states.ACTIVE and row.get("started_at") is None:
        stamps["started_at"] = now
    if new_status in states.TERMINAL[entity_type]:
        stamps["ended_at"] = now
    return stamps


class Area(Generic[R]):
    """One table of the store. Subclasses declare the table, the record and the whitelists."""

    table: ClassVar[Table]
    record: ClassVar[type[Record]]
    noun: ClassVar[str]  # how messages name one row, e.g. "run"
    entity_type: ClassVar[str | None] = None  # set when the rows have a status with history
    filterable: ClassVar[frozenset[str]]
    sortable: ClassVar[frozenset[str]]
    updatable: ClassVar[frozenset[str]]
    # field -> (area attribute on the store): references checked to exist in the same project
    parents: ClassVar[dict[str, str]] = {}
    default_sort: ClassVar[str] = "created_at"

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reading -----------------------------------------------------------------------------------

    def get(self, id: str) -> R:
        """The row with this id, or NotFoundError."""
        with self._store._read() as connection:
            row = self._fetch(connection, id)
        return self._to_record(row)

    def query(
        self,
        *,
        sort: str | None = None,
        order: str = "asc",
        limit: int | None = 100,
        offset: int = 0,
        match: str = "all",
        **filters: Any,
    ) -> list[R]:
        """Rows matching ``filters`` (``field=value``, ``field=[a, b]``, ``field__op=value`` with op in
        eq, ne, in, contains, gt, gte, lt, lte, isnull), all of them or, with ``match="any"``, any one;
        sorted and paginated (``limit=None``: no limit)."""
        statement = self._select_where(filters, match)
        sort = sort or self.default_sort
        if sort not in self.sortable:
            raise InvalidInputError(
                f"cannot sort {self.noun}s by {sort!r}; sortable fields: {', '.join(sorted(self.sortable))}"
            )
        if order not in ("asc", "desc"):
            raise InvalidInputError(f"order must be 'asc' or 'desc', got {order!r}")
        if limit is not None and not 0 <= limit <= MAX_LIMIT:
            raise InvalidInputError(f"limit must be between 0 and {MAX_LIMIT}, got {limit}")
        if offset < 0:
            raise InvalidInputError(f"offset must not be negative, got {offset}")
        key = self.table.c[sort]
        tiebreak = self._primary_key_column()
        # Empty values last in either order, on every backend (their defaults differ).
        ordering = ([key.asc().nulls_last(), tiebreak.asc()] if order == "asc"
                    else [key.desc().nulls_last(), tiebreak.desc()])
        statement = statement.order_by(*ordering).limit(limit).offset(offset)
        with self._store._read() as connection:
            rows = connection.execute(statement).mappings().all()
        return [self._to_record(row) for row in rows]

    def count(self, *, match: str = "all", **filters: Any) -> int:
        """How many rows match ``filters`` (same syntax as ``query``)."""
        statement = self._select_where(filters, match).with_only_columns(func.count()).order_by(None)
        with self._store._read() as connection:
            return int(connection.execute(statement).scalar_one())

    def find(self, id_or_prefix: str) -> R:
        """The row with this id or, failing that, the one row whose id starts with it (a short id, as
        listings print them). NotFoundError when no id starts with it; AmbiguousIdError when several do."""
        with self._store._read() as connection:
            return self._to_record(self._fetch_by_prefix(connection, id_or_prefix))

    def _fetch_by_prefix(self, connection: Connection, id_or_prefix: str) -> Mapping[str, Any]:
        try:
            return self._fetch(connection, id_or_prefix)
        except NotFoundError as exc:
            not_found = exc
        key = self._primary_key_column()
        shown = 5
        statement = (select(self.table)
                     .where(self.table.c.project_id == self._store.project_id,
                            key.startswith(id_or_prefix, autoescape=True))  # % and _ match themselves
                     .order_by(key).limit(shown + 1))
        rows = connection.execute(statement).mappings().all() if id_or_prefix else []
        if not rows:
            raise not_found
        if len(rows) > 1:
            ids = ", ".join(row[key.name] for row in rows[:shown]) + (", ..." if len(rows) > shown else "")
            raise AmbiguousIdError(f"{self.noun} id {id_or_prefix!r} is ambiguous in project "
                                   f"{self._store.project!r}: {ids} start with it; give more of the id")
        return rows[0]

    # -- writing -----------------------------------------------------------------------------------

    def create(self, **fields: Any) -> R:
        """Validate and insert one row; returns it as stored."""
        record = self._new_record(fields)
        with self._store._write() as connection:
            self._insert(connection, record)
        return record

    def update(self, id: str, *, reason: str | None = None, **changes: Any) -> R:
        """Change some fields of one row. A status change must be legal and is written to history."""
        self._check_updatable(changes)
        with self._store._write() as connection:
            return self._update(connection, id, changes, reason)

    # -- building blocks for subclasses --------------------------------------------------------------

    def _check_updatable(self, changes: Mapping[str, Any]) -> None:
        unknown = set(changes) - self.updatable
        if unknown:
            raise InvalidInputError(
                f"cannot update {self.noun} field(s) {', '.join(sorted(unknown))}; "
                f"updatable fields: {', '.join(sorted(self.updatable))}"
            )

    def _new_record(self, fields: Mapping[str, Any]) -> R:
        if "project_id" in fields:
            raise InvalidInputError("project_id is set by the store: connect(..., project=NAME) chooses it")
        now = self._store.now()
        stamps = {name: now for name in ("created_at", "updated_at") if name in self.table.c}
        return build_record(self.record, {**stamps, **fields, "project_id": self._store.project_id}, self.noun)  # type: ignore[return-value]

    def _insert(self, connection: Connection, record: R) -> None:
        self._insert_many(connection, [record])

    def _insert_many(self, connection: Connection, records: Sequence[R]) -> None:
        """Insert validated records through the bulk path, after checking the rows they refer to."""
        self._insert_rows(connection, [self._to_row(record) for record in records])

    def _insert_rows(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """``_insert_many`` for rows already validated as this area's records and laid out as its columns."""
        self._check_parents(connection, {(field, row[field]) for row in rows for field in self.parents})
        try:
            bulk_insert(connection, self.table, rows)
        except IntegrityError as exc:
            if len(rows) == 1:
                raise ConflictError(self._conflict_message(self.record.model_construct(**rows[0]), exc)) from None
            detail = str(exc.orig).strip().splitlines()[0]
            raise ConflictError(f"one of {len(rows)} {self.noun}s conflicts with an existing row ({detail})") from None
        if self.entity_type:
            now = self._store.now()
            record_status_changes(connection, [status_change_row(
                self._store.project_id, self.entity_type, row["id"], None, row["status"], now, "created",
            ) for row in rows])

    def _update(self, connection: Connection, id: str, changes: Mapping[str, Any], reason: str | None,
                row: Mapping[str, Any] | None = None) -> R:
        """Apply ``changes`` to the row ``id`` (``row`` when the caller already holds it, locked)."""
        row = row if row is not None else self._fetch(connection, id, for_update=True)
        current = self._to_record(row)
        merged = build_record(self.record, {**current.model_dump(), **changes}, self.noun)
        values = {name: value for name, value in self._to_row(merged).items() if name in changes}
        self._check_parents(connection, [(k, v) for k, v in values.items() if k in self.parents])
        now = self._store.now()
        old_status, new_status = row.get("status"), values.get("status")
        status_changed = self.entity_type is not None and new_status is not None and new_status != old_status
        if status_changed:
            if not states.allowed(self.entity_type, old_status, new_status):
                allowed = sorted(states.TRANSITIONS[self.entity_type].get(old_status, ()))
                raise InvalidTransitionError(
                    f"{self.noun} {id} cannot go from {old_status!r} to {new_status!r}; "
                    + (f"from {old_status!r} it can go to {', '.join(allowed)}" if allowed
                       else f"{old_status!r} is final")
                )
            values.update({k: v for k, v in lifetime_stamps(self.entity_type, row, new_status, now).items()
                           if k not in changes})
        if "updated_at" in self.table.c:
            values["updated_at"] = now
        if values:
            self._update_by_key.run(connection, {**values, "b_key": id, "b_project": self._store.project_id})
        if status_changed:
            record_status_changes(connection, [status_change_row(
                self._store.project_id, self.entity_type, id, old_status, new_status, now, reason
            )])
            self._after_status_change(connection, {**row, **values}, old_status)
        return self._to_record({**row, **values})

    def _after_status_change(self, connection: Connection, row: Mapping[str, Any], old_status: str) -> None:
        """Hook for areas whose status changes have consequences (waking waiters, ...)."""

    def _fetch(self, connection: Connection, id: str, *, for_update: bool = False) -> Mapping[str, Any]:
        statement = self._select_by_key_for_update if for_update else self._select_by_key
        row = statement.first(connection, {"b_key": id, "b_project": self._store.project_id})
        if row is None:
            raise self._not_found(id)
        return row

    def _not_found(self, id: str) -> NotFoundError:
        return NotFoundError(f"{self.noun} {id!r} not found in project {self._store.project!r}")

    # Hot statements, prepared once (see statements.Prepared).
    @functools.cached_property
    def _key_clause(self):
        return and_(self._primary_key_column() == bindparam("b_key"),
                    self.table.c.project_id == bindparam("b_project"))

    @functools.cached_property
    def _select_by_key(self) -> Prepared:
        return Prepared(select(self.table).where(self._key_clause))

    @functools.cached_property
    def _select_by_key_for_update(self) -> Prepared:
        return Prepared(select(self.table).where(self._key_clause).with_for_update())

    @functools.cached_property
    def _update_by_key(self) -> Prepared:
        """UPDATE by key; the SET columns are the keys of the parameters it is executed with."""
        return Prepared(update(self.table).where(self._key_clause))

    def _primary_key_column(self):
        return next(c for c in self.table.primary_key.columns if c.name != "project_id")

    def _check_parents(self, connection: Connection, references: Iterable[tuple[str, Any]]) -> None:
        for field, value in references:
            if value is not None:
                getattr(self._store, self.parents[field])._fetch(connection, value)

    def _select_where(self, filters: Mapping[str, Any], match: str = "all"):
        if match not in ("all", "any"):
            raise InvalidInputError(f"match must be 'all' or 'any', got {match!r}")
        statement = select(self.table).where(self.table.c.project_id == self._store.project_id)
        clauses = [self._filter_clause(key, value) for key, value in filters.items()]
        if clauses:
            statement = statement.where(and_(*clauses) if match == "all" else or_(*clauses))
        return statement

    def _filter_clause(self, key: str, value: Any):
        field, _, operator = key.partition("__")
        operator = operator or ("in" if isinstance(value, (list, tuple, set, frozenset)) else "eq")
        if field not in self.filterable:
            raise InvalidInputError(
                f"cannot filter {self.noun}s by {field!r}; filterable fields: {', '.join(sorted(self.filterable))}"
            )
        if operator not in OPERATORS:
            raise InvalidInputError(f"unknown filter operator {operator!r} in {key!r}; use one of {', '.join(OPERATORS)}")
        column = self.table.c[field]
        if operator == "isnull":
            return column.is_(None) if value else column.is_not(None)
        if operator == "in":
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise InvalidInputError(f"filter {key!r} takes a list of values")
            values = list(value)
            for item in values:
                self._check_filter_value(field, item)
            return column.in_(values)
        self._check_filter_value(field, value)
        if operator == "contains":
            return column.contains(str(value), autoescape=True)
        return {
            "eq": column.__eq__, "ne": column.__ne__, "gt": column.__gt__, "gte": column.__ge__,
            "lt": column.__lt__, "lte": column.__le__,
        }[operator](value)

    def _check_filter_value(self, field: str, value: Any) -> None:
        if field == "status" and self.entity_type:
            known = [str(s) for s in states.STATUS_ENUMS[self.entity_type]]
            if value not in known:
                raise InvalidInputError(f"unknown {self.noun} status {value!r}; statuses: {', '.join(known)}")

    def _conflict_message(self, record: R, exc: IntegrityError) -> str:
        detail = str(exc.orig).strip().splitlines()[0]
        return f"{self.noun} {getattr(record, 'id', '')!r} conflicts with an existing row ({detail})"

    def _to_row(self, record: Record) -> dict[str, Any]:
        return record.model_dump(exclude={"seq"} if "seq" in type(record).model_fields and record.seq is None else None)

    def _to_record(self, row: Mapping[str, Any]) -> R:
        return self.record.model_validate(dict(row))  # type: ignore[return-value]
