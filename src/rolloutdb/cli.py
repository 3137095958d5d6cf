"""The `rolloutdb` command line: set up, inspect, back up and rebuild a RolloutDB database."""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import math
import shlex
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Connection, Engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from . import states
from .config import display_url, resolve_url
from .demo import ROLLOUT_COUNT, record_sample_run
from .errors import RolloutDBError, StoreUnavailableError
from .records import Run
from .schema import metadata
from .store import DEFAULT_PROJECT, Store, connect
from .store.engine import (
    create_store_engine,
    current_revision,
    drop_everything,
    ensure_schema,
    head_revision,
    migration_history,
    unavailable_as_error,
    upgrade,
)

app = typer.Typer(
    name="rolloutdb",
    help="RolloutDB: the experience store for agent reinforcement learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals would include the database URL with its password
)
db_app = typer.Typer(help="Schema migrations: current revision, upgrade, history.", no_args_is_help=True)
runs_app = typer.Typer(help="Training, eval and job runs.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")

# Markup, emoji codes and highlighting off: run names, configs and errors are printed as they are.
console = Console(markup=False, emoji=False, highlight=False)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])
EntityType = enum.StrEnum("EntityType", {name: name for name in states.TRANSITIONS})
SHOWN_STEPS = 20


@dataclass(frozen=True)
class Target:
    """The database and project a command works on (``--url``, ``--project``)."""

    url: str | None
    project: str

    @property
    def resolved_url(self) -> str:
        return resolve_url(self.url)

    def connect(self, *, upgrade: bool = False) -> Store:
        """The project's store; a new database is created, an out-of-date one refused unless ``upgrade``."""
        return connect(self.url, project=self.project, upgrade=upgrade)

    @contextlib.contextmanager
    def engine(self, *, must_exist: bool = True) -> Iterator[Engine]:
        """The bare engine, for commands that must not migrate (or even create) the database."""
        url = self.resolved_url
        path = sqlite_path(url)
        if must_exist and path is not None and not path.exists():
            raise StoreUnavailableError(
                f"there is no database at {display_url(url)}: run `rolloutdb init` to create one"
            )
        engine = create_store_engine(url)
        try:
            with unavailable_as_error(url):
                yield engine
        finally:
            engine.dispose()


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        help="Database URL. Default: ROLLOUTDB_URL, DATABASE_URL, POSTGRES_* or sqlite:///./rolloutdb.db.",
        show_default=False,
    )] = None,
    project: Annotated[str, typer.Option(help="Project whose rows the command reads and writes.")] = DEFAULT_PROJECT,
) -> None:
    ctx.obj = Target(url, project)


# -- shared helpers --------------------------------------------------------------------------------------


def fail(message: str) -> NoReturn:
    # soft_wrap: the terminal wraps the line, so commands in the message copy and paste whole.
    err_console.print(f"Error: {message}", style="red", soft_wrap=True)
    raise typer.Exit(1)


def reports_errors(command: F) -> F:
    """Print a RolloutDBError, or an error the database raised, as one line with exit code 1, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RolloutDBError as exc:
            fail(str(exc))
        except (DBAPIError, sqlite3.DatabaseError) as exc:  # e.g. a file that is not a SQLite database
            # The driver's first line only: SQLAlchemy's message adds the statement and its parameters.
            detail = exc.orig if isinstance(exc, DBAPIError) else exc
            fail(f"the database reported an error: {str(detail).strip().splitlines()[0]}")

    return wrapper  # type: ignore[return-value]


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def format_time(value: datetime | None, *, precision: str = "seconds", day_of: datetime | None = None) -> str:
    """Local time to the "minutes", "seconds" or "milliseconds"; "-" when unset.

    Only the time of day when ``value`` falls on the same day as ``day_of`` (shown next to it).
    """
    if value is None:
        return "-"
    local = value.astimezone().replace(tzinfo=None)
    if day_of is not None and local.date() == day_of.astimezone().date():
        return local.time().isoformat(timespec=precision)
    return local.isoformat(sep=" ", timespec=precision)


def format_duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    seconds = (end - start).total_seconds()
    return f"{seconds:.1f}s" if seconds < 60 else f"{int(seconds // 60)}m {seconds % 60:02.0f}s"


def format_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    exponent = min(int(math.log(size, 1024)) if size else 0, len(units) - 1)
    return f"{size / 1024 ** exponent:.1f} {units[exponent]}" if exponent else f"{size} B"


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def print_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, keep_whole: Collection[str] = ()
) -> None:
    """A table of ``rows``. On a narrow terminal cells wrap, except in the ``keep_whole`` columns (names, ids)."""
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                  collapse_padding=True)
    for column in columns:
        table.add_column(column, no_wrap=column in keep_whole, overflow="fold")
    for row in rows:
        table.add_row(*(format_value(cell) for cell in row))
    console.print(table)


def print_fields(fields: Iterable[tuple[str, Any]]) -> None:
    """Label / value pairs, one a line, labels aligned; pairs without a value are left out."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for label, value in fields:
        if value is not None:
            grid.add_row(label, format_value(value))
    console.print(grid)


