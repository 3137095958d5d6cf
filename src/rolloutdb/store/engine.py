"""Engines for SQLite and PostgreSQL, their connection settings, and schema migrations.

SQLite: WAL, ``synchronous=NORMAL``, a busy timeout and foreign keys on every connection; WAL
checkpoints are the store's own thread's job (see ``checkpoints``), not the committing writer's.
Write transactions there begin with ``BEGIN IMMEDIATE`` so that concurrent writers queue on
the busy timeout instead of failing with "database is locked" when a read lock is upgraded.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError

from ..config import display_url
from ..schema import metadata
from ..errors import SchemaOutOfDateError, StoreUnavailableError

BUSY_TIMEOUT_SECONDS = 30.0
WRITE = "rolloutdb_write"  # execution option: this transaction writes
# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK_KEY = 0x524F4C4C


def create_store_engine(url: str) -> Engine:
    """An engine for ``url`` with RolloutDB's connection settings."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL; None for an in-memory database or another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


def _sqlite_engine(url: str, database: str | None) -> Engine:
    in_memory = sqlite_file(url) is None
    if not in_memory and not Path(database).parent.is_dir():
        raise StoreUnavailableError(
            f"cannot open SQLite database {database!r}: the directory {str(Path(database).parent)!r} does not exist"
        )
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
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA wal_autocheckpoint = 0")  # the store's checkpoint thread does it (see checkpoints)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE, False)
        # On the driver directly: this runs for every transaction.
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextlib.contextmanager
def unavailable_as_error(url: str) -> Iterator[None]:
    """Turn "cannot connect" driver errors into a StoreUnavailableError that says what to check."""
    try:
        yield
    except sqlite3.DatabaseError as exc:  # raised raw by the connect hook's PRAGMAs
        raise StoreUnavailableError(f"cannot open {display_url(url)}: {_sqlite_reason(exc)}") from exc
    except OperationalError as exc:
        if exc.connection_invalidated or _is_connect_error(exc):
            raise StoreUnavailableError(
                f"cannot reach the database at {display_url(url)}: {str(exc.orig).strip().splitlines()[0]}. "
                "Check that the server is running and the URL (ROLLOUTDB_URL / DATABASE_URL) is right."
            ) from exc
        raise
    except DatabaseError as exc:
        if "file is not a database" not in str(exc.orig):
            raise
        raise StoreUnavailableError(f"cannot open {display_url(url)}: {_sqlite_reason(exc.orig)}") from exc


def _sqlite_reason(exc: BaseException) -> str:
    return "it is not a SQLite database" if "file is not a database" in str(exc) else str(exc)


def _is_connect_error(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return any(
        hint in message
        for hint in ("connection refused", "could not connect", "unable to open database", "connection failed",
                     "does not exist", "timeout expired", "server closed the connection", "name or service")
    )


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
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            return current_revision(connection) or "base"


def ensure_schema(engine: Engine, *, upgrade_if_needed: bool) -> None:
    """Migrate a new database; refuse (or, if asked, upgrade) one at an older revision."""
    head = head_revision()
    with engine.connect() as connection:
        current = current_revision(connection)
        has_tables = bool(inspect(connection).get_table_names())
    if current == head:
        return
    if current is None and not has_tables:
        upgrade(engine)
        return
    if current is not None and current not in {rev for rev, _, _ in migration_history()}:
        raise SchemaOutOfDateError(
            f"the database is at schema revision {current}, which this version of RolloutDB does not know: "
            "it was written by a newer RolloutDB. Upgrade the rolloutdb package."
        )
    if current is None:
        raise SchemaOutOfDateError(
            "the database has tables but no RolloutDB schema version: it is not a RolloutDB database "
            "(or an unversioned one). Point ROLLOUTDB_URL elsewhere, or run `rolloutdb rebuild --yes` to wipe it."
        )
    if upgrade_if_needed:
        upgrade(engine)
        return
    raise SchemaOutOfDateError(
        f"the database schema is at revision {current} but this RolloutDB needs {head}. "
        "Run `rolloutdb db upgrade` (or connect(..., upgrade=True)) to migrate it."
    )


def drop_everything(engine: Engine) -> None:
    """Drop every RolloutDB table and the migration version table."""


    with engine.connect() as connection:
        connection.execution_options(**{WRITE: True})
        with connection.begin():
            metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
