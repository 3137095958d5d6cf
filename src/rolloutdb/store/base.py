"""What every store area shares: get / query / count over one table with whitelisted filters and
sorting, and the building blocks of its writes: parent checks, and the one way a stored row changes
(``Area.change_rows``: status transitions, their lifetime stamps, history and consequences). Areas whose
rows take any valid values add ``create`` / ``update`` (``EditableArea``)."""

from __future__ import annotations

import contextlib
import functools
import gc
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, TypeVar

from annotated_types import MaxLen, MinLen
import orjson

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import ARRAY, Column, Connection, String, Table, UniqueConstraint, and_, any_, bindparam, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from .. import states
from ..errors import AmbiguousIdError, ConflictError, InvalidInputError, InvalidTransitionError, NotFoundError
from ..records import Record
from ..storable import Unstorable, check_text
from ..schema import status_changes
from ._bulk import bulk_insert
from ._feed import publish, status_events
from .engine import violated_constraint
from .hooks import before_commit, writes_only
from ._statements import Prepared

if TYPE_CHECKING:
    from . import Store

R = TypeVar("R", bound=Record)

DEFAULT_LIMIT = 100  # rows a query returns unless told otherwise, in every area
MAX_LIMIT = 10_000
MAX_OFFSET = 2 ** 63 - 1  # the databases' largest integer
MAX_PATTERN = 10_000  # characters a text filter looks for (SQLite's LIKE takes at most 50,000 bytes)
MAX_SECONDS = 10 ** 9  # timeouts and intervals: about 31 years, within what a timedelta holds
OPERATORS = ("eq", "ne", "in", "contains", "gt", "gte", "lt", "lte", "isnull")


def whole_number(name: str, value: Any, low: int, high: int) -> int:
    """``value`` if it is an int (not a bool) from ``low`` to ``high``; else InvalidInputError naming ``name``."""
    if type(value) is not int or not low <= value <= high:
        raise InvalidInputError(f"{name} must be a whole number from {low:,} to {high:,}, got {value!r:.80}")
    return value


def not_found(noun: str, id: str, project: str) -> NotFoundError:
    """What every area raises for a row that is not there (the remote client too)."""
    return NotFoundError(f"{noun} {id!r} not found in project {project!r}")


def check_key(noun: str, key: Any, called: str = "id") -> str:
    """``key`` if it can name a row (a string the database can hold); else InvalidInputError. ``called``: what
    the key is to the row (its id, its name)."""
    if not isinstance(key, str):
        raise InvalidInputError(f"a {noun} is named by a string, got {type(key).__name__} {key!r:.80}")
    try:
        return check_text(key)
    except Unstorable as exc:
        raise InvalidInputError(f"a {noun} {called} cannot be this string: {exc}") from None


_SECONDS = TypeAdapter(Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)], config=ConfigDict(strict=True))


def seconds(name: str, value: Any) -> float:
    """``value`` if it is a number of seconds (an int or a float, as records take them) from 0 to
    ``MAX_SECONDS``; else InvalidInputError naming ``name``."""
    try:
        return _SECONDS.validate_python(value)
    except ValidationError as exc:
        raise InvalidInputError(f"{name} must be a number of seconds: {validation_message(exc)}") from None


def aware_time(name: str, value: Any) -> datetime:
    """``value`` if it is a timezone-aware datetime; else InvalidInputError naming ``name``."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError(f"{name} must be a timezone-aware datetime, got {value!r:.80}")
    return value


def ids_of(noun: str, values: Any) -> list[str]:
    """``values`` as a list of ids, when it is a collection of them; else InvalidInputError."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise InvalidInputError(f"{noun} ids are given as a list of strings, got {type(values).__name__}")
    return [check_key(noun, value) for value in values]


def as_object(value: Any) -> Any:
    """A mapping given for a JSON object, as a dict; anything else as it is, for its record to refuse by name."""
    return dict(value) if isinstance(value, Mapping) else value


