"""Prepared statements for the hot paths: a Core statement compiled once per backend and set of
parameter names, then run straight on the driver's cursor inside the SQLAlchemy transaction.

SQLAlchemy's per-execution work (cache key, parameter processing, result objects) costs about ten
times what SQLite needs for a short statement; the queue runs a dozen of them per rollout. The SQL
is still SQLAlchemy's, compiled from Core with bound parameters, and values are encoded and
decoded as SQLAlchemy does for each column type (JSON through orjson)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Float, String
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable, Insert, Update
from sqlalchemy.types import TypeEngine

from ..errors import InvalidInputError
from ..schema import UTCDateTime
from ..storable import Unstorable, check_text, json_text

Encoder = Callable[[Any], Any]
ColumnDecoder = Callable[[Sequence[Any]], list[Any]]  # a result column's values, decoded

def encode_json(value: Any) -> str:
    kind = type(value)
    # Empty lists and dicts fill whole columns (a span's events and links): no need to call the encoder.
    if (kind is list or kind is dict) and not value:
        return "[]" if kind is list else "{}"
    return json_text(value)


def remember_last(process: Encoder) -> Encoder:
    """``process`` that encodes a value again only when it is not the object it saw last. A transaction
    stamps one ``now`` on many columns and rows. The pair is swapped as one object, so threads sharing
    the encoder never see half of it."""
    last: list[tuple[Any, Any]] = [(object(), None)]

    def encode(value: Any) -> Any:
        seen, encoded = last[0]
        if value is not seen:
            encoded = process(value)
            last[0] = (value, encoded)
        return encoded

    return encode


@remember_last
def encode_sqlite_time(value: datetime) -> str:
    """What SQLAlchemy stores for a UTCDateTime on SQLite ("2026-01-01 12:00:00.000000"), done directly."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: RolloutDB stores UTC, pass a timezone-aware datetime")
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def encoder_for(type_: TypeEngine, dialect: Dialect) -> Encoder | None:
    """How a value of this column type goes to the driver; None when it goes as it is."""
    # JSON through orjson, several times faster than json.dumps; None stays SQL NULL (reads return None either way).
    if isinstance(type_.dialect_impl(dialect), JSON):
        return encode_json
    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        return encode_sqlite_time
    return type_._cached_bind_processor(dialect)


def checked_encoder(type_: TypeEngine, dialect: Dialect) -> Encoder | None:
    """``encoder_for``, and for text columns a refusal of text PostgreSQL cannot hold (on every backend,
    so that a value is kept or refused the same way on both: see storable)."""
    encode = encoder_for(type_, dialect)
    if not isinstance(type_, String):
        return encode
    length = type_.length
    check = check_text if length is None else (lambda value: check_text(value, length))
    if encode is None:
        return check
    return lambda value: encode(check(value))


@dataclass(frozen=True)
class Decoder:
    """How a result column's values come back from the driver: a value (not None) of a row read alone, or a
    column's values (None among them) of many rows, where a loop calling the C parsers directly costs a third less
    than a Python function called per value (a trajectory's spans: 5,000 values)."""

    one: Callable[[Any], Any]
    column: ColumnDecoder


def decoder_for(type_: TypeEngine, dialect: Dialect) -> Decoder | None:
    """How values of this column type come back from the driver; None when they come as they are."""
    if isinstance(type_.dialect_impl(dialect), JSON):
        return JSON_TEXT  # on PostgreSQL too: the cursor reads jsonb as text (read_json_as_text)
    if isinstance(type_, UTCDateTime):
        return SQLITE_TIME if dialect.name == "sqlite" else POSTGRESQL_TIME
    if isinstance(type_, Float) and dialect.name == "postgresql":
        return None  # the schema's floats are float8, which psycopg returns as Python floats
    process = type_._cached_result_processor(dialect, None)
    if process is None:
        return None
    return Decoder(process, lambda values: [None if value is None else process(value) for value in values])