def progress_bar() -> Progress:
    # On stderr, so that stdout carries only the result.
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True)


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str
    summary: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema_state(connection: Connection) -> SchemaState:
    """Where the database's schema stands against this release, and what to do about it."""
    current, head = current_revision(connection), head_revision()
    if current == head:
        summary = f"{current} (up to date)"
    elif current is None and inspect(connection).get_table_names():
        summary = "no RolloutDB schema version, but the database has tables: not a RolloutDB database"
    elif current is None:
        summary = f"empty: not initialised (run `rolloutdb init` to create schema {head})"
    elif current not in {revision for revision, _, _ in migration_history()}:
        summary = f"{current}, newer than this release knows (head {head}): upgrade the rolloutdb package"
    else:
        summary = f"{current}, out of date (head {head}): run `rolloutdb db upgrade`"
    return SchemaState(current, head, summary)


# -- setup and schema --------------------------------------------------------------------------------------


@app.command()
@reports_errors
def init(ctx: typer.Context) -> None:
    """Create the database, or migrate it to this release's schema, and say where it is."""
    with ctx.obj.connect(upgrade=True) as store, store.engine.connect() as connection:
        revision = current_revision(connection)
    console.print("RolloutDB database ready", style="green")
    print_fields([("backend", store.backend), ("url", display_url(store.url)), ("schema", revision),
                  ("project", store.project)])


@db_app.command("upgrade")
@reports_errors
def db_upgrade(ctx: typer.Context) -> None:
    """Migrate the database schema to this release's head revision."""
    with ctx.obj.engine(must_exist=False) as engine:
        with engine.connect() as connection:
            before = current_revision(connection)
        ensure_schema(engine, upgrade_if_needed=True)
        with engine.connect() as connection:
            after = current_revision(connection)
    if before == after:
        console.print(f"Schema already at {after}: nothing to do.")
    else:
        console.print(f"Schema upgraded: {before or 'empty'} → {after}", style="green")


@db_app.command("current")
@reports_errors
def db_current(ctx: typer.Context) -> None:
    """Show the database's schema revision against this release's; exit 1 unless up to date."""
    url = ctx.obj.resolved_url
    with ctx.obj.engine() as engine, engine.connect() as connection:
        state = schema_state(connection)
    print_fields([("url", display_url(url)), ("current", state.current or "none"), ("head", state.head),
                  ("status", state.summary)])
    if not state.up_to_date:
        raise typer.Exit(1)


@db_app.command("history")
@reports_errors
def db_history(ctx: typer.Context) -> None:
    """List the migrations this release ships, newest first, marking the database's revision."""
    with ctx.obj.engine() as engine, engine.connect() as connection:
        current = current_revision(connection)
    print_table(
        "Migrations", ("revision", "parent", "message", ""),
        ((revision, parent, message, "← current" if revision == current else "")
         for revision, parent, message in migration_history()),
    )


@app.command()
@reports_errors
def rebuild(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm that every table and all data may be dropped.")] = False,
) -> None:
    """Drop every table (all projects, all data) and recreate the schema at head."""
    url = ctx.obj.resolved_url
    if not yes:
        fail(f"rebuild drops every table and all data of every project in {display_url(url)}. "
             "Run `rolloutdb rebuild --yes` to do it.")
    with ctx.obj.engine(must_exist=False) as engine:
        drop_everything(engine)
        revision = upgrade(engine)
    console.print(f"Dropped every table of {display_url(url)} and recreated schema {revision}.", style="green")


# -- runs and history -----------------------------------------------------------------------------------