def mappings(what: str, values: Any) -> list[Mapping[str, Any]]:
    """``values`` as a list, when it is a collection of mappings of fields (one ``what`` each); else
    InvalidInputError."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise InvalidInputError(f"{what}s are given as a list of mappings of fields, got {type(values).__name__}")
    items = list(values)
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"{what} #{position} is not a mapping of fields but a {type(item).__name__}")
    return items


KEYS_PER_QUERY = 1000  # keys per "IN (...)" lookup: far below every backend's parameter limit


def one_of(column, values: Sequence[Any], backend: str):
    """``column IN values``; a long list goes as one parameter, quicker to make and send than hundreds (an export's
    pages: a tenth of their time): on PostgreSQL an array (a statement takes at most 65,535 parameters there), on
    SQLite a JSON array of texts for a text column (SQLAlchemy makes a parameter a value at every execution)."""
    if backend == "postgresql" and len(values) > 100:
        return column == any_(literal(list(values), ARRAY(column.type)))
    if (backend == "sqlite" and len(values) > 100 and isinstance(column.type, String)
            and all(type(value) is str for value in values)):
        listed = func.json_each(literal(orjson.dumps(list(values)).decode(), String())).table_valued("value")
        return column.in_(select(listed.c.value))
    return column.in_(values)


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

    def what(err: Mapping[str, Any]) -> str:
        # A value of the wrong type (records convert none): say which type it was, not the value itself.
        return f"{err['msg']}, got {type(err['input']).__name__}" if err["type"].endswith("_type") else err["msg"]

    def at(err: Mapping[str, Any]) -> tuple:
        # A GUI action's error names the key inside the action that is wrong (records.GuiAction).
        inner = err["ctx"]["field"] if err["type"] == "gui_action" and err["ctx"]["field"] else None
        return err["loc"] if inner is None else (*err["loc"], inner)

    return "; ".join(f"{where(at(err))}: {what(err)}" for err in exc.errors(include_url=False))


def build_record(model: type[R], values: Mapping[str, Any], what: str) -> R:
    """Validate ``values`` into a record, or raise InvalidInputError naming each bad field."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise InvalidInputError(f"invalid {what}: {validation_message(exc)}") from None


@functools.lru_cache(maxsize=None)
def _comparable(model: type[Record], field: str) -> TypeAdapter[Any]:
    """Values a filter may compare ``field`` with: the field's own, of any length (a text too long to be
    stored matches nothing)."""
    info = model.model_fields[field]
    metadata = [item for item in info.metadata if not isinstance(item, (MinLen, MaxLen))]
    return TypeAdapter(Annotated[(info.annotation, *metadata)] if metadata else info.annotation,
                       config=model.model_config)


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


def stored_records(model: type[R], rows: Sequence[dict[str, Any]]) -> list[R]:
    """Records of ``rows`` as the store read them, each with ``model``'s fields in its order (select the columns
    so), built without validating them again: for reads of many rows whose record converts nothing a column gives
    back (strict; its validators, if any, only check, as they did when the rows were written), where validation
    took half the time of a trajectory. The records ``model_validate`` would make; the rows' dicts become theirs."""
    fields = tuple(model.model_fields)
    if rows and tuple(rows[0]) != fields:
        raise TypeError(f"rows for {model.__name__} records have their fields, in order: {fields}")
    all_set = set(fields).copy  # looked up once, not per row
    return _records(model, rows, [all_set() for _ in rows])


