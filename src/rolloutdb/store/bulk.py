"""Bulk inserts through each backend's fast path: COPY on PostgreSQL, executemany on SQLite.

Values are encoded by SQLAlchemy's own bind processors for each column type, so rows written
here read back exactly like rows written through Core statements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import functools
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Column, Connection, Table
from sqlalchemy.engine import Dialect

from ..errors import InvalidInputError
from .statements import as_sqlalchemy_error, encode_json, encoder_for


def bulk_insert(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                ignore_conflicts: bool = False) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` inside the connection's transaction.

    ``ignore_conflicts`` skips rows whose key exists (a retried write); PostgreSQL then uses a pipelined
    ``INSERT ... ON CONFLICT DO NOTHING`` instead of COPY, which cannot skip."""
    if not rows:
        return
    plan = _plan(table, tuple(rows[0]), connection.dialect, ignore_conflicts)
    # Column by column: one tight loop per column that needs encoding, instead of a branch per cell.
    columns = [list(column) for column in zip(*map(plan.values_of, rows))]
    try:
        for index, encode in plan.encoding:
            columns[index] = [None if value is None else encode(value) for value in columns[index]]
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot store {table.name}: {exc}") from None
    encoded = list(zip(*columns))
    cursor = connection.connection.driver_connection.cursor()
    try:
        with as_sqlalchemy_error(connection, plan.sql):
            if plan.copy:
                with cursor.copy(plan.sql) as copy:
                    for row in encoded:
                        copy.write_row(row)
            else:
                cursor.executemany(plan.sql, encoded)
    finally:
        cursor.close()


@dataclass(frozen=True)
class _Plan:
    sql: str
    copy: bool
    values_of: Callable[[Mapping[str, Any]], Sequence[Any]]
    encoding: list[tuple[int, Callable[[Any], Any]]]  # only the columns whose type needs encoding


@functools.lru_cache(maxsize=64)
def _plan(table: Table, names: tuple[str, ...], dialect: Dialect, ignore_conflicts: bool) -> _Plan:
    """How to insert rows with these columns; worked out once, since small batches are frequent."""
    encoders = (_encoder(table.c[name], dialect) for name in names)
    encoding = [(index, encoder) for index, encoder in enumerate(encoders) if encoder is not None]
    values_of = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    quote = dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(name) for name in names)})"
    if dialect.name == "postgresql" and not ignore_conflicts:
        return _Plan(f"COPY {target} FROM STDIN", True, values_of, encoding)
    placeholder = "%s" if dialect.name == "postgresql" else "?"
    values = ", ".join(placeholder for _ in names)
    if dialect.name == "postgresql":
        sql = f"INSERT INTO {target} VALUES ({values}) ON CONFLICT DO NOTHING"
    else:
        sql = f"INSERT {'OR IGNORE ' if ignore_conflicts else ''}INTO {target} VALUES ({values})"
    return _Plan(sql, False, values_of, encoding)


def _encoder(column: Column, dialect: Dialect) -> Callable[[Any], Any] | None:
    encode = encoder_for(column.type, dialect)
    # JSON values are rarely the same object twice; other columns repeat (one timestamp for a batch).
    return encode if encode is None or encode is encode_json else _remember_last(encode)


def _remember_last(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A batch repeats values column-wise (one timestamp for all its rows): encode each run once.
    The pair is swapped as one object, so threads sharing the plan never see half of it."""
    last: list[tuple[Any, Any]] = [(object(), None)]

    def encode(value: Any) -> Any:
        seen, encoded = last[0]
        if value is not seen:
            encoded = process(value)
            last[0] = (value, encoded)
        return encoded

    return encode
