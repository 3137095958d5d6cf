"""Bulk inserts through each backend's fast path: COPY on PostgreSQL, executemany on SQLite.

Values are encoded by SQLAlchemy's own bind processors for each column type, so rows written
here read back exactly like rows written through Core statements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON, Column, Connection, Table
from sqlalchemy.engine import Dialect

from ..errors import InvalidInputError
from ..schema import UTCDateTime


def bulk_insert(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                ignore_conflicts: bool = False) -> None:
    """Insert ``rows`` (all with the same keys) into ``table`` inside the connection's transaction.

    ``ignore_conflicts`` skips rows whose key exists (a retried write); PostgreSQL then uses a pipelined
    ``INSERT ... ON CONFLICT DO NOTHING`` instead of COPY, which cannot skip."""
    if not rows:
        return
    plan = _plan(table, tuple(rows[0]), connection.dialect, ignore_conflicts)
    encoded = []
    try:
        for row in rows:
            values = list(plan.values_of(row))
            for index, encode in plan.encoding:
                if values[index] is not None:
                    values[index] = encode(values[index])
            encoded.append(values)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot store {table.name}: {exc}") from None
    cursor = connection.connection.driver_connection.cursor()
    try:
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


JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY  # what json.dumps takes, and arrays


def encode_json(value: Any) -> str:
    return orjson.dumps(value, option=JSON_OPTIONS).decode()


def encode_sqlite_time(value: datetime) -> str:
    """What SQLAlchemy stores for a UTCDateTime on SQLite ("2026-01-01 12:00:00.000000"), done directly."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: RolloutDB stores UTC, pass a timezone-aware datetime")
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


def _encoder(column: Column, dialect: Dialect) -> Callable[[Any], Any] | None:
    # JSON through orjson, several times faster than json.dumps on the hot path; None stays SQL NULL
    # (reads return None either way).
    if isinstance(column.type.dialect_impl(dialect), JSON):
        return encode_json
    if isinstance(column.type, UTCDateTime) and dialect.name == "sqlite":
        return encode_sqlite_time
    process = column.type._cached_bind_processor(dialect)
    return None if process is None else _remember_last(process)


def _remember_last(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A batch repeats values column-wise (one timestamp for all its rows): encode each run once."""
    last: list[Any] = [object(), None]

    def encode(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, process(value)
        return last[1]

    return encode
