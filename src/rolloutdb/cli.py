"""The `rolloutdb` command line: set up, inspect, back up and rebuild a RolloutDB database, watch its
queue, look at rollouts and purge old ones, replay what recorders kept in their journal."""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import math
import re
import shlex
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
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
from .demo import train_demo
from .errors import InvalidInputError, RolloutDBError, StoreUnavailableError
from .recorder import DEFAULT_DIRECTORY as DEFAULT_JOURNAL_DIRECTORY
from .recorder import JournalInfo, count_journal_records, journal_folder, list_journals, replay_journals
from .records import Rollout, Run, RunComparison, RunEvent, RunStats, StatusChange
from .schema import attempts as attempts_table
from .schema import metadata
from .schema import rollouts as rollouts_table
from .store import DEFAULT_PROJECT, PurgeResult, Store, connect
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
from .store.jobs import JobStatus
from .store.rollouts import QUEUED

app = typer.Typer(
    name="rolloutdb",
    help="RolloutDB: the experience store for agent reinforcement learning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals would include the database URL with its password
)
db_app = typer.Typer(help="Schema migrations: current revision, upgrade, history.", no_args_is_help=True)
runs_app = typer.Typer(help="Training, eval and job runs.", no_args_is_help=True)
rollouts_app = typer.Typer(help="Rollouts: list them, or show one with its attempts, spans and history.",
                           no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(runs_app, name="runs")
jobs_app = typer.Typer(help="Long jobs (every run is one): watch, pause, resume, cancel, logs.", no_args_is_help=True)
app.add_typer(rollouts_app, name="rollouts")
app.add_typer(jobs_app, name="jobs")
journal_app = typer.Typer(help="What recorders kept on disk while the database was away or slow: list it, "
                               "replay it.", no_args_is_help=True)
app.add_typer(journal_app, name="journal")

# Markup, emoji codes and highlighting off: run names, configs and errors are printed as they are.
console = Console(markup=False, emoji=False, highlight=False)
err_console = Console(stderr=True, markup=False, emoji=False, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])
EntityType = enum.StrEnum("EntityType", {name: name for name in states.TRANSITIONS})
SHOWN_STEPS = 20
SHOWN_SPANS = 10
SHOWN_LOG_ROWS = 10
# Units largest first, each at most once: "7d", "12h", "1d12h", "1h30m".
LONGEST_DURATION = timedelta(days=100 * 365)
DURATION = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
# C0 and C1 controls (ESC starts terminal escape sequences), line and paragraph separators, bidi overrides.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


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
        except OverflowError as exc:  # e.g. --step 99999999999999999999: SQLite's driver refuses it
            fail(f"a number is too large: {exc}")

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
    """e.g. "4.2s", "3m 07s", "2h 05m", "3d 04h"; "-" when either end is unset."""
    if start is None or end is None:
        return "-"
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


def format_age(value: datetime | None, now: datetime) -> str:
    """How long before ``now`` ``value`` was, e.g. "12.0s ago"; "-" when unset."""
    return "-" if value is None else f"{format_duration(value, max(value, now))} ago"


