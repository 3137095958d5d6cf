"""`rolloutdb scripts` (recorded scripts: list, show, activate, export) and `rolloutdb stats` (the summary of
rollouts per task or per day)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import Json, Wide, group
from .output import (Column, answered_without_table, console, escaped_json, fail, format_json, format_time, parse_duration,
                     print_fields, print_json, print_table, printable, reports_errors, short_ids)

scripts_app = group("Scripts recorded from successful rollouts, to replay on their task: list them, show one, "
                    "choose the active version, export one as JSON.")
commands = typer.Typer()  # top level: stats


def percent(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.1f}%"


def seconds_text(value: float | None) -> str | None:
    return None if value is None else f"{value:.2f}s"


@scripts_app.command("ls")
@reports_errors
def scripts_ls(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option(help="Only this task's scripts: its external id or id.")] = None,
    name: Annotated[str | None, typer.Option(help="Only the versions of this script name.")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", show_default=False,
                                                help="Only the active versions, or only the others.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many scripts.")] = 100,
    offset: Annotated[int, typer.Option(help="Skip this many first.")] = 0,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """List scripts, newest first: name, version, active, steps, replays, success rate, mean time.

    Example: rolloutdb scripts ls --task settings-wifi-on --active
    """
    with ctx.obj.connect() as store:
        scripts = store.scripts.list(task, name=name, active=active, limit=limit, offset=offset)
    if answered_without_table(scripts, json=json, noun="scripts", where=f"project {store.project!r}",
                              filtered=(task, name, active) != (None, None, None)):
        return
    tasks = short_ids(script.task_id for script in scripts)
    print_table(
        None, (Column("id"), Column("name", text=True), Column("version", justify="right"), Column("active"),
               Column("task", drop=2), Column("steps", justify="right"), Column("replays", justify="right"),
               Column("success", justify="right"), Column("mean time", justify="right", drop=1),
               Column("created", drop=3)),
        ((script.id, script.name, script.version, script.active,
          script.task_id if wide else tasks.get(script.task_id), script.total_steps, script.replay_count,
          percent(script.success_rate), seconds_text(script.mean_execution_seconds), format_time(script.created_at))
         for script in scripts),
        wide=wide,
    )


@scripts_app.command("show")
@reports_errors
def scripts_show(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The script's id, or a unique start of it.")],
    json: Json = False,
) -> None:
    """Show one script: its fields, replay figures and its actions in order.

    Example: rolloutdb scripts show 01a242c1-809c
    """
    with ctx.obj.connect() as store:
        script = store.scripts.find(id)
    if json:
        print_json([script])
        return
    print_fields([
        ("script", script.id), ("name", script.name), ("version", script.version), ("active", script.active),
        ("task", script.task_id), ("description", script.description), ("device", script.device),
        ("model", script.model), ("source rollout", script.source_rollout_id), ("checksum", script.checksum),
        ("steps", script.total_steps), ("replays", script.replay_count),
        ("success rate", percent(script.success_rate)), ("mean time", seconds_text(script.mean_execution_seconds)),
        ("created", format_time(script.created_at)), ("updated", format_time(script.updated_at)),
    ])
    console.print()
    print_table("Actions", (Column("#", justify="right"), Column("action", text=True)),
                ((number, format_json(action)) for number, action in enumerate(script.actions, 1)))


@scripts_app.command("activate")
@reports_errors
def scripts_activate(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The version to make active: its id, or a unique start of it.")],
    json: Json = False,
) -> None:
    """Make this version the active one of its task and name (the active one before is not any more).

    Example: rolloutdb scripts activate 01a242c1-809c
    """
    with ctx.obj.connect() as store:
        script = store.scripts.activate(store.scripts.find(id).id)
    if json:
        print_json([script])
        return
    console.print(printable(f"Script {script.name!r} version {script.version} ({script.id}) is the active one."),
                  soft_wrap=True)


@scripts_app.command("export")
@reports_errors
def scripts_export(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="The script's id, or a unique start of it.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write it to this file, not stdout.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
) -> None:
    """Export one script as JSON (the record as the Python API returns it), to stdout or a file.

    Example: rolloutdb scripts export 01a242c1-809c -o wifi-on.json
    """
    if output is not None and output.exists() and not force:
        fail(f"{output} already exists; pass --force to overwrite it")
    with ctx.obj.connect() as store:
        script = store.scripts.find(id)
    text = script.model_dump_json(indent=2)
    if output is None:
        typer.echo(escaped_json(text))
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    console.print(printable(f"Exported script {script.name!r} version {script.version} to {output}."),
                  soft_wrap=True)


@commands.command()
@reports_errors
def stats(
    ctx: typer.Context,
    by: Annotated[str, typer.Option(help="task or day (UTC, by when the rollouts were created).")] = "task",
    run: Annotated[str | None, typer.Option(help="Only this run's rollouts: its name or id.")] = None,
    since: Annotated[str | None, typer.Option(help="Only rollouts created this long ago or later: 12h, 7d, ...",
                                              show_default=False)] = None,
    json: Json = False,
) -> None:
    """Summarise the rollouts per task or per day: rollouts, finished, success rate, mean turns and duration,
    the rollouts' errors and their turns' errors by type (an error's text up to its first colon).

    Example: rolloutdb stats --by day --since 7d
    """
    age = parse_duration(since) if since is not None else None
    with ctx.obj.connect() as store:
        rows = store.summary(by=by, run=run, since=None if age is None else store.now() - age)
    if answered_without_table(rows, json=json, noun="rollouts", where=f"project {store.project!r}",
                              filtered=(run, since) != (None, None)):
        return
    print_table(
        None, (Column(by, text=True), Column("rollouts", justify="right"), Column("finished", justify="right"),
               Column("success", justify="right"), Column("turns", justify="right"),
               Column("duration", justify="right"), Column("errors", text=True, drop=1),
               Column("turn errors", text=True, drop=2)),
        ((row.key, row.rollouts, row.finished, percent(row.success_rate),
          None if row.turns_mean is None else f"{row.turns_mean:.1f}", seconds_text(row.duration_mean_seconds),
          counts_text(row.errors), counts_text(row.turn_errors))
         for row in rows),
    )


def counts_text(counts: dict[str, int]) -> str | None:
    """Errors by type as a table shows them: "TimeoutError 2, no element 'Send' 1"."""
    return ", ".join(f"{kind} {count}" for kind, count in counts.items()) or None