@runs_app.command("ls")
@reports_errors
def runs_ls(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(help="Only runs in this status (repeatable).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind: train, eval, baseline or job.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 20,
    sort: Annotated[str, typer.Option(help="Field to sort by: created_at, name, status, progress, ...")] = "created_at",
    descending: Annotated[bool, typer.Option("--desc/--asc", help="Sort order (newest first by default).")] = True,
) -> None:
    """List runs."""
    filters: dict[str, Any] = {}
    if status:
        filters["status"] = status
    if kind:
        filters["kind"] = kind
    with ctx.obj.connect() as store:
        runs = store.runs.query(sort=sort, order="desc" if descending else "asc", limit=limit, **filters)
        total = store.runs.count(**filters)
    if not runs:
        console.print(f"No runs in project {ctx.obj.project!r}" + (" match the filters." if filters else "."))
        return
    print_table(
        None, ("name", "kind", "status", "progress", "stage", "created", "started", "ended"),
        # started and ended show only the time of day when it falls on the created date
        ((run.name, run.kind, run.status, f"{run.progress:.0f}%", run.stage,
          format_time(run.created_at, precision="minutes"), format_time(run.started_at, day_of=run.created_at),
          format_time(run.ended_at, day_of=run.created_at)) for run in runs),
        keep_whole=("name",),
    )
    if total > len(runs):
        console.print(f"{len(runs)} of {total} runs shown; raise --limit to see more.")


@runs_app.command("show")
@reports_errors
def runs_show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Run name or id.")]) -> None:
    """Show one run: its fields, its steps and its groups and rollouts by status."""
    with ctx.obj.connect() as store:
        print_run(store, store.runs.get(name))


def print_run(store: Store, run: Run) -> None:
    print_fields([
        ("run", run.name), ("id", run.id), ("kind", run.kind), ("status", run.status),
        ("progress", f"{run.progress:.0f}%" + (f" of {run.total_steps} steps" if run.total_steps else "")),
        ("stage", run.stage), ("message", run.message), ("error", run.error),
        ("parent", f"{run.parent_run_id} step {run.parent_step}" if run.parent_run_id else None),
        ("config", run.config), ("created", format_time(run.created_at)), ("started", format_time(run.started_at)),
        ("ended", format_time(run.ended_at)), ("duration", format_duration(run.started_at, run.ended_at)),
    ])
    console.print()
    print_steps(store, run)
    console.print()
    print_fields([
        ("groups", status_counts(store.groups.count, run.id, states.GroupStatus)),
        ("rollouts", status_counts(store.rollouts.count, run.id, states.RolloutStatus)),
    ])


def print_steps(store: Store, run: Run) -> None:
    total = store.steps.count(run_id=run.id)
    if not total:
        console.print("No steps.")
        return
    steps = store.steps.query(run_id=run.id, order="desc", limit=SHOWN_STEPS)[::-1]
    metric_names = sorted({name for step in steps for name in step.metrics})  # one column per metric
    title = "Steps" if total <= len(steps) else f"Steps (last {len(steps)} of {total})"
    print_table(
        title, ("step", "status", *metric_names),
        ((step.number, step.status, *(step.metrics.get(name) for name in metric_names)) for step in steps),
    )


def status_counts(count: Callable[..., int], run_id: str, statuses: Iterable[str]) -> str:
    """e.g. "24: 19 succeeded, 5 failed" for the statuses that have rows."""
    by_status = {str(status): count(run_id=run_id, status=str(status)) for status in statuses}
    present = [f"{number} {status}" for status, number in by_status.items() if number]
    return f"{sum(by_status.values())}" + (f": {', '.join(present)}" if present else "")


@app.command()
@reports_errors
def history(
    ctx: typer.Context,
    entity: Annotated[EntityType, typer.Argument(help="What the id names.")],
    id: Annotated[str, typer.Argument(help="Its id (a run may also be named by its name).")],
) -> None:
    """Show the status history of a run, step, group, rollout or attempt, oldest first."""
    with ctx.obj.connect() as store:
        changes = store.history(entity.value, id)
    if not changes:
        fail(f"no status changes recorded for {entity.value} {id!r} in project {ctx.obj.project!r}; check the id")
    print_table(
        f"History of {entity.value} {id}", ("time", "change", "reason"),
        ((format_time(change.changed_at, precision="milliseconds"),
          f"{change.old_status or '(new)'} → {change.new_status}", change.reason) for change in changes),
        keep_whole=("time", "change"),
    )


# -- health and backups ------------------------------------------------------------------------------------


@app.command()
@reports_errors
def doctor(ctx: typer.Context) -> None:
    """Check the database: schema revision, tables with row counts and sizes, SQLite integrity."""
    url = ctx.obj.resolved_url
    problems: list[str] = []
    with ctx.obj.engine() as engine, engine.connect() as connection:
        state = schema_state(connection)
        if not state.up_to_date:
            problems.append(f"schema: {state.summary}")
        summary: list[tuple[str, Any]] = [("backend", engine.dialect.name), ("url", display_url(url)),
                                          ("schema", state.summary)]
        if engine.dialect.name == "sqlite":
            integrity = sqlite_integrity(connection)
            if integrity != "ok":
                problems.append(f"integrity check: {integrity}")
            path = sqlite_path(url)
            summary += [("integrity", integrity),
                        ("journal mode", connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()),
                        ("file size", format_bytes(path.stat().st_size) if path else "in memory")]
        else:
            summary.append(("server", connection.exec_driver_sql("SHOW server_version").scalar_one()))
        counts = table_row_counts(connection)
        sizes = table_sizes(connection)
    print_fields(summary)
    console.print()
    if sizes is None:
        print_table("Tables (all projects)", ("table", "rows"), counts.items())
    else:
        print_table("Tables (all projects)", ("table", "rows", "size"),
                    ((name, rows, format_bytes(sizes.get(name))) for name, rows in counts.items()))
    if problems:
        for problem in problems:
            err_console.print(f"Problem: {problem}", style="red")
        raise typer.Exit(1)
    console.print("No problems found.", style="green")


def table_row_counts(connection: Connection) -> dict[str, str]:
    """Rows in each table of the schema (all projects), by table name; "missing" for absent tables."""
    existing = set(inspect(connection).get_table_names())
    return {
        name: f"{connection.execute(select(func.count()).select_from(table)).scalar_one():,}"
        if name in existing else "missing"
        for name, table in sorted(metadata.tables.items())
    }


def table_sizes(connection: Connection) -> dict[str, int] | None:
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


def sqlite_integrity(connection: Connection) -> str:
    """"ok", or the problems PRAGMA integrity_check found."""
    return "; ".join(row[0] for row in connection.exec_driver_sql("PRAGMA integrity_check"))


@app.command()
@reports_errors
def backup(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="File to write the copy to.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite PATH if it exists.")] = False,
) -> None:
    """Copy a SQLite database while it is in use (for PostgreSQL, print the pg_dump command)."""
    url = ctx.obj.resolved_url
    if make_url(url).get_backend_name() == "postgresql":
        print_pg_dump_command(url, path)
        return
    if sqlite_path(url) is None:
        fail("an in-memory database has nothing to back up")
    if path.exists() and not force:
        fail(f"{path} already exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        fail(f"cannot write {path}: the directory {path.parent} does not exist")
    with ctx.obj.engine() as engine:
        started = time.monotonic()
        copy_sqlite_database(engine, path)
    console.print(f"Backed up {display_url(url)} to {path} ({format_bytes(path.stat().st_size)}) "
                  f"in {time.monotonic() - started:.1f}s.", style="green")


def copy_sqlite_database(engine: Engine, destination: Path, pages_per_step: int = 256) -> None:
    """SQLite's online backup into ``destination``, replacing it only once the copy is complete."""
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    source = engine.raw_connection()
    try:
        with progress_bar() as progress, contextlib.closing(sqlite3.connect(partial)) as target:
            task = progress.add_task("Backing up", total=None)

            def report(_status: int, remaining: int, total: int) -> None:
                progress.update(task, total=total, completed=total - remaining)

            source.driver_connection.backup(target, pages=pages_per_step, progress=report)
            # A backup should be one self-contained file, not a database plus its write-ahead log.
            target.execute("PRAGMA journal_mode = DELETE")
        # An old database at PATH may have left these behind; next to the new file they would corrupt it.
        for stale in (f"{destination}-wal", f"{destination}-shm"):
            Path(stale).unlink(missing_ok=True)
        partial.replace(destination)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        fail(f"backup failed: {exc}")
    finally:
        source.close()


def print_pg_dump_command(url: str, path: Path) -> None:
    parsed = make_url(url).set(drivername="postgresql")  # libpq does not know SQLAlchemy's "+psycopg"
    masked = parsed.render_as_string(hide_password=True)
    console.print("PostgreSQL is backed up with its own tools. Run:")
    console.print(f"  pg_dump --format=custom --file={shlex.quote(str(path))} --dbname={shlex.quote(masked)}",
                  soft_wrap=True)
    if parsed.password:
        console.print("with the real password in place of ***, or leave it out and set PGPASSWORD.")
    console.print(f"Restore with: pg_restore --clean --dbname=URL {shlex.quote(str(path))}", soft_wrap=True)


# -- demo -------------------------------------------------------------------------------------------------


@app.command()
@reports_errors
def demo(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Run name. Default: demo-<timestamp>.", show_default=False)] = None,
) -> None:
    """Record a small sample training run (3 steps of GRPO groups) and show it."""
    name = name or f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    with ctx.obj.connect() as store:
        with progress_bar() as progress:
            task = progress.add_task(f"Recording {name}", total=ROLLOUT_COUNT)
            run = record_sample_run(store, name, on_rollout=lambda _rollout: progress.advance(task))
        print_run(store, run)