def _decode_json_text(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def _decode_json_texts(values: Sequence[Any]) -> list[Any]:
    loads = orjson.loads
    return [loads(value) if value.__class__ is str else value for value in values]


JSON_TEXT = Decoder(_decode_json_text, _decode_json_texts)


def _decode_sqlite_time(value: str) -> datetime:
    """A UTCDateTime as SQLite keeps it, back as an aware UTC datetime (SQLAlchemy's regex parser, done by the
    standard library's ISO parser: the same values, several times faster)."""
    try:  # naive, as SQLAlchemy writes it: read as UTC in one parse (a parse, then replace, takes 3x as long)
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:
        return datetime.fromisoformat(value).astimezone(timezone.utc)


def _decode_sqlite_times(values: Sequence[str | None]) -> list[datetime | None]:
    parse = datetime.fromisoformat
    try:  # as _decode_sqlite_time, its first parse inline
        return [None if value is None else parse(value + "+00:00") for value in values]
    except ValueError:  # one with an offset of its own
        return [None if value is None else _decode_sqlite_time(value) for value in values]


SQLITE_TIME = Decoder(_decode_sqlite_time, _decode_sqlite_times)


def _decode_postgresql_time(value: datetime) -> datetime:
    """A timestamptz as psycopg gives it, in UTC: UTCDateTime's conversion without SQLAlchemy's wrapper around it,
    and none when psycopg gives UTC already (the store's sessions run in UTC, see engine; a trajectory holds 1,500)."""
    return value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)


def _decode_postgresql_times(values: Sequence[datetime | None]) -> list[datetime | None]:
    utc = timezone.utc
    return [value if value is None or value.tzinfo is utc else value.astimezone(utc) for value in values]


POSTGRESQL_TIME = Decoder(_decode_postgresql_time, _decode_postgresql_times)


JSON_TYPE_OIDS = (114, 3802)  # PostgreSQL's json and jsonb