def checked_records(model: type[R], items: Sequence[Mapping[str, Any]]) -> list[R]:
    """Records of ``items`` (each some of ``model``'s fields) that the store has checked already, as it built them
    (``build_records``): fields in ``model``'s order, the defaults of those not given, only the given ones set.
    Validation converts nothing (strict), but copies a dict or a list it checks: the items' values become the
    records' own, so give values nobody else holds. For a remote client's batch of spans, which the server's store
    validated: validating them again took a quarter of the client's time. Only for models whose defaults are not
    validated (a validated default may be converted)."""
    if model.model_config.get("validate_default"):
        raise TypeError(f"{model.__name__} validates its defaults: its records are built by validating them")
    template = {name: None if info.default_factory else info.default for name, info in model.model_fields.items()}
    factories = {name: info.default_factory for name, info in model.model_fields.items() if info.default_factory}
    rows, fields_sets, keys, to_make = [], [], None, ()
    for item in items:
        if item.keys() != keys:  # a batch's items give the same fields, as a rule
            keys, to_make = item.keys(), [(name, make) for name, make in factories.items() if name not in item]
        row = {**template, **item}
        for name, make in to_make:
            row[name] = make()
        rows.append(row)
        fields_sets.append(set(item))
    return _records(model, rows, fields_sets)


def _records(model: type[R], rows: Sequence[dict[str, Any]], fields_sets: Sequence[set[str]]) -> list[R]:
    """Records of ``model`` made of ``rows`` (their fields, in order) and ``fields_sets``, as pydantic's own
    construction makes them, without validation."""
    new = object.__new__  # looked up once, not per row
    built = []
    for row, fields_set in zip(rows, fields_sets):
        record = new(model)
        _set_dict(record, row)
        _set_fields_set(record, fields_set)
        _set_extra(record, None)
        _set_private(record, None)
        built.append(record)
    return built