def parse_duration(value: str) -> timedelta:
    """"30s", "15m", "12h", "7d" or a combination, largest unit first, such as "1d12h"."""
    match = DURATION.fullmatch(value.strip())
    if match is None or not match.group(0):
        raise InvalidInputError(f"cannot read {value!r} as a duration: give a number and a unit s, m, h or d, "
                                "e.g. 30s, 15m, 12h, 7d, or a combination largest unit first such as 1d12h")
    amounts = {unit: int(amount or 0) for unit, amount in match.groupdict().items()}
    seconds = amounts["d"] * 86400 + amounts["h"] * 3600 + amounts["m"] * 60 + amounts["s"]
    if seconds > LONGEST_DURATION.total_seconds():  # the store subtracts it from now: keep well after year 1
        raise InvalidInputError(f"{value!r} is too long a duration: at most {LONGEST_DURATION.days}d")
    return timedelta(seconds=seconds)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def format_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    exponent = min(int(math.log(size, 1024)) if size else 0, len(units) - 1)
    return f"{size / 1024 ** exponent:.1f} {units[exponent]}" if exponent else f"{size} B"


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``, ``\\n``), for data read from
    files or written by other programs: the consoles print no markup, and this keeps such data from moving
    the cursor, recolouring the terminal or breaking a line."""
    return CONTROL_CHARACTERS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
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
    # On stderr, so that stdout carries only the result; quiet when stderr is not a terminal, where Rich would
    # leave an empty line (before an error message, in a log).
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console if err_console.is_terminal else Console(stderr=True, quiet=True),
                    transient=True)


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
    return format_counts({str(status): count(run_id=run_id, status=str(status)) for status in statuses})


def format_counts(by_status: Mapping[str, int]) -> str:
    """The total, then the statuses that have rows: "24: 19 succeeded, 5 failed"."""
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
    print_history(f"History of {entity.value} {id}", changes)


def print_history(title: str, changes: Iterable[StatusChange]) -> None:
    print_table(
        title, ("time", "change", "reason"),
        ((format_time(change.changed_at, precision="milliseconds"),
          f"{change.old_status or '(new)'} → {change.new_status}", change.reason) for change in changes),
        keep_whole=("time", "change"),
    )


# -- the queue, rollouts and retention ----------------------------------------------------------------------


@app.command()
@reports_errors
def queue(ctx: typer.Context) -> None:
    """Show the queue at a glance: rollouts by status, the longest wait, attempts and workers.

    Runs the health check first: attempts past their timeout or silent too long show as timeout / unresponsive.
    """
    with ctx.obj.connect() as store:
        marked = store.check_health()
        by_status = {str(status): store.rollouts.count(status=str(status)) for status in states.RolloutStatus}
        oldest_queued, attempt_counts = queue_figures(store)
        workers = store.workers.query(limit=None)
        now = store.now()
    print_table("Rollouts by status", ("status", "rollouts"), by_status.items(), keep_whole=("status",))
    console.print()
    waiting = sum(by_status[str(status)] for status in QUEUED)
    print_fields([
        ("waiting", f"{waiting} (queuing or requeuing)"),
        ("oldest queued", f"{format_time(oldest_queued)} ({format_age(oldest_queued, now)})"
                          if oldest_queued else None),
        ("attempts", f"{format_counts(attempt_counts)} (of unfinished rollouts)"),
        ("health check", f"marked {plural(marked, 'stale attempt')} timeout or unresponsive"
                         if marked else "no stale attempts"),
    ])
    console.print()
    if not workers:
        console.print(f"No workers in project {ctx.obj.project!r}.")
        return
    print_table(
        "Workers", ("id", "status", "current rollout", "last heartbeat", "last dequeue"),
        ((worker.id, worker.status, worker.current_rollout_id, format_age(worker.last_heartbeat_at, now),
          format_age(worker.last_dequeue_at, now)) for worker in workers),
        keep_whole=("id", "current rollout"),
    )


def queue_figures(store: Store) -> tuple[datetime | None, dict[str, int]]:
    """When the longest-waiting rollout was queued, and the attempts of unfinished rollouts by status.

    Read with SQL: the store's areas cannot sort or filter rollouts by queued_at, nor join attempts to rollouts.
    """
    oldest = (select(func.min(rollouts_table.c.queued_at))
              .where(rollouts_table.c.project_id == store.project_id, rollouts_table.c.status.in_(QUEUED)))
    attempts_by_status = (
        select(attempts_table.c.status, func.count())
        .join(rollouts_table, rollouts_table.c.id == attempts_table.c.rollout_id)
        .where(rollouts_table.c.project_id == store.project_id,
               rollouts_table.c.status.not_in(states.TERMINAL["rollout"]))
        .group_by(attempts_table.c.status)
    )
    with store.engine.connect() as connection:
        oldest_queued = connection.execute(oldest).scalar_one()
        found = dict(connection.execute(attempts_by_status).all())
    return oldest_queued, {str(status): found.get(str(status), 0) for status in states.AttemptStatus}


@rollouts_app.command("ls")
@reports_errors
def rollouts_ls(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(help="Only rollouts in this status (repeatable).")] = None,
    run: Annotated[str | None, typer.Option(help="Only rollouts of this run (name or id).")] = None,
    step: Annotated[int | None, typer.Option(help="Only rollouts of this step.")] = None,
    group: Annotated[str | None, typer.Option(help="Only rollouts of this group (id).")] = None,
    mode: Annotated[str | None, typer.Option(help="Only rollouts of this mode: train, val or test.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rollouts.")] = 20,
    sort: Annotated[str, typer.Option(help="Field to sort by: created_at, started_at, ended_at, reward, step, "
                                           "status, ...")] = "created_at",
    descending: Annotated[bool, typer.Option("--desc/--asc", help="Sort order (newest first by default).")] = True,
) -> None:
    """List rollouts."""
    filters: dict[str, Any] = {}
    if status:
        filters["status"] = status
    if step is not None:
        filters["step"] = step
    if group:
        filters["group_id"] = group
    if mode:
        filters["mode"] = mode
    with ctx.obj.connect() as store:
        if run:
            filters["run_id"] = store.runs.get(run).id
        rollouts = store.rollouts.query(sort=sort, order="desc" if descending else "asc", limit=limit, **filters)
        total = store.rollouts.count(**filters)
        run_ids = sorted({rollout.run_id for rollout in rollouts if rollout.run_id})
        run_names = {found.id: found.name for found in store.runs.query(id=run_ids, limit=None)} if run_ids else {}
        now = store.now()
    if not rollouts:
        console.print(f"No rollouts in project {ctx.obj.project!r}" + (" match the filters." if filters else "."))
        return
    print_table(
        None, ("id", "status", "mode", "attempts", "reward", "run/step", "created", "duration"),
        ((rollout.id, rollout.status, rollout.mode, rollout.attempt_count, rollout.reward,
          # created today: the time of day only
          run_and_step(run_names.get(rollout.run_id), rollout.step), format_time(rollout.created_at, day_of=now),
          format_duration(rollout.started_at, rollout.ended_at)) for rollout in rollouts),
        keep_whole=("id", "status", "created"),
    )
    if total > len(rollouts):
        console.print(f"{len(rollouts)} of {total} rollouts shown; raise --limit to see more.")


def run_and_step(run_name: str | None, step: int | None) -> str | None:
    """ "my-run/3", "my-run", "step 3" or None."""
    if run_name is None:
        return None if step is None else f"step {step}"
    return run_name if step is None else f"{run_name}/{step}"


@rollouts_app.command("show")
@reports_errors
def rollouts_show(ctx: typer.Context, id: Annotated[str, typer.Argument(help="Rollout id.")]) -> None:
    """Show one rollout: its fields, its attempts, the spans of its latest attempt and its status history."""
    with ctx.obj.connect() as store:
        rollout = store.rollouts.get(id)
        run = store.runs.get(rollout.run_id) if rollout.run_id else None
        attempts = store.attempts.query(rollout_id=rollout.id, limit=None)
        latest = attempts[-1] if attempts else None
        span_count = store.spans.count(rollout_id=rollout.id, attempt_id=latest.id) if latest else 0
        spans = store.spans.query(rollout.id, latest.id, limit=SHOWN_SPANS) if latest else []
        changes = store.history("rollout", rollout.id)
    print_rollout_fields(rollout, run)
    console.print()
    if not attempts:
        console.print("No attempts.")
    else:
        print_table(
            "Attempts", ("attempt", "status", "worker", "started", "ended", "last heartbeat"),
            # times show only the time of day when it falls on the day the rollout was created
            ((attempt.sequence, attempt.status, attempt.worker_id,
              format_time(attempt.started_at, day_of=rollout.created_at),
              format_time(attempt.ended_at, day_of=rollout.created_at),
              format_time(attempt.last_heartbeat_at, day_of=rollout.created_at)) for attempt in attempts),
            keep_whole=("worker",),
        )
        console.print()
        if not span_count:
            console.print(f"No spans from attempt {latest.sequence}.")
        else:
            shown = "" if span_count <= len(spans) else f" (first {len(spans)} of {span_count})"
            print_table(
                f"Spans of attempt {latest.sequence}{shown}",
                ("seq", "name", "trace id", "span id", "parent id"),
                ((span.sequence_id, span.name, span.trace_id, span.span_id, span.parent_id) for span in spans),
            )
    console.print()
    print_history("History", changes)


def print_rollout_fields(rollout: Rollout, run: Run | None) -> None:
    print_fields([
        ("rollout", rollout.id), ("status", rollout.status), ("mode", rollout.mode),
        ("run", f"{run.name} ({run.id})" if run else None), ("step", rollout.step), ("group", rollout.group_id),
        ("task", rollout.task_id), ("resources", rollout.resources_id), ("attempts", rollout.attempt_count),
        ("reward", rollout.reward), ("success", rollout.success), ("error", rollout.error),
        ("input", None if rollout.input is None else json.dumps(rollout.input, ensure_ascii=False)),
        ("metrics", rollout.metrics or None), ("validation", rollout.validation),
        ("metadata", rollout.metadata or None),
        ("config", rollout.config.model_dump(exclude_none=True)), ("created", format_time(rollout.created_at)),
        ("queued", format_time(rollout.queued_at) if rollout.queued_at else None),
        ("started", format_time(rollout.started_at)), ("ended", format_time(rollout.ended_at)),
        ("duration", format_duration(rollout.started_at, rollout.ended_at)),
    ])


@app.command()
@reports_errors
def purge(
    ctx: typer.Context,
    older_than: Annotated[str | None, typer.Option(
        help="Delete finished rollouts that ended longer ago than this: 30s, 15m, 12h, 7d, 1d12h, ...",
        show_default=False)] = None,
    keep_last: Annotated[int | None, typer.Option(
        help="Keep this many most recently finished rollouts; delete the finished ones before them.",
        show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm the deletion.")] = False,
) -> None:
    """Delete finished rollouts with their attempts, spans, turns and history; unfinished ones are kept.

    Needs --older-than, --keep-last or both, and --yes to delete: without it, only says what would go.
    """
    age = parse_duration(older_than) if older_than is not None else None
    with ctx.obj.connect() as store:
        if yes and not dry_run:
            print_purge_result("Deleted", store.purge(older_than=age, keep_last=keep_last))
            return
        counted = store.purge(older_than=age, keep_last=keep_last, dry_run=True)
    print_purge_result("Would delete", counted)
    if not dry_run:
        fail(f"purge would delete {plural(counted.rollouts, 'finished rollout')} with "
             f"{plural(counted.attempts, 'attempt')}, {plural(counted.spans, 'span')} and "
             f"{plural(counted.turns, 'turn')}; nothing was deleted. Pass --yes to delete them, or --dry-run "
             "to only count.")


def print_purge_result(title: str, result: PurgeResult) -> None:
    print_table(title, ("table", "rows"), asdict(result).items())


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


# -- long jobs --------------------------------------------------------------------------------------------

JobName = Annotated[str, typer.Argument(help="Job name or id.")]
Reason = Annotated[str | None, typer.Option(help="Why, for the job's log.")]
ENDED = (states.RunStatus.COMPLETED, states.RunStatus.FAILED, states.RunStatus.CANCELLED, states.RunStatus.PAUSED)


def job_status_label(job: JobStatus) -> str:
    """The status, with what is pending: "running (stale)", "running, pause requested"."""
    label = job.run.status + (" (stale)" if job.stale else "")
    return label + (f", {job.run.control} requested" if job.run.control else "")


def stage_label(run: Run) -> str | None:
    """The current stage with its share of the plan, e.g. "ddl (10-40%)"."""
    plan = {stage["name"]: stage for stage in run.stages}
    stage = plan.get(run.stage or "")
    return f"{run.stage} ({stage['start']:g}-{stage['end']:g}%)" if stage else run.stage


@jobs_app.command("ls")
@reports_errors
def jobs_ls(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option(help="Only jobs in this status (repeatable).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind (job, train, ...).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many jobs.")] = 20,
) -> None:
    """List jobs (every run is one) with their stage, progress and heartbeat."""
    filters: dict[str, Any] = {key: value for key, value in (("status", status), ("kind", kind)) if value}
    with ctx.obj.connect() as store:
        jobs = [store.jobs.get(run.id) for run in store.jobs.query(limit=limit, **filters)]
        now = store.now()
    if not jobs:
        console.print(f"No jobs in project {ctx.obj.project!r}" + (" match the filters." if filters else "."))
        return
    print_table(
        None, ("name", "kind", "status", "stage", "progress", "message", "heartbeat", "started"),
        ((job.run.name, job.run.kind, job_status_label(job), job.run.stage, f"{job.run.progress:.0f}%",
          job.run.message, format_age(job.run.heartbeat_at, now), format_time(job.run.started_at, precision="minutes"))
         for job in jobs),
        keep_whole=("name",),
    )


@jobs_app.command("show")
@reports_errors
def jobs_show(ctx: typer.Context, name: JobName) -> None:
    """Show a job: status, stage, progress, saved state and its latest log rows."""
    with ctx.obj.connect() as store:
        job = store.jobs.get(name)
        events = store.jobs.logs(job.run.id, limit=SHOWN_LOG_ROWS)
        now = store.now()
    run = job.run
    print_fields([
        ("job", run.name), ("id", run.id), ("kind", run.kind), ("status", job_status_label(job)),
        ("stage", stage_label(run)), ("progress", f"{run.progress:.1f}%"), ("message", run.message),
        ("error", run.error), ("concurrency key", run.concurrency_key), ("saved state", run.state),
        ("heartbeat", format_age(run.heartbeat_at, now)), ("created", format_time(run.created_at)),
        ("started", format_time(run.started_at)), ("ended", format_time(run.ended_at)),
    ])
    console.print()
    print_events(f"Log (last {len(events)})", events)


def print_events(title: str | None, events: Iterable[RunEvent]) -> None:
    print_table(title, ("time", "level", "stage", "progress", "message"),
                ((format_time(event.time, precision="milliseconds"), event.level, event.stage,
                  None if event.progress is None else f"{event.progress:.1f}%", event.message) for event in events),
                keep_whole=("time",))


@jobs_app.command("pause")
@reports_errors
def jobs_pause(ctx: typer.Context, name: JobName, reason: Reason = None) -> None:
    """Ask a running job to pause at its next checkpoint (its state is saved; run it again to resume)."""
    with ctx.obj.connect() as store:
        run = store.jobs.request_pause(name, reason)
    if run.status == states.RunStatus.PAUSED:
        console.print(f"{run.name} paused at once: its process had stopped sending heartbeats.")
    else:
        console.print(f"Pause requested: {run.name} stops at its next checkpoint, saving its state.")


@jobs_app.command("resume")
@reports_errors
def jobs_resume(ctx: typer.Context, name: JobName, reason: Reason = None) -> None:
    """Mark a paused job for resuming; its code, started again, continues from the saved stage and state."""
    with ctx.obj.connect() as store:
        run = store.jobs.request_resume(name, reason)
    where = f" from stage {run.stage}" if run.stage else ""
    console.print(f"Resume requested: run {run.name}'s code again; it continues{where} at {run.progress:.0f}%.")


@jobs_app.command("cancel")
@reports_errors
def jobs_cancel(ctx: typer.Context, name: JobName, reason: Reason = None) -> None:
    """Cancel a job: a running one at its next checkpoint, a pending or paused one at once."""
    with ctx.obj.connect() as store:
        run = store.jobs.request_cancel(name, reason)
    if run.status == states.RunStatus.CANCELLED:
        console.print(f"{run.name} cancelled.")
    else:
        console.print(f"Cancel requested: {run.name} stops at its next checkpoint.")


@jobs_app.command("delete")
@reports_errors
def jobs_delete(ctx: typer.Context, name: JobName,
                yes: Annotated[bool, typer.Option("--yes", help="Really delete it.")] = False) -> None:
    """Delete a job that is not running, with its log and history."""
    if not yes:
        fail(f"this deletes job {name!r} with its log and history for good; pass --yes to do it")
    with ctx.obj.connect() as store:
        store.jobs.delete(name)
    console.print(f"Deleted {name}.")


@jobs_app.command("logs")
@reports_errors
def jobs_logs(
    ctx: typer.Context,
    name: JobName,
    limit: Annotated[int, typer.Option(help="The last this many rows.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new rows until the job ends.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between looks with --follow.")] = 0.5,
) -> None:
    """Print a job's log, oldest first."""
    with ctx.obj.connect() as store, contextlib.suppress(KeyboardInterrupt):
        events = store.jobs.logs(name, limit=limit)
        print_events(None, events)
        last = events[-1].seq if events else 0
        while follow:
            time.sleep(interval)
            ended = store.runs.get(name).status in ENDED
            events = store.jobs.logs(name, since=last, limit=10_000)
            if events:
                print_events(None, events)
                last = events[-1].seq
            elif ended:
                return


