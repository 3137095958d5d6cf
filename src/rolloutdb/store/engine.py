"""Engines for SQLite and PostgreSQL, their connection settings, and schema migrations.

SQLite: WAL, ``synchronous=NORMAL``, a busy timeout and foreign keys on every connection; WAL
checkpoints are the store's own thread's job (see ``_wal``), not the committing writer's.
Write transactions there begin with ``BEGIN IMMEDIATE`` so that concurrent writers queue on
the busy timeout instead of failing with "database is locked" when a read lock is upgraded. The busy
timeout (30 s) is SQLite's only wait: the ROLLOUTDB_*_TIMEOUT variables are PostgreSQL's.

PostgreSQL: every connection has timeouts, so that a server behind a network that drops packets (one
that hangs instead of refusing) fails store calls with StoreUnavailableError instead of blocking them
for as long as the outage lasts:

- connecting gives up after ``connect_timeout`` (libpq's; 10 s unless the URL, ROLLOUTDB_CONNECT_TIMEOUT
  or PGCONNECT_TIMEOUT says otherwise, in that order);
- on an open connection, TCP keepalives and ``tcp_user_timeout`` let the kernel notice a dead link in
  about 30 s (each can be set in the URL instead, as libpq parameters);
- the server cancels a statement after ``statement_timeout`` and ends a session idle in a transaction
  after ``idle_in_transaction_session_timeout`` (both ROLLOUTDB_STATEMENT_TIMEOUT, default 60 s; a
  ``-c`` setting in the URL's ``options`` or PGOPTIONS wins, and our default does not override a value
  the server has for the role or database). Migrations lift both inside their transaction.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (Connection, Engine, PrimaryKeyConstraint, UniqueConstraint, create_engine, event, inspect,
                        pool, text)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DatabaseError, DBAPIError, DisconnectionError, IntegrityError, OperationalError

from ..config import CONNECT_TIMEOUT_VAR, STATEMENT_TIMEOUT_VAR, connect_timeout, display_url, statement_timeout
from ..schema import metadata
from ..errors import DatabaseNotFoundError, SchemaOutOfDateError, StoreUnavailableError
from ._statements import send_waiting_writes

BUSY_TIMEOUT_SECONDS = 30.0
WRITE = "rolloutdb_write"  # execution option: this transaction writes
# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK_KEY = 0x524F4C4C

# PostgreSQL. A store's statements are short (a purge deletes 500 rollouts per transaction; migrations lift
# the limit), so a minute is long for any of them; connecting takes milliseconds when the server is there.
CONNECT_TIMEOUT_SECONDS = 10
STATEMENT_TIMEOUT_SECONDS = 60.0
# A dead link on an open connection: the first keepalive probe after 15 s idle, then every 5 s; sent
# data (or a probe) unacknowledged for 30 s closes the connection. libpq names; the URL may set any.
DEAD_LINK_SETTINGS = {"keepalives": "1", "keepalives_idle": "15", "keepalives_interval": "5",
                      "keepalives_count": "3", "tcp_user_timeout": "30000"}
SESSION_TIMEOUTS = ("statement_timeout", "idle_in_transaction_session_timeout")
# A pooled connection idle this long is pinged before use (a server restarted meanwhile would have closed it);
# one back from use a moment ago is not: a ping before every transaction is a round trip more for each.
PING_AFTER_IDLE_SECONDS = 1.0
# Connections kept open: enough for the threads that run store calls at once (asyncio's default executor
# runs up to 32), beyond which connections are opened for a burst and closed after it.
POOL_SIZE, POOL_OVERFLOW = 8, 24


def create_store_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url`` with RolloutDB's connection settings. ``create=False``: a SQLite file must
    exist already (DatabaseNotFoundError), so that opening it to read leaves nothing behind."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, create)
    return _postgres_engine(url, parsed)


def _postgres_engine(url: str, parsed: URL) -> Engine:
    engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW,
                           connect_args=postgres_connect_args(parsed))
    _ping_when_idle(engine)
    _read_json_with_orjson(engine)
    _send_waiting_writes_first(engine)
    session_settings = _session_timeouts(parsed)

    @event.listens_for(engine, "connect")
    def _configure_session(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            for name, value, chosen in session_settings:
                # Our default gives way to a value the server has (postgresql.conf, ALTER ROLE / DATABASE).
                cursor.execute("SELECT set_config(name, %s, false) FROM pg_settings"
                               " WHERE name = %s AND (%s OR source = 'default')", (value, name, chosen))
            # The store's times are UTC: in a UTC session psycopg gives them as such, where in any other zone (the
            # server's, even "Etc/UTC") each value is converted twice, a third of the time of reading spans. A
            # zone the client chose (PGTZ, options) is kept; the store's records are in UTC either way.
            cursor.execute("SELECT set_config('TimeZone', 'UTC', false) FROM pg_settings"
                           " WHERE name = 'TimeZone' AND source <> 'client'")
        dbapi_connection.commit()  # a session setting made in a transaction that rolls back is undone

    return engine


def _send_waiting_writes_first(engine: Engine) -> None:
    """A statement run through SQLAlchemy (a query, a savepoint) after writes left waiting (``Prepared.run_later``)
    sends them first, so that it finds them done."""
    @event.listens_for(engine, "before_cursor_execute")
    def _send(connection, _cursor, _statement, _parameters, _context, _executemany) -> None:
        send_waiting_writes(connection)


def _read_json_with_orjson(engine: Engine) -> None:
    """jsonb read back by orjson rather than the json module psycopg uses, in Core's reads (the prepared
    statements read it as text and decode it themselves, a column at a time: see _statements), several times as
    fast. The same values: the store writes JSON with orjson (no NaN, no integer beyond 64 bits)."""
    import orjson
    from psycopg.types.json import set_json_loads

    @event.listens_for(engine, "connect")
    def _set_json_loads(dbapi_connection, _record) -> None:
        set_json_loads(orjson.loads, dbapi_connection)


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use when it has been idle ``PING_AFTER_IDLE_SECONDS``; one that fails is
    replaced by a new connection (SQLAlchemy's pool does that when checkout raises DisconnectionError)."""
    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, _proxy) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"a pooled connection no longer answers: {exc}") from exc


