"""Bulk inserts through each backend's fast path: multi-row ``INSERT ... VALUES (...), (...)`` statements (the
rows left over in one more), with executemany where a statement cannot hold two rows; COPY on PostgreSQL for
large batches (an executemany, which psycopg sends as one, among statements sent together: see
``sent_together``).

Values are encoded by SQLAlchemy's own bind processors for each column type, so rows written
here read back exactly like rows written through Core statements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import functools
import sqlite3
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import Column, Connection, String, Table
from sqlalchemy.engine import Dialect

from ..errors import InvalidInputError
from ..storable import Unstorable, check_texts
from ._statements import (as_sqlalchemy_error, checked_encoder, encode_json, encode_sqlite_time, encoder_for,
                          remember_last, sent_with_waiting_writes)


def bulk_insert(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                ignore_conflicts_on: tuple[str, ...] = (), notify: str | None = None) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` inside the connection's transaction.

    ``ignore_conflicts_on`` (the columns of a unique key) skips rows whose key is stored already (a retried
    write); any other conflict still raises. PostgreSQL then uses a pipelined ``INSERT ... ON CONFLICT DO
    NOTHING`` instead of COPY, which cannot skip. ``notify`` (PostgreSQL only): a channel to notify when the
    transaction commits, in the same statement as the rows where it can (a round trip less)."""
    if not rows:
        return
    driver_connection = connection.connection.driver_connection
    # SQLite caps the parameters of one statement (999 before 3.32, 32,766 since; builds may differ).
    parameter_limit = (driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
                       if connection.dialect.name == "sqlite" else 0)
    plan = _plan(table, tuple(rows[0]), connection.dialect, ignore_conflicts_on, parameter_limit)
    # Column by column: one tight loop per column that needs encoding, instead of a branch per cell.
    columns = [[row[name] for row in rows] for name in plan.names]
    index = 0
    try:
        for index, length in plan.texts:
            check_texts(columns[index], length)
        for index, encode in plan.encoding:
            columns[index] = [None if value is None else encode(value) for value in columns[index]]
    except Unstorable as exc:
        raise InvalidInputError(f"cannot store {table.name}: {exc.at(plan.names[index])}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot store {table.name}: {plan.names[index]}: {exc}") from None
    # Rows are put together one at a time as the driver takes them: a batch's worth of row tuples alive
    # at once would only feed the garbage collector.
    encoded = zip(*columns)
    cursor = driver_connection.cursor()
    try:
        with sent_with_waiting_writes(connection), as_sqlalchemy_error(connection, plan.sql):
            if plan.copy_sql is not None and len(rows) > POSTGRESQL_ROWS_PER_STATEMENT:
                if driver_connection.pgconn.pipeline_status:  # statements sent together: COPY cannot be one
                    cursor.executemany(plan.sql, encoded)
                else:
                    with cursor.copy(plan.copy_sql) as copy:
                        for row in encoded:
                            copy.write_row(row)
            elif plan.copy_sql is not None:
                # Numbered ($1, $2, ...) for psycopg's RawCursor: a statement of more than 50 values is past psycopg's
                # cache of parsed queries, and parsing its %s placeholders on every call cost the server more than
                # anything else in a batch of spans.
                values = [value for row in encoded for value in row]
                statement = _numbered_rows_of(plan.sql, len(rows), len(plan.names))
                if notify is not None:  # a WITH's INSERT runs whole, whatever the query around it reads
                    statement = f"WITH written AS ({statement}) {NOTIFY_NUMBERED % (len(values) + 1)}"
                    values, notify = [*values, notify], None
                from psycopg import RawCursor  # here: a SQLite store never loads the PostgreSQL driver

                with RawCursor(driver_connection) as raw_cursor:
                    raw_cursor.execute(statement, values)
            else:
                left_over = len(rows)
                if plan.multi_row_sql:
                    for _ in range(len(rows) // plan.rows_per_statement):
                        cursor.execute(plan.multi_row_sql,
                                       [value for row in islice(encoded, plan.rows_per_statement) for value in row])
                    left_over %= plan.rows_per_statement
                if plan.multi_row_sql and left_over > 1:  # a few rows (a status change's history) in one statement
                    cursor.execute(_rows_of(plan.sql, left_over), [value for row in encoded for value in row])
                else:
                    cursor.executemany(plan.sql, encoded)
            if notify is not None:
                cursor.execute(NOTIFY, [notify])
    finally:
        cursor.close()


NOTIFY = "SELECT pg_notify(%s, '')"
NOTIFY_NUMBERED = "SELECT pg_notify($%d, '')"


# SQLite runs one statement over many rows about 20% faster than executemany steps one row at a time;
# beyond about a hundred rows a statement gains nothing more.
SQLITE_ROWS_PER_STATEMENT = 100
# PostgreSQL: COPY takes two round trips (start, end) however few the rows; an INSERT of up to this many
# rows takes one. Most transactions write a handful (a claim's attempt, a span, history rows).
POSTGRESQL_ROWS_PER_STATEMENT = 16


@dataclass(frozen=True)
class _Plan:
    sql: str  # an INSERT of one row
    names: tuple[str, ...]
    encoding: list[tuple[int, Callable[[Any], Any]]]  # only the columns whose type needs encoding
    texts: list[tuple[int, int | None]]  # the text columns and their lengths, checked column by column (storable)
    multi_row_sql: str | None = None  # SQLite: an INSERT of rows_per_statement rows
    rows_per_statement: int = 1
    copy_sql: str | None = None  # PostgreSQL: COPY, for batches larger than POSTGRESQL_ROWS_PER_STATEMENT


@functools.lru_cache(maxsize=64)
def _plan(table: Table, names: tuple[str, ...], dialect: Dialect, ignore_conflicts_on: tuple[str, ...],
          parameter_limit: int) -> _Plan:
    """How to insert rows with these columns; worked out once, since small batches are frequent."""
    encoding, texts = [], []
    for index, name in enumerate(names):
        column = table.c[name]
        if isinstance(column.type, String) and encoder_for(column.type, dialect) is None:
            texts.append((index, column.type.length))
        elif (encoder := _encoder(column, dialect)) is not None:
            encoding.append((index, encoder))
    quote = dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(name) for name in names)})"
    placeholder = "%s" if dialect.name == "postgresql" else "?"
    values = ", ".join(placeholder for _ in names)
    skip = (f" ON CONFLICT ({', '.join(quote(name) for name in ignore_conflicts_on)}) DO NOTHING"
            if ignore_conflicts_on else "")
    insert = f"INSERT INTO {target} VALUES "
    if dialect.name == "postgresql":
        return _Plan(f"{insert}({values}){skip}", names, encoding, texts,
                     copy_sql=None if ignore_conflicts_on else f"COPY {target} FROM STDIN")
    rows_per_statement = min(SQLITE_ROWS_PER_STATEMENT, parameter_limit // len(names))
    if rows_per_statement < 2:
        return _Plan(f"{insert}({values}){skip}", names, encoding, texts)
    many = ", ".join(f"({values})" for _ in range(rows_per_statement))
    return _Plan(f"{insert}({values}){skip}", names, encoding, texts, insert + many + skip, rows_per_statement)


@functools.lru_cache(maxsize=256)
def _rows_of(insert_one: str, count: int) -> str:
    """The INSERT of one row (its ON CONFLICT clause, if any, kept at the end), made an INSERT of ``count`` rows."""
    head, _, tail = insert_one.rpartition(" VALUES ")
    values, on_conflict, skip = tail.partition(" ON CONFLICT ")
    return f"{head} VALUES {', '.join([values] * count)}{on_conflict}{skip}"


@functools.lru_cache(maxsize=256)
def _numbered_rows_of(insert_one: str, count: int, width: int) -> str:
    """``_rows_of`` with PostgreSQL's numbered placeholders: row ``r``'s values are ``$(r*width+1)`` on."""
    head, _, tail = insert_one.rpartition(" VALUES ")
    values, on_conflict, skip = tail.partition(" ON CONFLICT ")
    placeholders = iter(range(1, count * width + 1))
    rows = ", ".join("(" + ", ".join(f"${next(placeholders)}" for _ in range(width)) + ")" for _ in range(count))
    return f"{head} VALUES {rows}{on_conflict}{skip}"


def _encoder(column: Column, dialect: Dialect) -> Callable[[Any], Any] | None:
    encode = checked_encoder(column.type, dialect)
    # JSON values are rarely the same object twice; other columns repeat (one timestamp for a batch).
    if encode is None or encode is encode_json or encode is encode_sqlite_time:
        return encode
    return remember_last(encode)