@jobs_app.command("watch")
@reports_errors
def jobs_watch(
    ctx: typer.Context,
    name: JobName,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 0.5,
) -> None:
    """A live progress bar of a job, until it ends; exit code 1 if it failed."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                   TimeElapsedColumn(), console=err_console, transient=True)
    with ctx.obj.connect() as store, contextlib.suppress(KeyboardInterrupt):
        run = store.runs.get(name)
        with bar:
            task = bar.add_task(run.name, total=100)
            while run.status not in ENDED:
                bar.update(task, completed=run.progress,
                           description=f"{run.name} · {run.stage or '-'} · {run.message or ''}")
                time.sleep(interval)
                run = store.runs.get(run.id)
        console.print(f"{run.name}: {run.status} at {run.progress:.0f}%"
                      + (f" in stage {run.stage}" if run.stage else "") + (f"\n{run.error}" if run.error else ""))
        if run.status == states.RunStatus.FAILED:
            raise typer.Exit(1)


@runs_app.command("compare")
@reports_errors
def runs_compare(ctx: typer.Context, a: Annotated[str, typer.Argument(help="Run A (name or id), e.g. a baseline.")],
                 b: Annotated[str, typer.Argument(help="Run B, e.g. an eval.")]) -> None:
    """Compare two runs per task and overall: success rate, mean reward, mean turns, and B - A."""
    with ctx.obj.connect() as store:
        comparison = store.compare_runs(a, b)
    print_comparison(comparison)


def print_comparison(comparison: RunComparison) -> None:
    def label(run: Run) -> str:
        return f"{run.name} ({run.kind}" + (f" @ step {run.parent_step}" if run.parent_step is not None else "") + ")"

    def figure(stats: RunStats | None, field: str, percent: bool) -> str:
        value = None if stats is None else getattr(stats, field)
        return "-" if value is None else (f"{value:.0%}" if percent else f"{value:.2f}")

    def change(row, field: str, percent: bool = False) -> tuple[str, str]:
        """"A → B" and B - A, one figure of one row."""
        delta = getattr(row, f"{field}_delta")
        return (f"{figure(row.a, field, percent)} → {figure(row.b, field, percent)}",
                "-" if delta is None else (f"{delta:+.0%}" if percent else f"{delta:+.2f}"))

    print_table(
        f"A = {label(comparison.run_a)}   B = {label(comparison.run_b)}",
        ("task", "n A/B", "success A → B", "Δ", "reward A → B", "Δ", "turns A → B", "Δ"),
        ((row.task, f"{row.a.rollouts if row.a else 0}/{row.b.rollouts if row.b else 0}",
          *change(row, "success_rate", True), *change(row, "reward_mean"), *change(row, "turns_mean"))
         for row in [*comparison.tasks, comparison.overall]),
        keep_whole=("task", "success A → B", "reward A → B", "turns A → B"),
    )


# -- the recorder's journal ---------------------------------------------------------------------------------

JournalDir = Annotated[Path, typer.Option(
    "--dir", help="The journal directory (the recorders' journal_dir).", file_okay=False)]


def journal_age(info: JournalInfo, now: datetime) -> str:
    """How long ago the file's recorder started spilling, e.g. "3m 07s ago"; the header's text if unreadable."""
    try:
        created = datetime.fromisoformat(info.created_at)
    except ValueError:
        return printable(info.created_at)
    return format_age(created if created.tzinfo else created.replace(tzinfo=timezone.utc), now)


@journal_app.command("ls")
@reports_errors
def journal_ls(directory: JournalDir = Path(DEFAULT_JOURNAL_DIRECTORY)) -> None:
    """List the journal files of every database and project, and whether each one's recorder still runs.

    A recorder keeps in a journal file what the database has not taken yet (away, or slower than training).
    This reads only the files: it needs no database.

    Example: rolloutdb journal ls --dir /scratch/run-7/.rolloutdb-journal
    """
    where = printable(str(directory.resolve()))
    journals = list_journals(directory)
    if not journals:
        console.print(f"No journal in {where}.")
        return
    now = datetime.now(timezone.utc)
    print_table(
        f"Journal in {where}", ("run", "project", "records", "size", "created", "recorder", "database"),
        ((printable(info.run), printable(info.project), f"{info.records:,}", format_bytes(info.size),
          journal_age(info, now), "live" if info.live else "gone", printable(info.database)) for info in journals),
        keep_whole=("records", "size", "created", "recorder"),
    )
    gone = sum(not info.live for info in journals)
    console.print(f"{plural(len(journals), 'file')}, {sum(info.records for info in journals):,} records. "
                  + (f"{gone} of gone recorders: `rolloutdb --url URL --project NAME journal replay` writes "
                     "them into the database and project they were recorded for." if gone
                     else "Their recorders are live and write them themselves."), soft_wrap=True)


@journal_app.command("replay")
@reports_errors
def journal_replay(ctx: typer.Context, directory: JournalDir = Path(DEFAULT_JOURNAL_DIRECTORY)) -> None:
    """Replay the journal files of gone recorders into the database and project of --url/--project.

    Oldest first, with a progress bar; each file is removed once replayed. Refused records are listed.
    Files of live recorders (they write them themselves) and of other databases or projects are left alone.

    Example: rolloutdb --url postgresql://db/rl --project team-a journal replay
    """
    where = printable(str(directory.resolve()))
    with ctx.obj.connect() as store:
        total = count_journal_records(store, directory)
        with progress_bar() as progress:
            task = progress.add_task("Replaying the journal", total=total)
            result = replay_journals(store, directory, on_batch=lambda records: progress.advance(task, records))
        target = f"{printable(display_url(store.url))}, project {printable(store.project)}"
        ours = journal_folder(directory, store.url, store.project)
    others = [info for info in list_journals(directory) if info.path.parent != ours]
    if result.files:
        console.print(f"Replayed {plural(result.files, 'journal file')} into {target}: "
                      f"{result.written:,} records written, {len(result.rejected):,} refused.", soft_wrap=True)
    else:
        console.print(f"Nothing to replay into {target} from {where}.", soft_wrap=True)
    if result.rejected:
        console.print("Refused by the database (not written; the file is removed all the same):")
        for reason in result.rejected:
            console.print(f"  {printable(reason)}", soft_wrap=True)
    if result.live:
        console.print(f"Skipped {plural(len(result.live), 'file')} whose recorder still runs (it writes "
                      f"{'them' if len(result.live) > 1 else 'it'} itself):")
        for path in result.live:
            console.print(f"  {printable(str(path))}", soft_wrap=True)
    if others:
        console.print(f"{plural(len(others), 'other file')} in {where} "
                      f"{'are' if len(others) > 1 else 'is'} for other databases or projects, left untouched: "
                      f"replay {'them' if len(others) > 1 else 'it'} with its --url/--project (`rolloutdb journal ls` "
                      "shows which).", soft_wrap=True)


# -- demo -------------------------------------------------------------------------------------------------


@app.command()
@reports_errors
def demo(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(
        help="Run name. Default: demo-<timestamp> (with -2, -3 ... if taken). A finished run's name is refused.",
        show_default=False)] = None,
    steps: Annotated[int, typer.Option(min=1, help="Training steps.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed learns the same way.")] = 0,
) -> None:
    """Train a small agent with GRPO-style groups, recording everything; show the run and eval vs baseline.

    The run, its baseline and its evals are recorded with rolloutdb.Recorder, as in a real training loop.

    Example: rolloutdb --url sqlite:///demo.db demo --steps 100 --seed 3
    """
    with ctx.obj.connect() as store:
        with progress_bar() as progress:
            task = progress.add_task("Training", total=steps)

            def stepped(number: int) -> None:
                progress.advance(task)
                if number + 1 == steps:  # the recorder may show its own bar while it writes the rest
                    progress.stop()

            result = train_demo(store, name, steps=steps, seed=seed,
                                on_start=lambda run: progress.update(task, description=f"Training {run}"),
                                on_step=stepped)
        print_run(store, store.runs.get(result.train))
        console.print()
        print_comparison(store.compare_runs(result.baseline, result.final_eval))