def postgres_connect_args(parsed: URL) -> dict[str, str]:
    """The connect and dead-link timeouts, as libpq parameters, that the URL does not set itself (its query
    parameters go to libpq). For any connection the store opens to PostgreSQL, inside the engine or not."""
    args: dict[str, str] = {}
    configured = connect_timeout()
    if configured is not None:
        args["connect_timeout"] = str(configured)
    elif not os.environ.get("PGCONNECT_TIMEOUT"):
        args["connect_timeout"] = str(CONNECT_TIMEOUT_SECONDS)
    args.update(DEAD_LINK_SETTINGS)
    import psycopg  # here, not at the top: a SQLite store never loads the PostgreSQL driver

    if psycopg.pq.version() < 120000:  # tcp_user_timeout is libpq 12's
        del args["tcp_user_timeout"]
    return {name: value for name, value in args.items() if name not in parsed.query}


def _session_timeouts(parsed: URL) -> list[tuple[str, str, bool]]:
    """(setting, value in ms, chosen by the user) for each session timeout the client does not set itself."""
    configured = statement_timeout()
    seconds = STATEMENT_TIMEOUT_SECONDS if configured is None else configured
    milliseconds = max(1, round(seconds * 1000)) if seconds > 0 else 0
    options = parsed.query.get("options", "")
    client_options = " ".join((options,) if isinstance(options, str) else options) or os.environ.get("PGOPTIONS", "")
    return [(name, str(milliseconds), configured is not None) for name in SESSION_TIMEOUTS
            if name not in client_options]