def read_json_as_text(cursor: Any) -> None:
    """A psycopg cursor that gives json and jsonb values as their text, for ``JSON_TEXT`` (psycopg's
    own loader is a Python call per value, 2,000 of them in a trajectory's spans)."""
    from psycopg.types.string import TextLoader

    for oid in JSON_TYPE_OIDS:
        cursor.adapters.register_loader(oid, TextLoader)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]                  # parameters in the order the driver takes them
    fixed: dict[str, Any]                   # values of the statement's own literals, encoded
    encoders: dict[str, Encoder]            # only the parameters whose type needs encoding
    positional: bool
    columns: tuple[str, ...]                # result column names, if it returns rows
    decoders: tuple[tuple[int, Decoder], ...]
    json_as_text: bool                      # PostgreSQL, returning JSON: its cursor reads it as text

    def arguments(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = dict(self.fixed)
        for name, value in params.items():
            encode = self.encoders.get(name)
            try:
                values[name] = encode(value) if encode is not None and value is not None else value
            except Unstorable as exc:
                raise InvalidInputError(f"cannot store {exc.at(name.removeprefix('b_'))}") from None
        return tuple(values[name] for name in self.names) if self.positional else values

    def row(self, raw: Sequence[Any]) -> dict[str, Any]:
        values = list(raw)
        for index, decoder in self.decoders:
            if values[index] is not None:
                values[index] = decoder.one(values[index])
        return dict(zip(self.columns, values))

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """The rows as dicts of their columns' values, decoded a column at a time."""
        names = self.columns
        if not self.decoders or not raw:
            return [dict(zip(names, values)) for values in raw]
        columns = list(zip(*raw))
        for index, decoder in self.decoders:
            columns[index] = decoder.column(columns[index])
        return [dict(zip(names, values)) for values in zip(*columns)]


class Prepared:
    """A statement run on the driver's cursor. ``params`` name the statement's bound parameters; for an
    INSERT or an UPDATE without ``values()``, they also name the columns it sets (as in Core)."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}
        self._lock = threading.Lock()

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        compiled, cursor = self._execute(connection, params)
        try:
            return compiled.rows(cursor.fetchall())
        finally:
            cursor.close()

    def first(self, connection: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        compiled, cursor = self._execute(connection, params)
        try:
            raw = cursor.fetchone()
            return None if raw is None else compiled.row(raw)
        finally:
            cursor.close()

    def scalar(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        row = self.first(connection, params)
        return None if row is None else next(iter(row.values()))

    def run(self, connection: Connection, params: Mapping[str, Any]) -> int:
        """Execute a statement that returns no rows; returns how many rows it changed."""
        _, cursor = self._execute(connection, params)
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    def run_later(self, connection: Connection, params: Mapping[str, Any]) -> None:
        """``run``, for a write whose outcome nobody reads and whose errors the store turns into none of its own (it
        touches no key, reference or unique column): on PostgreSQL it waits, its values checked and encoded now, to
        be sent with the transaction's next statements (``sent_together``) rather than in a round trip of its own.
        Any statement the transaction runs after it sends it first, so it reads what this one writes."""
        if connection.dialect.name != "postgresql":
            self.run(connection, params)
            return
        compiled = self._compile(connection.dialect, tuple(params))
        connection.info.setdefault(WAITING_WRITES, []).append((compiled.sql, compiled.arguments(params)))

    def run_many(self, connection: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Execute it once per parameter set (all with the same names), in one driver call."""
        if not params:
            return
        send_waiting_writes(connection)
        compiled = self._compile(connection.dialect, tuple(params[0]))
        cursor = connection.connection.driver_connection.cursor()
        try:
            with as_sqlalchemy_error(connection, compiled.sql):
                cursor.executemany(compiled.sql, [compiled.arguments(p) for p in params])
        finally:
            cursor.close()

    def _execute(self, connection: Connection, params: Mapping[str, Any]):
        send_waiting_writes(connection)
        compiled = self._compile(connection.dialect, tuple(params))
        cursor = connection.connection.driver_connection.cursor()
        if compiled.json_as_text:
            read_json_as_text(cursor)
        with as_sqlalchemy_error(connection, compiled.sql, cursor):
            cursor.execute(compiled.sql, compiled.arguments(params))
        return compiled, cursor

    def _compile(self, dialect: Dialect, names: tuple[str, ...]) -> _Compiled:
        key = (dialect.name, names)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key) or self._build(dialect, names)
                self._compiled[key] = compiled
        return compiled

    def _build(self, dialect: Dialect, names: tuple[str, ...]) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=list(names))
        binds = compiled.binds
        if any(bind.expanding for bind in binds.values()):
            raise TypeError("prepared statements take no expanding IN parameters; write the list inline")
        # Values written to columns follow the storable rule; values a statement only looks up need not.
        columns = self.statement.table.c if isinstance(self.statement, (Insert, Update)) else {}
        encoders = {name: encoder for name, bind in binds.items()
                    if (encoder := (checked_encoder if name in columns else encoder_for)(bind.type, dialect))
                    is not None}
        fixed = {}
        for name, bind in binds.items():
            if name not in names and not bind.required:
                value = bind.effective_value
                encode = encoders.get(name)
                fixed[name] = encode(value) if encode is not None and value is not None else value
        positional = bool(compiled.positiontup)
        order = tuple(compiled.positiontup) if positional else tuple(binds)
        result = compiled._result_columns  # (key, name, objects, type) of each column it returns
        decoders = tuple((index, decoder) for index, column in enumerate(result)
                         if (decoder := decoder_for(column[3], dialect)) is not None)
        return _Compiled(
            sql=compiled.string, names=order, fixed=fixed, encoders=encoders, positional=positional,
            columns=tuple(column[0] for column in result), decoders=decoders,
            json_as_text=dialect.name == "postgresql" and any(decoder is JSON_TEXT for _, decoder in decoders),
        )


