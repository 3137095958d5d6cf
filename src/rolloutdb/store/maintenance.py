"""Work on a whole database rather than one project's rows: its schema state and migrations, the doctor's
checks (rows and bytes per table, SQLite's integrity check), space and VACUUM, SQLite backups, rebuilding.

Each function takes a URL and opens a bare engine, without the store's migration on connect: these are the
operations that must work on a database that is out of date, foreign or (for ``upgrade_database`` and
``rebuild_database``) not there yet.
"""

from __future__ import annotations

import contextlib
import shlex
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from ..config import display_url
from ..errors import InvalidInputError, NotFoundError, StoreUnavailableError
from ..schema import artifacts, metadata, projects
from . import existing_project_id
from .blobs import blob_size
from .engine import (
    SchemaState,
    create_store_engine,
    current_revision,
    drop_everything,
    ensure_schema,
    schema_state,
    sqlite_file,
    unavailable_as_error,
    upgrade,
)


def backend_of(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    return make_url(url).get_backend_name()


@contextlib.contextmanager
def opened(url: str, *, must_exist: bool = True) -> Iterator[Engine]:
    """A bare engine on ``url``; with ``must_exist``, a SQLite file that is not there is an error
    (DatabaseNotFoundError), not created."""
    engine = create_store_engine(url, create=not must_exist)
    try:
        with unavailable_as_error(url):
            yield engine
    finally:
        engine.dispose()


def database_schema(url: str) -> SchemaState:
    """Where the database's schema stands against this release."""
    with opened(url) as engine, engine.connect() as connection:
        return schema_state(connection)


def upgrade_database(url: str) -> tuple[str | None, str | None]:
    """Migrate the database (created if new) to this release's head; returns its revision before and after."""
    with opened(url, must_exist=False) as engine:
        with engine.connect() as connection:
            before = current_revision(connection)
        ensure_schema(engine, upgrade_if_needed=True)
        with engine.connect() as connection:
            return before, current_revision(connection)


def rebuild_database(url: str) -> str:
    """Drop every table (all projects, all data) and create the schema at head; returns the revision."""
    with opened(url, must_exist=False) as engine:
        drop_everything(engine)
        return upgrade(engine)


# -- the doctor's checks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TableFigures:
    name: str
    rows: int | None  # None: the table is missing
    size: int | None  # bytes with its indexes; None where the backend cannot tell


@dataclass(frozen=True)
class ArtifactFigures:
    """The artifacts (of the project examined, or all) and where their content is."""

    count: int
    size: int  # bytes of content, as put
    in_database: int  # artifacts whose content is in the database (artifact_chunks)
    in_files: int  # artifacts whose content is a blob (a file, or at a URL)
    file_bytes: int  # bytes the blobs that are there take
    missing: list[str]  # the blobs that are gone (the first MISSING_SHOWN): "<sha256> <path or URL>"
    missing_count: int


@dataclass(frozen=True)
class IndexUsage:
    table: str
    index: str
    scans: int  # index scans since PostgreSQL's statistics were last reset
    size: int  # bytes


@dataclass(frozen=True)
class SlowStatement:
    query: str  # normalised by pg_stat_statements (values as $1, $2, ...)
    calls: int
    mean_ms: float
    total_ms: float


@dataclass(frozen=True)
class SizeReport:
    """What ``examine_database(..., sizes=True)`` adds: the write-ahead log (SQLite), index usage and the slowest
    statements (PostgreSQL; None when pg_stat_statements is not available, with a note saying why)."""

    wal_size: int | None = None
    indexes: list[IndexUsage] = field(default_factory=list)
    slow_statements: list[SlowStatement] | None = None


@dataclass(frozen=True)
class DatabaseReport:
    """What ``examine_database`` found."""

    backend: str
    url: str  # password masked
    schema: SchemaState
    tables: list[TableFigures]
    integrity: str | None = None  # SQLite's integrity check: "ok" or the problems
    journal_mode: str | None = None  # SQLite
    file_size: int | None = None  # SQLite file, without its write-ahead log
    server_version: str | None = None  # PostgreSQL
    problems: list[str] = field(default_factory=list)
    project: str | None = None  # whose rows are counted; None: every project's
    notes: list[str] = field(default_factory=list)  # worth saying, but no fault of the database's
    artifacts: ArtifactFigures | None = None  # None: the database has no artifacts table
    sizes: SizeReport | None = None  # with sizes=True


def examine_database(url: str, project: str | None = None, *, sizes: bool = False) -> DatabaseReport:
    """The database's schema state, every table's rows and size, the artifacts and whether their blob files are
    all there, and on SQLite its integrity. Rows and artifacts are those of ``project`` (none, with a note naming
    the projects there, if it has no such project), or of all projects; sizes are always the whole tables'.
    ``sizes`` adds the SQLite write-ahead log's size, or PostgreSQL's index usage and slowest statements."""
    with opened(url) as engine, engine.connect() as connection:
        schema = schema_state(connection)
        notes = []
        # A database without the projects table (empty, or not RolloutDB's) has no project whose rows to count.
        if project is not None and inspect(connection).has_table(projects.name):
            try:
                existing_project_id(connection, project, url)
            except NotFoundError as exc:
                notes.append(str(exc))
        tables = table_figures(connection, project)
        problems = [] if schema.up_to_date else [f"schema: {schema.summary}"]
        blobs = artifact_figures(connection, project)
        if blobs is not None and blobs.missing_count:
            problems.append(f"artifacts: {blobs.missing_count} blob file(s) missing, whose content is lost: "
                            + "; ".join(blobs.missing) + ("; ..." if blobs.missing_count > len(blobs.missing) else ""))
        if engine.dialect.name != "sqlite":
            server = connection.exec_driver_sql("SHOW server_version").scalar_one()
            return DatabaseReport("postgresql", display_url(url), schema, tables, server_version=server,
                                  problems=problems, project=project, notes=notes, artifacts=blobs,
                                  sizes=postgresql_sizes(connection, notes) if sizes else None)
        integrity = "; ".join(row[0] for row in connection.exec_driver_sql("PRAGMA integrity_check"))
        if integrity != "ok":
            problems.append(f"integrity check: {integrity}")
        database = sqlite_file(url)
        wal = Path(f"{database}-wal") if database else None
        return DatabaseReport(
            "sqlite", display_url(url), schema, tables, integrity=integrity,
            journal_mode=connection.exec_driver_sql("PRAGMA journal_mode").scalar_one(),
            file_size=Path(database).stat().st_size if database else None, problems=problems, project=project,
            notes=notes, artifacts=blobs,
            sizes=SizeReport(wal_size=wal.stat().st_size if wal and wal.exists() else 0 if wal else None)
            if sizes else None,
        )


MISSING_SHOWN = 5


def artifact_figures(connection: Connection, project: str | None = None) -> ArtifactFigures | None:
    """The artifacts of the project named ``project`` (or all), and each blob looked for where it lives (on disk, or
    by its URL: one request per blob to an object store)."""
    if not inspect(connection).has_table(artifacts.name):
        return None
    statement = select(artifacts.c.sha256, artifacts.c.size, artifacts.c.storage, artifacts.c.location)
    if project is not None:
        statement = statement.where(artifacts.c.project_id == select(projects.c.id).where(
            projects.c.name == project).scalar_subquery())
    count = size = in_files = file_bytes = missing_count = 0
    missing: list[str] = []
    for row in connection.execute(statement):
        count, size = count + 1, size + row.size
        if row.storage == "database":
            continue
        in_files += 1
        try:
            file_bytes += blob_size(row.storage, row.location)
        except (OSError, TypeError, ValueError):  # gone, unreadable, or no path at all
            missing_count += 1
            if len(missing) < MISSING_SHOWN:
                missing.append(f"{row.sha256} {row.location}")
    return ArtifactFigures(count, size, count - in_files, in_files, file_bytes, missing, missing_count)


SLOWEST_SHOWN = 10
PG_STAT_STATEMENTS_HELP = ("to see the slowest statements, add pg_stat_statements to shared_preload_libraries in "
                           "postgresql.conf, restart PostgreSQL, and run CREATE EXTENSION pg_stat_statements in "
                           "this database")


def postgresql_sizes(connection: Connection, notes: list[str]) -> SizeReport:
    """Index usage, and the slowest statements when pg_stat_statements can tell (else a note in ``notes``)."""
    indexes = [IndexUsage(*row) for row in connection.execute(text(
        "SELECT relname, indexrelname, idx_scan, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
        "WHERE schemaname = current_schema() ORDER BY idx_scan, pg_relation_size(indexrelid) DESC, indexrelname"))]
    installed = connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")).scalar()
    if installed is None:
        notes.append(f"pg_stat_statements is not installed: {PG_STAT_STATEMENTS_HELP}")
        return SizeReport(indexes=indexes)
    # Its columns were renamed in PostgreSQL 13.
    total, mean = (("total_exec_time", "mean_exec_time") if connection.dialect.server_version_info >= (13,)
                   else ("total_time", "mean_time"))
    try:
        with connection.begin_nested():  # refused when the library is not loaded: the rest of the report stands
            rows = connection.execute(text(
                f"SELECT query, calls, {mean}, {total} FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                f"ORDER BY {mean} DESC LIMIT :shown"), {"shown": SLOWEST_SHOWN}).all()
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "it cannot be read"
        notes.append(f"pg_stat_statements is installed but cannot be read ({reason}): {PG_STAT_STATEMENTS_HELP}")
        return SizeReport(indexes=indexes)
    return SizeReport(indexes=indexes, slow_statements=[SlowStatement(*row) for row in rows])


def table_figures(connection: Connection, project: str | None = None) -> list[TableFigures]:
    """Rows (of the project named ``project``, or of all) and bytes (all projects') of each table of the
    schema, by name."""
    existing = set(inspect(connection).get_table_names())
    sizes = _table_sizes(connection) or {}
    project_id = select(projects.c.id).where(projects.c.name == project).scalar_subquery()

    def rows(table: Table) -> int:
        statement = select(func.count()).select_from(table)
        if project is not None:
            statement = statement.where((table.c.id if table is projects else table.c.project_id) == project_id)
        return connection.execute(statement).scalar_one()

    return [TableFigures(name, rows(table) if name in existing else None, sizes.get(name))
            for name, table in sorted(metadata.tables.items())]


def _table_sizes(connection: Connection) -> dict[str, int] | None:
    """Bytes per table including its indexes; None when this SQLite lacks the dbstat table."""
    if connection.dialect.name == "postgresql":
        statement = text("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                         "WHERE c.relkind = 'r' AND c.relnamespace = to_regnamespace(current_schema())")
        return dict(connection.execute(statement).all())
    try:
        # dbstat lists tables and indexes by name; sqlite_master maps each index to its table.
        statement = text("SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m ON m.name = s.name "
                         "GROUP BY m.tbl_name")
        return dict(connection.execute(statement).all())
    except OperationalError as exc:  # the dbstat virtual table is a compile-time option of SQLite
        if "dbstat" not in str(exc):
            raise
        connection.rollback()
        return None


# -- space ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseSpace:
    size: int  # bytes the database takes: the SQLite file with its write-ahead log, or pg_database_size
    free: int | None  # bytes inside it free for reuse (SQLite's free pages); None on PostgreSQL


def database_space(url: str) -> DatabaseSpace:
    with opened(url) as engine, engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            return DatabaseSpace(connection.exec_driver_sql("SELECT pg_database_size(current_database())")
                                 .scalar_one(), None)
        database = sqlite_file(url)
        page_size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
        free = connection.exec_driver_sql("PRAGMA freelist_count").scalar_one() * page_size
        if database is None:
            return DatabaseSpace(connection.exec_driver_sql("PRAGMA page_count").scalar_one() * page_size, free)
        files = (Path(database), Path(f"{database}-wal"))
        return DatabaseSpace(sum(path.stat().st_size for path in files if path.exists()), free)


def vacuum_database(url: str) -> None:
    """Give the space of deleted rows back: SQLite rewrites the file (and empties its write-ahead log),
    PostgreSQL runs a plain VACUUM (the space becomes reusable; the files rarely shrink)."""
    with opened(url) as engine:
        if engine.dialect.name == "postgresql":
            # VACUUM cannot run inside a transaction.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM")
            return
        raw = engine.raw_connection()  # the store's SQLite connections leave transactions to it: autocommit
        try:
            raw.driver_connection.execute("VACUUM")
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


# -- backups --------------------------------------------------------------------------------------------------


def backup_sqlite_database(url: str, destination: Path, *, on_progress: Callable[[int, int], None] | None = None,
                           pages_per_step: int = 256) -> int:
    """SQLite's online backup of the database at ``url`` into ``destination`` (replaced only once the copy
    is complete), as one self-contained file; ``on_progress(pages copied, pages in all)``. Returns its size."""
    if backend_of(url) != "sqlite":
        raise InvalidInputError("only a SQLite database is copied this way: back up PostgreSQL with pg_dump "
                                "(see pg_dump_command)")
    if sqlite_file(url) is None:
        raise InvalidInputError("an in-memory database has nothing to back up")
    if not destination.parent.is_dir():
        raise InvalidInputError(f"cannot write {destination}: the directory {destination.parent} does not exist")
    if destination.is_dir():
        raise InvalidInputError(f"{destination} is a directory: give the path of a file to write the copy to")
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    with opened(url) as engine:
        source = engine.raw_connection()
        try:
            with contextlib.closing(sqlite3.connect(partial)) as target:
                def report(_status: int, remaining: int, total: int) -> None:
                    if on_progress is not None:
                        on_progress(total - remaining, total)

                source.driver_connection.backup(target, pages=pages_per_step, progress=report)
                # A backup should be one self-contained file, not a database plus its write-ahead log.
                target.execute("PRAGMA journal_mode = DELETE")
            # An old database at the destination may have left these behind; next to the new file they would
            # corrupt it.
            for stale in (f"{destination}-wal", f"{destination}-shm"):
                Path(stale).unlink(missing_ok=True)
            partial.replace(destination)
        except sqlite3.Error as exc:
            partial.unlink(missing_ok=True)
            raise StoreUnavailableError(f"backup of {display_url(url)} failed: {exc}") from exc
        finally:
            source.close()
    return destination.stat().st_size


@dataclass(frozen=True)
class PgDumpCommand:
    dump: str  # the pg_dump command line, password masked as ***
    restore: str
    password_masked: bool


def pg_dump_command(url: str, destination: Path) -> PgDumpCommand:
    """How to back up the PostgreSQL database at ``url`` into ``destination`` with PostgreSQL's own tools."""
    parsed = make_url(url).set(drivername="postgresql")  # libpq does not know SQLAlchemy's "+psycopg"
    masked = parsed.render_as_string(hide_password=True)
    file = shlex.quote(str(destination))
    return PgDumpCommand(f"pg_dump --format=custom --file={file} --dbname={shlex.quote(masked)}",
                         f"pg_restore --clean --dbname=URL {file}", bool(parsed.password))