# The slots of a pydantic model's instance, set as pydantic's own construction sets them (object.__setattr__ each,
# its name looked up per call: a fifth of the building), straight through their descriptors.
_set_dict, _set_fields_set, _set_extra, _set_private = (
    vars(BaseModel)[name].__set__
    for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"))


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


@functools.lru_cache(maxsize=None)
def _checked_columns(table: Table) -> frozenset[str]:
    """The columns whose values the database may refuse beyond NOT NULL: keys, references and unique columns, or
    all of them when a unique index has a condition (then any column may make two rows clash)."""
    if any(index.unique and any(index.dialect_options[name].get("where") is not None
                                for name in ("postgresql", "sqlite")) for index in table.indexes):
        return frozenset(table.c.keys())
    checked = {column.name for column in table.primary_key.columns}
    checked.update(element.parent.name for constraint in table.foreign_key_constraints for element in constraint.elements)
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            checked.update(column.name for column in constraint.columns)
    for index in table.indexes:
        if index.unique:
            checked.update(column.name for column in index.columns)
            if any(not isinstance(expression, Column) for expression in index.expressions):
                return frozenset(table.c.keys())
    return frozenset(checked)


def may_be_refused(table: Table, columns: Iterable[str]) -> bool:
    """Whether an UPDATE setting these columns of existing rows may break a constraint (other than NOT NULL): its
    IntegrityError is the store's ConflictError, raised by the write that made it."""
    return not _checked_columns(table).isdisjoint(columns)


@writes_only
def _insert_status_changes(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        bulk_insert(connection, status_changes, rows)


Write = Callable[[Connection, list[tuple[Mapping[str, Any], dict[str, Any]]]], None]


class Area(Generic[R]):
    """One table of the store: reading, and the building blocks of its writes. Subclasses declare the
    table, the record and the whitelists, and offer only the writes that keep their rules (an area whose
    rows any valid values keep consistent is an ``EditableArea``)."""

    table: ClassVar[Table]
    record: ClassVar[type[Record]]
    noun: ClassVar[str]  # how messages name one row, e.g. "run"
    entity_type: ClassVar[str | None] = None  # set when the rows have a status with history
    filterable: ClassVar[frozenset[str]]
    sortable: ClassVar[frozenset[str]]
    updatable: ClassVar[frozenset[str]] = frozenset()
    # field -> (area attribute on the store): references checked to exist in the same project
    parents: ClassVar[dict[str, str]] = {}
    # unique constraint -> what breaking it means, formatted with the row's columns and ``project``
    conflicts: ClassVar[dict[str, str]] = {}
    default_sort: ClassVar[str] = "created_at"
    run_column: ClassVar[str] = "run_id"  # where a row names the run it belongs to (for the feed's run filter)

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reading -----------------------------------------------------------------------------------

    def get(self, id: str) -> R:
        """The row with this id, or NotFoundError."""
        with self._store.reading() as connection:
            row = self.fetch_row(connection, id)
        return self.to_record(row)

    def query(self, *, sort: str | None = None, order: str = "asc", limit: int | None = DEFAULT_LIMIT,
              offset: int = 0, match: str = "all", **filters: Any) -> list[R]:
        """Rows matching ``filters`` (``field=value``, ``field=[a, b]``, ``field__op=value`` with op in
        eq, ne, in, contains, gt, gte, lt, lte, isnull), all of them or, with ``match="any"``, any one;
        sorted and paginated (``limit=None``: no limit)."""
        return self._query((), filters, sort=sort, order=order, limit=limit, offset=offset, match=match)

    def count(self, *, match: str = "all", **filters: Any) -> int:
        """How many rows match ``filters`` (same syntax as ``query``)."""
        return self._count((), filters, match)

    def find(self, id_or_prefix: str) -> R:
        """The row with this id or, failing that, the one row whose id starts with it (a short id, as
        listings print them). NotFoundError when no id starts with it; AmbiguousIdError when several do."""
        with self._store.reading() as connection:
            return self.to_record(self._fetch_by_prefix(connection, id_or_prefix))

    def _fetch_by_prefix(self, connection: Connection, id_or_prefix: str) -> Mapping[str, Any]:
        try:
            return self.fetch_row(connection, id_or_prefix)
        except NotFoundError as exc:
            not_found = exc
        key = self._primary_key_column()
        shown = 5
        statement = (select(self.table)
                     .where(self.table.c.project_id == self._store.project_id,
                            key.startswith(id_or_prefix, autoescape=True))  # % and _ match themselves
                     .order_by(key).limit(shown + 1))
        # An id is no longer than its column: a longer start matches nothing (nor goes to LIKE, which limits it).
        rows = connection.execute(statement).mappings().all() if 0 < len(id_or_prefix) <= key.type.length else []
        if not rows:
            raise not_found
        if len(rows) > 1:
            ids = ", ".join(row[key.name] for row in rows[:shown]) + (", ..." if len(rows) > shown else "")
            raise AmbiguousIdError(f"{self.noun} id {id_or_prefix!r} is ambiguous in project "
                                   f"{self._store.project!r}: {ids} start with it; give more of the id")
        return rows[0]

    # -- building blocks for subclasses --------------------------------------------------------------

    def _check_updatable(self, changes: Mapping[str, Any]) -> None:
        unknown = set(changes) - self.updatable
        if unknown:
            raise InvalidInputError(
                f"cannot update {self.noun} field(s) {', '.join(sorted(unknown))}; "
                f"updatable fields: {', '.join(sorted(self.updatable))}"
            )

    def new_record(self, fields: Mapping[str, Any]) -> R:
        if "project_id" in fields:
            raise InvalidInputError("project_id is set by the store: connect(..., project=NAME) chooses it")
        now = self._store.now()
        values = {**{name: now for name in ("created_at", "updated_at") if name in self.table.c}, **fields}
        status = values.get("status", self.record.model_fields["status"].default) if self.entity_type else None
        if isinstance(status, str):  # anything else is refused by the record, below
            # A row is created in its first status: the stamps entering it implies, as of its creation.
            for name, stamp in self._stamps(values, status, values["created_at"]).items():
                values.setdefault(name, stamp)  # a value given, even None, wins
        return build_record(self.record, {**values, "project_id": self._store.project_id}, self.noun)  # type: ignore[return-value]

    def insert_record(self, connection: Connection, record: R) -> None:
        self.insert_records(connection, [record])

    def insert_records(self, connection: Connection, records: Sequence[R]) -> None:
        """Insert validated records through the bulk path, after checking the rows they refer to."""
        self.insert_rows(connection, [self.to_row(record) for record in records])

    def insert_rows(self, connection: Connection, rows: Sequence[Mapping[str, Any]],
                     now: datetime | None = None, *, unless_taken: tuple[str, ...] = (),
                     created_as: str | None = None) -> None:
        """``insert_records`` for rows already validated as this area's records and laid out as its columns
        (``now``: when they were created, for their history). ``unless_taken``: columns of a unique key; a row
        whose key is stored already is skipped (any other conflict is an error). ``created_as``: the status
        history gives them on creation, when they are written in a later one (whose change ``change_rows``
        records)."""
        self._check_parents(connection, {(field, row[field]) for row in rows for field in self.parents})
        try:
            bulk_insert(connection, self.table, rows, ignore_conflicts_on=unless_taken)
        except IntegrityError as exc:
            raise ConflictError(self._conflict_message(rows, exc)) from None
        if self.entity_type:
            created = rows if created_as is None else [{**row, "status": created_as} for row in rows]
            self._record_history(connection, [(row, None) for row in created], "created", now or self._store.now())

    def update_row(self, connection: Connection, id: str, changes: Mapping[str, Any], reason: str | None,
                row: Mapping[str, Any] | None = None) -> R:
        """Validate ``changes`` and apply them to the row ``id`` (``row`` when the caller already holds it,
        locked) through ``change_rows``."""
        row = row if row is not None else self.fetch_row(connection, id, for_update=True)
        return self.update_rows(connection, [(row, changes)], reason)[0]

    def update_rows(self, connection: Connection, updates: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
                     reason: str | None) -> list[R]:
        """``update_row`` for several rows, given as (row as read and locked, changes): validated in one validator
        call and written through one ``change_rows`` (rows given the same columns in one driver call)."""
        merged = [{**row, **changes} for row, changes in updates]  # a row holds its record's fields, decoded
        records = ([build_record(self.record, merged[0], self.noun)] if len(merged) == 1
                   else build_records(self.record, merged, self.noun))
        writes = [(row, {name: value for name, value in self.to_row(record).items() if name in changes})
                  for (row, changes), record in zip(updates, records)]
        self._check_parents(connection, [(k, v) for _, values in writes for k, v in values.items() if k in self.parents])
        return [self.to_record(row) for row in self.change_rows(connection, writes, reason)]

    def change_rows(self, connection: Connection, changes: Sequence[tuple[Mapping[str, Any], dict[str, Any]]],
                reason: str | None, now: datetime | None = None, *, write: Write | None = None,
                guarded: bool = False, parents: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
        """Write validated ``values`` to existing rows, given as (row as read and locked, values): every
        change of a stored row, and so every status change, goes through here.

        A status change must be legal (else InvalidTransitionError; with ``guarded`` the row is left as it
        is, and so is one whose status would not change). It sets the lifetime stamps the new status implies
        (``_stamps``; values given win), is written to history, and has its consequences for other rows
        (``_after_status_change``, told ``parents``: the rows these belong to, those the caller holds).
        ``write`` replaces the UPDATE by key, for a statement that does more at once. Returns the rows as
        written."""
        now = now or self._store.now()
        writes: list[tuple[Mapping[str, Any], dict[str, Any]]] = []
        changed: list[tuple[dict[str, Any], str]] = []
        for row, values in changes:
            old = row.get("status")
            new = values.get("status", old) if self.entity_type is not None else old
            if new != old:
                if not states.allowed(self.entity_type, old, new):
                    if guarded:
                        continue
                    raise self._illegal_transition(row, old, new)
                values = {**self._stamps(row, new, now), **values}
            elif guarded:
                continue
            if "updated_at" in self.table.c:
                values = {**values, "updated_at": now}
            writes.append((row, values))
            if new != old:
                changed.append((row, values, old))
        try:
            (write or self._write_by_key)(connection, writes)
        except IntegrityError as exc:
            raise ConflictError(self._conflict_message([{**row, **values} for row, values in writes], exc)) from None
        if changed:
            written = [({**row, **values}, old) for row, values, old in changed]
            self._record_history(connection, written, reason, now)
            self._after_status_change(connection, written, reason, now, parents)
        return [{**row, **values} for row, values in writes]

    def _write_by_key(self, connection: Connection, writes: list[tuple[Mapping[str, Any], dict[str, Any]]]) -> None:
        # Rows given the same columns (a batch of claims) are written in one driver call.
        batches: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row, values in writes:
            if not values:
                continue  # an update of no fields, on a table without updated_at: nothing to write
            batches.setdefault(tuple(values), []).append(
                {**values, "b_key": row[self._key_name], "b_project": self._store.project_id})
        statement = self.update_by_key_statement
        for columns, params in batches.items():
            if may_be_refused(self.table, columns) or any(
                    row[name] is None and not self.table.c[name].nullable for row in params for name in columns):
                statement.run_many(connection, params)  # now: a ConflictError names the row
            else:
                for row in params:  # nothing the database could refuse: sent with the transaction's next statements
                    statement.run_later(connection, row)

    def _stamps(self, row: Mapping[str, Any], new_status: str, now: datetime) -> dict[str, Any]:
        """What entering ``new_status`` sets besides the status: started_at (once) and ended_at."""
        stamps: dict[str, Any] = {}
        if new_status in states.ACTIVE and row.get("started_at") is None:
            stamps["started_at"] = now
        if new_status in states.TERMINAL[self.entity_type]:
            stamps["ended_at"] = now
        return stamps

    def _illegal_transition(self, row: Mapping[str, Any], old: str, new: str) -> InvalidTransitionError:
        allowed = sorted(states.TRANSITIONS[self.entity_type].get(old, ()))
        return InvalidTransitionError(
            f"{self.noun} {row[self._key_name]} cannot go from {old!r} to {new!r}; "
            + (f"from {old!r} it can go to {', '.join(allowed)}" if allowed else f"{old!r} is final"))

    def _record_history(self, connection: Connection, entries: Iterable[tuple[Mapping[str, Any], str | None]],
                        reason: str | None, now: datetime) -> None:
        """Queue the history rows and the feed's events of status changes, given as (row as written, old
        status): written all at once, just before commit."""
        changes = [(row[self._key_name], old, row["status"], row.get(self.run_column)) for row, old in entries]
        before_commit(connection, _insert_status_changes, list).extend(
            {"project_id": self._store.project_id, "entity_type": self.entity_type, "entity_id": entity_id,
             "old_status": old, "new_status": new, "changed_at": now, "reason": reason}
            for entity_id, old, new, _ in changes)
        publish(connection, self._store.project_id, status_events(self.entity_type, changes, reason, now))

    def _after_status_change(self, connection: Connection, changed: list[tuple[dict[str, Any], str]],
                             reason: str | None, now: datetime, parents: Sequence[Mapping[str, Any]]) -> None:
        """What status changes imply for other rows, given (row as written, old status); nothing by default."""

    def fetch_row(self, connection: Connection, id: str, *, for_update: bool = False) -> Mapping[str, Any]:
        self._check_key(id)
        statement = self._select_by_key_for_update if for_update else self._select_by_key
        row = statement.first(connection, {"b_key": id, "b_project": self._store.project_id})
        if row is None:
            raise self.not_found(id)
        return row

    def _check_key(self, key: Any) -> None:
        check_key(self.noun, key)

    def not_found(self, id: str) -> NotFoundError:
        return not_found(self.noun, id, self._store.project)

    # Hot statements, prepared once (see _statements.Prepared).
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
    def update_by_key_statement(self) -> Prepared:
        """UPDATE by key; the SET columns are the keys of the parameters it is executed with."""
        return Prepared(update(self.table).where(self._key_clause))

    def _primary_key_column(self):
        return next(c for c in self.table.primary_key.columns if c.name != "project_id")

    @functools.cached_property
    def _key_name(self) -> str:
        return self._primary_key_column().name

    def _check_parents(self, connection: Connection, references: Iterable[tuple[str, Any]]) -> None:
        wanted: dict[str, dict[Any, None]] = {}  # by field, each value once, in order
        for field, value in references:
            if value is not None:
                wanted.setdefault(field, {})[value] = None
        for field, values in wanted.items():
            getattr(self._store, self.parents[field]).check_exist(connection, list(values))

    def check_exist(self, connection: Connection, keys: Sequence[Any]) -> None:
        """NotFoundError for the first key that names no row (InvalidInputError for one that cannot name a
        row): one query for many keys, as a bulk insert's references are checked."""
        if len(keys) == 1:
            self.fetch_row(connection, keys[0])
            return
        for key in keys:
            self._check_key(key)
        column, found = self._primary_key_column(), set()
        for start in range(0, len(keys), KEYS_PER_QUERY):
            found.update(connection.execute(select(column).where(
                self.table.c.project_id == self._store.project_id, column.in_(keys[start:start + KEYS_PER_QUERY]))
            ).scalars())
        missing = next((key for key in keys if key not in found), None)
        if missing is not None:
            raise self.not_found(missing)

    def _query(self, scope: Sequence[Any], filters: Mapping[str, Any], *, sort: str | None, order: str,
               limit: int | None, offset: int, match: str) -> list[R]:
        """``query`` among the rows that meet every condition of ``scope``, whatever ``match`` says of
        ``filters``."""
        statement = self._select_where(scope, filters, match)
        sort = sort or self.default_sort
        if not isinstance(sort, str) or sort not in self.sortable:
            raise InvalidInputError(
                f"cannot sort {self.noun}s by {sort!r:.80}; sortable fields: {', '.join(sorted(self.sortable))}"
            )
        if order not in ("asc", "desc"):
            raise InvalidInputError(f"order must be 'asc' or 'desc', got {order!r}")
        if limit is not None:
            whole_number("limit", limit, 0, MAX_LIMIT)
        whole_number("offset", offset, 0, MAX_OFFSET)
        key = self.table.c[sort]
        tiebreak = self._primary_key_column()
        # Empty values last in either order, on every backend (their defaults differ). A column that is never empty
        # is sorted plainly: PostgreSQL reads "DESC NULLS LAST" from an index only if the index was built so.
        ordering = [key.asc() if order == "asc" else key.desc(), tiebreak.asc() if order == "asc" else tiebreak.desc()]
        if key.nullable:
            ordering[0] = ordering[0].nulls_last()
        statement = statement.order_by(*ordering).limit(limit).offset(offset)
        with self._store.reading() as connection:
            rows = connection.execute(statement).mappings().all()
        return [self.to_record(row) for row in rows]

    def _count(self, scope: Sequence[Any], filters: Mapping[str, Any], match: str) -> int:
        statement = self._select_where(scope, filters, match).with_only_columns(func.count()).order_by(None)
        with self._store.reading() as connection:
            return int(connection.execute(statement).scalar_one())

    def _select_where(self, scope: Sequence[Any], filters: Mapping[str, Any], match: str = "all"):
        if match not in ("all", "any"):
            raise InvalidInputError(f"match must be 'all' or 'any', got {match!r}")
        statement = select(self.table).where(self.table.c.project_id == self._store.project_id, *scope)
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
            if not isinstance(value, bool):
                raise InvalidInputError(f"filter {key!r} takes True or False, got {type(value).__name__}")
            return column.is_(None) if value else column.is_not(None)
        if operator == "in":
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise InvalidInputError(f"filter {key!r} takes a list of values")
            values = list(value)
            for item in values:
                self._check_filter_value(key, field, item)
            return one_of(column, values, self._store.backend)
        if operator == "contains" and not isinstance(column.type, String):
            raise InvalidInputError(f"filter {key!r}: contains applies to text fields, and {field} is not one")
        if operator not in ("eq", "ne") and value is None:
            raise InvalidInputError(f"filter {key!r} compares with a value, not None (use {field}__isnull)")
        if operator == "contains" and isinstance(value, str) and len(value) > MAX_PATTERN:
            raise InvalidInputError(f"filter {key!r} looks for at most {MAX_PATTERN:,} characters, got {len(value):,}")
        self._check_filter_value(key, field, value)
        if operator == "contains":
            return column.contains(value, autoescape=True)
        return {
            "eq": column.__eq__, "ne": column.__ne__, "gt": column.__gt__, "gte": column.__ge__,
            "lt": column.__lt__, "lte": column.__le__,
        }[operator](value)

    def _check_filter_value(self, key: str, field: str, value: Any) -> None:
        """A filter compares a field with a value the field could hold: of its type and range (not
        converted, as records take them) and text the database can hold."""
        if field == "status" and self.entity_type:
            known = [str(s) for s in states.STATUS_ENUMS[self.entity_type]]
            if value not in known:
                raise InvalidInputError(f"unknown {self.noun} status {value!r:.80}; statuses: {', '.join(known)}")
        try:
            _comparable(self.record, field).validate_python(value)
            if isinstance(value, str):
                check_text(value)
        except ValidationError as exc:
            raise InvalidInputError(f"filter {key!r}: {validation_message(exc)}") from None
        except Unstorable as exc:
            raise InvalidInputError(f"filter {key!r}: {exc}") from None

    def _conflict_message(self, rows: Sequence[Mapping[str, Any]], exc: IntegrityError) -> str:
        """What writing ``rows`` collided with, by the constraint it broke. Ids are unique across the whole
        database: an id taken in another project is answered as one taken in this one, naming neither the
        project nor the database's own words."""
        constraint = violated_constraint(exc)
        subject = f"{self.noun} {rows[0][self._key_name]!r}" if len(rows) == 1 else f"one of {len(rows)} {self.noun}s"
        if constraint == self.table.primary_key.name:
            which = f"{self.noun} id {rows[0][self._key_name]!r}" if len(rows) == 1 else f"the id of {subject}"
            return f"{which} is taken: leave the id out and the store picks a new one"
        if constraint in self.conflicts and len(rows) == 1:
            return self.conflicts[constraint].format(**rows[0], project=self._store.project)
        return f"{subject} conflicts with an existing row ({constraint or 'a rule of the schema'})"

    def to_row(self, record: Record) -> dict[str, Any]:
        return record.model_dump(exclude={"seq"} if "seq" in type(record).model_fields and record.seq is None else None)

    def to_record(self, row: Mapping[str, Any]) -> R:
        return self.record.model_validate(dict(row))  # type: ignore[return-value]


class EditableArea(Area[R]):
    """An area whose rows are created from any valid fields and changed field by field (status changes
    through the state machine): ``create`` and ``update``."""

    def create(self, **fields: Any) -> R:
        """Validate and insert one row; returns it as stored."""
        record = self.new_record(fields)
        with self._store.writing() as connection:
            self.insert_record(connection, record)
        return record

    def update(self, id: str, *, reason: str | None = None, **changes: Any) -> R:
        """Change some fields of one row. A status change must be legal and is written to history."""
        self._check_updatable(changes)
        with self._store.writing() as connection:
            return self.update_row(connection, id, changes, reason)


class RowReads(Generic[R]):
    """The reads of an area that offers writes of its own over a table read as every area reads one (``_rows``)."""

    _rows: Area[R]

    def get(self, id: str) -> R:
        """The row with this id, or NotFoundError."""
        return self._rows.get(id)

    def find(self, id_or_prefix: str) -> R:
        """The row with this id or the one whose id starts with it (NotFoundError, AmbiguousIdError)."""
        return self._rows.find(id_or_prefix)

    def query(self, *, sort: str | None = None, order: str = "asc", limit: int | None = DEFAULT_LIMIT,
              offset: int = 0, match: str = "all", **filters: Any) -> list[R]:
        """Rows matching ``filters`` (as every area's ``query`` takes them), sorted and paginated."""
        return self._rows.query(sort=sort, order=order, limit=limit, offset=offset, match=match, **filters)

    def count(self, *, match: str = "all", **filters: Any) -> int:
        """How many rows match ``filters``."""
        return self._rows.count(match=match, **filters)
