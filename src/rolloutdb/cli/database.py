"""`rolloutdb init`, `db`, `doctor`, `backup` and `rebuild`: the database as a whole."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from .options import group
from .output import (
    Column,
    console,
    err_console,
    fail,
    format_bytes,
    print_fields,
    print_table,
    printable,
    progress_bar,
    reports_errors,
)

db_app = group("Schema migrations: current revision, upgrade, history.")
commands = typer.Typer()  # top level: init, doctor, backup, rebuild


@commands.command()
@reports_errors
def init(ctx: typer.Context) -> None:
    """Create the database, or migrate it to this release's schema, and say where it is.

    Example: rolloutdb --url sqlite:///runs/rl.db init
    """
    from ..config import display_url
    from ..store.engine import sqlite_file
    from ..store.maintenance import database_schema

    with ctx.obj.connect(create=True, upgrade=True) as store:
        backend, url, project = store.backend, store.url, store.project
    database = sqlite_file(url)
    console.print("RolloutDB database ready", style="green")
    print_fields([("backend", backend), ("path", printable(str(Path(database).resolve())) if database else None),
                  ("url", printable(display_url(url))), ("schema", database_schema(url).current),
                  ("project", printable(project))])


@db_app.command("upgrade")
@reports_errors
def db_upgrade(ctx: typer.Context) -> None:
    """Migrate the database schema to this release's head revision.

    Example: rolloutdb --url postgresql://db/rl db upgrade
    """
    from ..store.maintenance import upgrade_database

    before, after = upgrade_database(ctx.obj.resolved_url)
    if before == after:
        console.print(f"Schema already at {after}: nothing to do.")
    else:
        console.print(f"Schema upgraded: {before or 'empty'} → {after}", style="green")


@db_app.command("current")
@reports_errors
def db_current(ctx: typer.Context) -> None:
    """Show the database's schema revision against this release's; exit 1 unless up to date.

    Example: rolloutdb db current
    """
    from ..config import display_url
    from ..store.maintenance import database_schema

    url = ctx.obj.resolved_url
    state = database_schema(url)
    print_fields([("url", printable(display_url(url))), ("current", state.current or "none"), ("head", state.head),
                  ("status", state.summary)])
    if not state.up_to_date:
        raise typer.Exit(1)


@db_app.command("history")
@reports_errors
def db_history(ctx: typer.Context) -> None:
    """List the migrations this release ships, newest first, marking the database's revision.

    Example: rolloutdb db history
    """
    from ..store.engine import migration_history
    from ..store.maintenance import database_schema

    current = database_schema(ctx.obj.resolved_url).current
    print_table(
        "Migrations", ("revision", "parent", Column("message", text=True), ""),
        ((revision, parent, message, "← current" if revision == current else "")
         for revision, parent, message in migration_history()),
    )


@commands.command()
@reports_errors
def rebuild(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm that every table and all data may be dropped.")] = False,
) -> None:
    """Drop every table (all projects, all data) and recreate the schema at head.

    Example: rolloutdb --url sqlite:///scratch.db rebuild --yes
    """
    from ..config import display_url
    from ..store.maintenance import rebuild_database

    url = ctx.obj.resolved_url
    where = printable(display_url(url))
    if not yes:
        fail(f"rebuild drops every table and all data of every project in {where}. "
             "Run `rolloutdb rebuild --yes` to do it.")
    with progress_bar(total_shown=False) as progress:
        progress.add_task("Rebuilding", total=None)
        revision = rebuild_database(url)
    console.print(f"Dropped every table of {where} and recreated schema {revision}.", style="green")


@commands.command()
@reports_errors
def doctor(
    ctx: typer.Context,
    all_projects: Annotated[bool, typer.Option("--all-projects",
                                               help="Count the rows of every project, not only --project's.")] = False,
    sizes: Annotated[bool, typer.Option("--sizes", help="Also the artifacts' size, the SQLite write-ahead log, and "
                                                        "on PostgreSQL index usage and the slowest statements.")] = False,
) -> None:
    """Check the database: schema revision, tables with row counts and sizes, artifacts' blob files, SQLite
    integrity.

    Rows and artifacts are counted for --project (default: default) unless --all-projects; sizes are the whole
    tables'. A blob file that is gone is a problem (exit 1).

    Example: rolloutdb doctor --sizes --all-projects
    """
    from ..store.maintenance import examine_database

    report = examine_database(ctx.obj.resolved_url, project=None if all_projects else ctx.obj.project_name,
                              sizes=sizes)
    print_fields([
        ("backend", report.backend), ("url", printable(report.url)), ("schema", report.schema.summary),
        ("integrity", report.integrity), ("journal mode", report.journal_mode),
        ("file size", format_bytes(report.file_size) if report.backend == "sqlite" else None),
        ("server", report.server_version),
    ])
    console.print()
    sized = any(table.size is not None for table in report.tables)
    print_table("Tables (all projects)" if report.project is None else
                f"Tables of project {printable(repr(report.project))} (sizes: all projects)",
                ("table", Column("rows", justify="right"), *([Column("size", justify="right")] if sized else [])),
                ((table.name, "missing" if table.rows is None else f"{table.rows:,}",
                  *([format_bytes(table.size)] if sized else [])) for table in report.tables))
    if sizes:
        print_sizes(report)
    for note in report.notes:
        err_console.print(f"Note: {printable(note)}", style="yellow", soft_wrap=True)
    if report.problems:
        for problem in report.problems:
            err_console.print(f"Problem: {printable(problem)}", style="red")
        raise typer.Exit(1)
    console.print("No problems found.", style="green")


def print_sizes(report) -> None:
    """What ``doctor --sizes`` adds to the report."""
    blobs, sizes = report.artifacts, report.sizes
    console.print()
    print_fields([
        ("artifacts stored", None if blobs is None else f"{blobs.count:,} ({format_bytes(blobs.size)} of content)"),
        ("in the database", None if blobs is None else f"{blobs.in_database:,}"),
        ("in blob files", None if blobs is None else f"{blobs.in_files:,} ({format_bytes(blobs.file_bytes)} on disk"
                                                       + (f", {blobs.missing_count:,} missing)" if blobs.missing_count
                                                          else ")")),
        ("write-ahead log", format_bytes(sizes.wal_size) if sizes.wal_size is not None else None),
    ])
    if sizes.indexes:
        console.print()
        print_table("Index usage (least used first)", (
            "table", Column("index", text=True), Column("scans", justify="right"), Column("size", justify="right")),
            ((index.table, index.index, f"{index.scans:,}", format_bytes(index.size)) for index in sizes.indexes))
    if sizes.slow_statements is not None:
        console.print()
        print_table("Slowest statements (mean time)", (
            Column("mean ms", justify="right"), Column("calls", justify="right"), Column("total ms", justify="right"),
            Column("statement", text=True)),
            ((f"{row.mean_ms:,.2f}", f"{row.calls:,}", f"{row.total_ms:,.0f}", row.query)
             for row in sizes.slow_statements))


@commands.command()
@reports_errors
def backup(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="File to write the copy to.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite PATH if it exists.")] = False,
) -> None:
    """Copy a SQLite database while it is in use (for PostgreSQL, print the pg_dump command).

    Example: rolloutdb backup backups/rl-$(date +%F).db
    """
    from ..config import display_url
    from ..store.maintenance import backend_of, backup_sqlite_database, pg_dump_command

    url = ctx.obj.resolved_url
    if backend_of(url) == "postgresql":
        command = pg_dump_command(url, path)
        console.print("PostgreSQL is backed up with its own tools. Run:")
        console.print(f"  {printable(command.dump)}", soft_wrap=True)
        if command.password_masked:
            console.print("with the real password in place of ***, or leave it out and set PGPASSWORD.")
        console.print(f"Restore with: {printable(command.restore)}", soft_wrap=True)
        return
    if path.exists() and not force:
        fail(f"{path} already exists; pass --force to overwrite it")
    started = time.monotonic()
    with progress_bar() as progress:
        task = progress.add_task("Backing up", total=None)
        size = backup_sqlite_database(
            url, path, on_progress=lambda done, total: progress.update(task, completed=done, total=total))
    console.print(printable(f"Backed up {display_url(url)} to {path} ({format_bytes(size)}) "
                            f"in {time.monotonic() - started:.1f}s."), style="green")