def rows_of_each(connection: Connection,
                 reads: Sequence[tuple[Prepared, Mapping[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The rows of statements that do not depend on each other's results, in their order. PostgreSQL: sent
    together and answered in one round trip, not one each (psycopg's pipeline mode; a round trip is a wait for
    the server's process, long on a busy machine). SQLite: one after the other."""
    if connection.dialect.name != "postgresql":
        return [statement.rows(connection, params) for statement, params in reads]
    executed = []
    try:
        # Sent when the pipeline ends, with the one Sync that asks for every answer: a fetch inside it would ask
        # for them, and its end then wait for one more.
        with as_sqlalchemy_error(connection, "the statements sent together"), \
                connection.connection.driver_connection.pipeline():
            for statement, params in reads:
                executed.append(statement._execute(connection, params))
        return [compiled.rows(cursor.fetchall()) for compiled, cursor in executed]
    finally:
        for _, cursor in executed:
            cursor.close()


class as_sqlalchemy_error:
    """Driver errors raised as SQLAlchemy raises them, so callers see one kind of error either way
    (and a lost connection is invalidated rather than returned to the pool)."""

    def __init__(self, connection: Connection, sql: str, cursor: Any = None) -> None:
        self._connection, self._sql, self._cursor = connection, sql, cursor

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, traceback) -> bool:
        dbapi = self._connection.dialect.loaded_dbapi
        if exc is None or not isinstance(exc, dbapi.Error):
            return False
        if self._cursor is not None:
            self._cursor.close()
        disconnected = self._connection.dialect.is_disconnect(exc, self._connection.connection.dbapi_connection, None)
        if disconnected:
            self._connection.invalidate(exc)
        raise DBAPIError.instance(self._sql, None, exc, dbapi.Error, connection_invalidated=disconnected) from exc


WAITING_WRITES = "rolloutdb_waiting_writes"  # connection.info key: (SQL, arguments) of run_later's writes


@contextlib.contextmanager
def sent_together(connection: Connection) -> Iterator[None]:
    """Statements run in the block whose results nobody reads (the rows a transaction writes just before it
    commits) sent to PostgreSQL together, after the writes waiting to be sent (``run_later``), answered by one
    round trip rather than one each (psycopg's pipeline mode); an error of any of them is raised, as SQLAlchemy
    raises it, when the block ends. SQLite: as they come."""
    if connection.dialect.name != "postgresql":
        yield
        return
    driver_connection = connection.connection.driver_connection
    with as_sqlalchemy_error(connection, "the statements sent together"), driver_connection.pipeline():
        waiting = connection.info.pop(WAITING_WRITES, None)
        if waiting:
            with driver_connection.cursor() as cursor:
                for sql, arguments in waiting:
                    cursor.execute(sql, arguments)
        yield


@contextlib.contextmanager
def sent_with_waiting_writes(connection: Connection) -> Iterator[None]:
    """The block's statements ``sent_together`` with the writes waiting to be sent, if any; else as they come
    (for statements whose errors the caller reports as its own)."""
    with sent_together(connection) if connection.info.get(WAITING_WRITES) else contextlib.nullcontext():
        yield


def send_waiting_writes(connection: Connection) -> None:
    """Send the writes waiting to be sent (``run_later``), before a statement that may read what they write."""
    if connection.info.get(WAITING_WRITES):
        with sent_together(connection):
            pass


def drop_waiting_writes(connection: Connection) -> None:
    """Forget the writes waiting to be sent: their transaction rolls back."""
    connection.info.pop(WAITING_WRITES, None)


def send_commit(connection: Connection) -> None:
    """Inside ``sent_together``, as its last statement: the transaction's COMMIT, sent with the statements before it
    (a round trip less; SQLAlchemy's commit then finds it done, as psycopg does nothing for a transaction not open).
    SQLite: nothing, SQLAlchemy commits."""
    if connection.dialect.name == "postgresql" and _transaction_open(connection):
        with connection.connection.driver_connection.cursor() as cursor:
            cursor.execute("COMMIT")


def commit_now(connection: Connection) -> None:
    """COMMIT the transaction with the writes still waiting to be sent, in one round trip, if it is still open."""
    if connection.dialect.name == "postgresql" and _transaction_open(connection):
        with sent_together(connection):
            send_commit(connection)


def _transaction_open(connection: Connection) -> bool:
    from psycopg.pq import TransactionStatus

    return connection.connection.driver_connection.pgconn.transaction_status != TransactionStatus.IDLE