def _effective_connect_timeout(url: str) -> int | None:
    """The seconds a connect to ``url`` waits for the server, as psycopg counts them (None: no limit of ours)."""
    try:
        in_url, configured = make_url(url).query.get("connect_timeout"), connect_timeout()
        value = (in_url if in_url is not None else configured if configured is not None
                 else os.environ.get("PGCONNECT_TIMEOUT") or CONNECT_TIMEOUT_SECONDS)
        seconds = math.ceil(float(value))  # type: ignore[arg-type]
    except (ValueError, TypeError):  # a bad value: connecting has said so already
        return None
    return None if seconds <= 0 else max(seconds, 2)  # libpq waits 2 s at least


def _without_time_limits(connection: Connection) -> None:
    """Lift the session timeouts for the rest of this transaction: migrations may be long, and may wait
    for another process's migration."""
    if connection.dialect.name == "postgresql":
        for name in SESSION_TIMEOUTS:
            connection.execute(text(f"SET LOCAL {name} = 0"))


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for an in-memory database or another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


def file_identity(path: str) -> tuple[int, int] | None:
    """Which file is at ``path`` now, as (device, inode); None when there is none."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _sqlite_engine(url: str, database: str | None, create: bool) -> Engine:
    in_memory = sqlite_file(url) is None
    if not in_memory and not Path(database).parent.is_dir():
        raise StoreUnavailableError(
            f"cannot open SQLite database {database!r}: the directory {str(Path(database).parent)!r} does not exist"
        )
    if not in_memory and not create and not Path(database).exists():
        raise DatabaseNotFoundError(f"no database at {Path(database).absolute()}: run `rolloutdb init` to create one,"
                                    " or point --url / ROLLOUTDB_URL at yours")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
        poolclass=pool.StaticPool if in_memory else pool.QueuePool,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Take transaction control from the sqlite3 module so that BEGIN is ours (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        if not in_memory and _is_rolloutdb_or_empty(cursor):  # never change another program's database
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA wal_autocheckpoint = 0")  # the store's WAL thread does it (see _wal)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE, False)
        # On the driver directly: this runs for every transaction.
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _is_rolloutdb_or_empty(cursor: sqlite3.Cursor) -> bool:
    tables = {name for (name,) in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return not tables or "alembic_version" in tables


@contextlib.contextmanager
def unavailable_as_error(url: str) -> Iterator[None]:
    """Turn "cannot connect" driver errors into a StoreUnavailableError that says what to check."""
    try:
        yield
    except sqlite3.DatabaseError as exc:  # raised raw by the connect hook's PRAGMAs
        raise StoreUnavailableError(f"cannot open {display_url(url)}: {_sqlite_reason(url, exc)}") from exc
    except DBAPIError as exc:
        if (note := _server_time_limit(exc)) is not None:
            # The server is there and answered: it is a statement or transaction that took too long.
            exc.add_note(note)
            raise
        if sqlite_file(url) is not None and (
                (isinstance(exc, OperationalError) and _is_connect_error(exc))
                or (isinstance(exc, DatabaseError) and "file is not a database" in str(exc.orig))):
            raise StoreUnavailableError(f"cannot open {display_url(url)}: {_sqlite_reason(url, exc.orig)}") from exc
        if isinstance(exc, OperationalError) and _is_missing_database(exc):
            raise DatabaseNotFoundError(
                f"no database at {display_url(url)}: the server has none of that name. Create it "
                "(`createdb NAME`, or CREATE DATABASE) and run `rolloutdb init`, or fix the URL"
            ) from exc
        if isinstance(exc, OperationalError) and (exc.connection_invalidated or _is_connect_error(exc)):
            reason = str(exc.orig).strip().splitlines()[0]
            if _is_connect_timeout(exc):
                waited = _effective_connect_timeout(url)
                reason += (f" (no answer within {waited} s: the server is down or the network drops packets; "
                           f"connect_timeout in the URL or {CONNECT_TIMEOUT_VAR} sets how long to wait)"
                           if waited is not None else " (no answer from the server)")
            raise StoreUnavailableError(
                f"cannot reach the database at {display_url(url)}: {reason}. "
                "Check that the server is running and the URL (ROLLOUTDB_URL / DATABASE_URL) is right."
            ) from exc
        raise


# SQLite names the columns of the key a row collides with, not the constraint: "... failed: runs.project_id, runs.name".
SQLITE_UNIQUE_FAILED = re.compile(r"UNIQUE constraint failed: (\w+)\.(\w+(?:, \w+\.\w+)*)$")


def violated_constraint(exc: IntegrityError) -> str | None:
    """The schema's name of the constraint or unique index that a write broke, the same on both backends
    (PostgreSQL names it; SQLite names the columns, looked up here); None when the driver does not tell
    (SQLite's foreign keys)."""
    diagnostics = getattr(exc.orig, "diag", None)
    if diagnostics is not None:
        return diagnostics.constraint_name
    found = SQLITE_UNIQUE_FAILED.match(str(exc.orig).strip())
    table = metadata.tables.get(found.group(1)) if found else None
    if table is None:
        return None
    columns = [column.rpartition(".")[2] for column in found.group(2).split(", ")]
    keys = [*(key for key in table.constraints if isinstance(key, (PrimaryKeyConstraint, UniqueConstraint))),
            *(index for index in table.indexes if index.unique)]
    return next((str(key.name) for key in keys if [column.name for column in key.columns] == columns), None)


def _sqlite_reason(url: str, exc: BaseException) -> str:
    """What is wrong with a SQLite file that SQLite would not open, in words that name the cause."""
    if "file is not a database" in str(exc):
        return "it is not a SQLite database"
    path = Path(sqlite_file(url) or "").absolute()
    if path.is_dir():
        return f"{path} is a directory; give the path of a database file in it (e.g. {path / 'rolloutdb.db'})"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"no permission to read and write {path}"
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return (f"no permission to write in {path.parent}: SQLite keeps its write-ahead log next to the database "
                "file, so the directory must be writable")
    return str(exc)


def _is_missing_database(exc: DBAPIError) -> bool:
    return "database" in str(exc.orig) and "does not exist" in str(exc.orig)


def _is_connect_error(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return any(
        hint in message
        for hint in ("connection refused", "could not connect", "unable to open database", "connection failed",
                     "does not exist", "timeout expired", "server closed the connection", "name or service",
                     "connection timed out")
    )


def _is_connect_timeout(exc: DBAPIError) -> bool:
    psycopg = sys.modules.get("psycopg")  # not loaded: the error cannot be the PostgreSQL driver's
    return ((psycopg is not None and isinstance(exc.orig, psycopg.errors.ConnectionTimeout))
            or "timeout expired" in str(exc.orig).lower())


def _server_time_limit(exc: DBAPIError) -> str | None:
    """What to say when a server that answers ended a statement or session for running past its timeout."""
    psycopg = sys.modules.get("psycopg")  # not loaded: the error cannot be the PostgreSQL driver's
    if psycopg is None:
        return None
    if isinstance(exc.orig, psycopg.errors.QueryCanceled) and "statement timeout" in str(exc.orig):
        return (f"The server cancelled the statement after statement_timeout. {STATEMENT_TIMEOUT_VAR} (seconds, "
                "0: no limit) or `options=-c statement_timeout=<ms>` in the URL sets it.")
    if isinstance(exc.orig, psycopg.errors.IdleInTransactionSessionTimeout):
        return ("The server ended the session: a transaction sat idle longer than idle_in_transaction_session_timeout"
                f" ({STATEMENT_TIMEOUT_VAR} sets it too; 0: no limit).")
    return None


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "rolloutdb:migrations")
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "rolloutdb ships at least one migration"
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def migration_history() -> list[tuple[str, str | None, str]]:
    """(revision, down revision, message) of every shipped migration, newest first."""
    scripts = ScriptDirectory.from_config(alembic_config())
    return [(s.revision, s.down_revision, s.doc) for s in scripts.walk_revisions()]  # type: ignore[misc]


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the database to ``revision``; safe when several processes try at once."""
    with engine.connect() as connection:
        connection.execution_options(**{WRITE: True})
        with connection.begin():
            _without_time_limits(connection)
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            return current_revision(connection) or "base"


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against this release."""

    current: str | None  # the database's revision; None when it has none
    head: str  # this release's
    verdict: str  # "up to date", "empty", "not rolloutdb", "newer" or "out of date"

    @property
    def up_to_date(self) -> bool:
        return self.verdict == "up to date"

    @property
    def summary(self) -> str:
        """The state in a few words, with what to do about it."""
        return {
            "up to date": f"{self.current} (up to date)",
            "empty": f"empty: not initialised (run `rolloutdb init` to create schema {self.head})",
            "not rolloutdb": "no RolloutDB schema version, but the database has tables: not a RolloutDB database",
            "newer": f"{self.current}, newer than this release knows (head {self.head}): upgrade the rolloutdb package",
            "out of date": f"{self.current}, out of date (head {self.head}): run `rolloutdb db upgrade`",
        }[self.verdict]


def schema_state(connection: Connection) -> SchemaState:
    """The database's schema revision against this release's head."""
    # The tables before the revision: another process's migration that commits in between then shows as
    # "empty, then migrated" (up to date), never as tables without a revision (not rolloutdb).
    has_tables = bool(inspect(connection).get_table_names())
    current, head = current_revision(connection), head_revision()
    if current == head:
        verdict = "up to date"
    elif current is None:
        verdict = "not rolloutdb" if has_tables else "empty"
    elif current not in {revision for revision, _, _ in migration_history()}:
        verdict = "newer"
    else:
        verdict = "out of date"
    return SchemaState(current, head, verdict)


def ensure_schema(engine: Engine, *, upgrade_if_needed: bool, create: bool = True) -> None:
    """Migrate a new database (``create=False``: refuse it); refuse (or, if asked, upgrade) one at an
    older revision."""
    with engine.connect() as connection:
        state = schema_state(connection)
    if state.verdict == "up to date":
        return
    if state.verdict == "empty":
        if not create:
            raise DatabaseNotFoundError(f"the database at {engine.url.render_as_string(hide_password=True)}"
                                        " is empty: run `rolloutdb init` to create RolloutDB's tables in it")
        upgrade(engine)
        return
    if state.verdict == "newer":
        raise SchemaOutOfDateError(
            f"the database is at schema revision {state.current}, which this version of RolloutDB does not know: "
            "it was written by a newer RolloutDB. Upgrade the rolloutdb package."
        )
    if state.verdict == "not rolloutdb":
        raise SchemaOutOfDateError(
            "the database has tables but no RolloutDB schema version: it is not a RolloutDB database "
            "(or an unversioned one). Point ROLLOUTDB_URL elsewhere, or run `rolloutdb rebuild --yes` to wipe it."
        )
    if upgrade_if_needed:
        upgrade(engine)
        return
    raise SchemaOutOfDateError(
        f"the database schema is at revision {state.current} but this RolloutDB needs {state.head}. "
        "Run `rolloutdb db upgrade` (or connect(..., upgrade=True)) to migrate it."
    )


def drop_everything(engine: Engine) -> None:
    """Drop every RolloutDB table and the migration version table."""
    with engine.connect() as connection:
        connection.execution_options(**{WRITE: True})
        with connection.begin():
            _without_time_limits(connection)  # dropping waits for the locks of whoever still uses the tables
            metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
