"""`rolloutdb rollouts`, `queue`, `purge` and `gc`: rollouts with their trajectories, the queue and its workers,
and retention."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import states
from .options import Json, Wide, group, values
from .output import (
    Column,
    answered_without_table,
    console,
    fail,
    format_age,
    format_bytes,
    format_duration,
    format_json,
    format_time,
    parse_duration,
    plural,
    print_fields,
    print_json,
    print_shown,
    print_table,
    progress_bar,
    relative_time,
    reports_errors,
    short_ids,
)
from .runs import format_counts, names_of, print_history, run_and_step

if TYPE_CHECKING:
    from ..records import Rollout, Run, Task

rollouts_app = group("Rollouts: list them, or show one with its trajectory, attempts, spans and history.")
commands = typer.Typer()  # top level: queue, purge

SHOWN_TURNS = 20
SHOWN_SPANS = 10


@rollouts_app.command("ls")
@reports_errors
def rollouts_ls(
    ctx: typer.Context,
    status: Annotated[list[states.RolloutStatus] | None,
                      typer.Option(help="Only rollouts in this status (repeatable).")] = None,
    run: Annotated[str | None, typer.Option(help="Only rollouts of this run (name or id).")] = None,
    step: Annotated[int | None, typer.Option(help="Only rollouts of this step.")] = None,
    group: Annotated[str | None, typer.Option(help="Only rollouts of this group (id, or a unique start of it).")]
    = None,
    mode: Annotated[states.RolloutMode | None, typer.Option(help="Only rollouts of this mode.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rollouts.")] = 20,
    sort: Annotated[str, typer.Option(help="Field to sort by: created_at, started_at, ended_at, reward, step, "
                                           "status, ...")] = "created_at",
    descending: Annotated[bool, typer.Option("--desc/--asc", help="Sort order (newest first by default).")] = True,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """List rollouts, with short ids that every command taking a rollout id accepts.

    Example: rolloutdb rollouts ls --run grpo-arith --step 3 --status failed
    """
    filters: dict[str, Any] = {key: value for key, value in (("status", values(status)), ("step", step),
                                                              ("mode", mode)) if value is not None}
    with ctx.obj.connect() as store:
        if run:
            filters["run_id"] = store.runs.find(run).id
        if group:
            filters["group_id"] = store.groups.find(group).id
        rollouts = store.rollouts.query(sort=sort, order="desc" if descending else "asc", limit=limit, **filters)
        total = store.rollouts.count(**filters)
        run_names = names_of(store.runs, (rollout.run_id for rollout in rollouts), "name")
        now = store.now()
    if answered_without_table(rollouts, json=json, noun="rollouts", where=f"project {store.project!r}",
                              filtered=bool(filters)):
        return
    ids = short_ids(rollout.id for rollout in rollouts)
    print_table(
        None, (Column("id"), Column("status"), Column("mode", drop=4), Column("tries", justify="right", drop=5),
               Column("reward", justify="right"), Column("run/step", drop=1), Column("created", drop=3),
               Column("duration", drop=2)),
        ((rollout.id if wide else ids[rollout.id], rollout.status, rollout.mode, rollout.attempt_count,
          rollout.reward, run_and_step(run_names.get(rollout.run_id), rollout.step),
          # --wide: the time of day only when it is today
          format_time(rollout.created_at, day_of=now) if wide else relative_time(rollout.created_at, now),
          format_duration(rollout.started_at, rollout.ended_at)) for rollout in rollouts),
        wide=wide,
    )
    print_shown(len(rollouts), total, "rollouts")


@rollouts_app.command("show")
@reports_errors
def rollouts_show(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="Rollout id, or a unique start of it (as `rollouts ls` shows it).")],
    json: Json = False,
    wide: Wide = False,
) -> None:
    """Show one rollout: its fields and task, its trajectory (turns with observation, action and reward), its
    attempts, the spans of its latest attempt with their attributes, and its status history.

    Example: rolloutdb rollouts show 0190a1b2
    """
    with ctx.obj.connect() as store:
        rollout = store.rollouts.find(id)
        if json:
            print_json([rollout])
            return
        run = store.runs.get(rollout.run_id) if rollout.run_id else None
        task = store.tasks.get(rollout.task_id) if rollout.task_id else None
        attempts = store.attempts.query(rollout_id=rollout.id, limit=None)
        latest = attempts[-1] if attempts else None
        turn_count = store.turns.count(rollout_id=rollout.id)
        turns = store.turns.query(rollout_id=rollout.id, limit=SHOWN_TURNS)
        span_count = store.spans.count(rollout_id=rollout.id, attempt_id=latest.id) if latest else 0
        spans = store.spans.query(rollout.id, latest.id, limit=SHOWN_SPANS) if latest else []
        changes = store.history("rollout", rollout.id)
    print_rollout_fields(rollout, run, task)
    console.print()
    if not turns:
        console.print("No turns.")
    else:
        shown = "" if turn_count <= len(turns) else f" (first {len(turns)} of {turn_count})"
        print_table(
            f"Trajectory{shown}",
            (Column("turn", justify="right"), Column("kind", drop=3), Column("observation", text=True),
             Column("action", text=True), Column("reward", justify="right"), Column("done", drop=2),
             Column("error", text=True, drop=1)),
            ((turn.turn_index, turn.kind, format_json(turn.observation), format_json(turn.action), turn.reward,
              turn.done, turn.error) for turn in turns),
            wide=wide,
        )
    console.print()
    if latest is None:
        console.print("No attempts.")
    else:
        print_table(
            "Attempts", (Column("attempt", justify="right"), Column("status"), Column("worker", drop=1),
                         Column("started", drop=2), Column("ended", drop=3), Column("last heartbeat", drop=4)),
            # times show only the time of day when it falls on the day the rollout was created
            ((attempt.sequence, attempt.status, attempt.worker_id,
              format_time(attempt.started_at, day_of=rollout.created_at),
              format_time(attempt.ended_at, day_of=rollout.created_at),
              format_time(attempt.last_heartbeat_at, day_of=rollout.created_at)) for attempt in attempts),
            wide=wide,
        )
        console.print()
        if not span_count:
            console.print(f"No spans from attempt {latest.sequence}.")
        else:
            shown = "" if span_count <= len(spans) else f" (first {len(spans)} of {span_count})"
            print_table(
                f"Spans of attempt {latest.sequence}{shown}",
                (Column("seq", justify="right"), Column("name"), Column("attributes", text=True, drop=1),
                 Column("trace id", drop=4), Column("span id", drop=3), Column("parent id", drop=2)),
                ((span.sequence_id, span.name, span.attributes or None, span.trace_id, span.span_id, span.parent_id)
                 for span in spans),
                wide=wide,
            )
    console.print()
    print_history("History", changes)


def print_rollout_fields(rollout: Rollout, run: Run | None, task: Task | None) -> None:
    print_fields([
        ("rollout", rollout.id), ("status", rollout.status), ("mode", rollout.mode),
        ("run", f"{run.name} ({run.id})" if run else None), ("step", rollout.step), ("group", rollout.group_id),
        ("task", (task.external_id + (f": {task.instruction}" if task.instruction else "")) if task else None),
        ("resources", rollout.resources_id), ("script", rollout.script_id), ("attempts", rollout.attempt_count),
        ("reward", rollout.reward), ("success", rollout.success), ("error", rollout.error),
        ("input", None if rollout.input is None else format_json(rollout.input)),
        ("metrics", rollout.metrics or None), ("validation", rollout.validation),
        ("metadata", rollout.metadata or None),
        ("config", rollout.config.model_dump(exclude_none=True)), ("created", format_time(rollout.created_at)),
        ("queued", format_time(rollout.queued_at) if rollout.queued_at else None),
        ("started", format_time(rollout.started_at)), ("ended", format_time(rollout.ended_at)),
        ("duration", format_duration(rollout.started_at, rollout.ended_at)),
    ])


# -- the queue ------------------------------------------------------------------------------------------------


@commands.command()
@reports_errors
def queue(ctx: typer.Context, json: Json = False, wide: Wide = False) -> None:
    """Show the queue at a glance: rollouts by status, the longest wait, attempts, workers and their heartbeats.

    A worker was last heard of at its own heartbeat or at a span from one of its attempts, whichever is later.

    Runs the health check first: attempts past their timeout or silent too long show as timeout / unresponsive.

    Example: rolloutdb --url postgresql://db/rl queue
    """
    with ctx.obj.connect() as store:
        marked = store.check_health()
        summary = store.queue_summary()
        now = store.now()
    if json:
        print_json([summary])
        return
    print_table("Rollouts by status", ("status", Column("rollouts", justify="right")),
                summary.rollouts_by_status.items())
    console.print()
    oldest = summary.oldest_queued_at
    print_fields([
        ("waiting", f"{summary.waiting} (queuing or requeuing)"),
        ("oldest queued", f"{format_time(oldest)} ({format_age(oldest, now)})" if oldest else None),
        ("attempts", f"{format_counts(summary.attempts_by_status)} (of unfinished rollouts)"),
        ("health check", f"marked {plural(marked, 'stale attempt')} timeout or unresponsive"
                         if marked else "no stale attempts"),
    ])
    console.print()
    if not summary.workers:
        console.print(f"No workers in project {store.project!r}.")
        return
    current = short_ids(activity.worker.current_rollout_id for activity in summary.workers)
    print_table(
        "Workers", (Column("id"), Column("status"), Column("current rollout", drop=2), Column("last heard"),
                    Column("last dequeue", drop=1)),
        ((activity.worker.id, activity.worker.status,
          activity.worker.current_rollout_id if wide else current.get(activity.worker.current_rollout_id),
          format_age(activity.last_seen_at, now), format_age(activity.worker.last_dequeue_at, now))
         for activity in summary.workers),
        wide=wide,
    )


# -- retention ------------------------------------------------------------------------------------------------


@commands.command()
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
    vacuum: Annotated[bool, typer.Option(
        "--vacuum", help="Then give the space back (SQLite rewrites the file; PostgreSQL runs VACUUM). Affects "
                         "the whole database, every project.")] = False,
) -> None:
    """Delete finished rollouts with their attempts, spans, turns and history; unfinished ones are kept.

    Needs --older-than, --keep-last or both, and --yes to delete: without it, only says what would go.
    Says how much space the deletion freed.

    Example: rolloutdb purge --older-than 7d --yes --vacuum
    """
    from ..store import maintenance

    age = parse_duration(older_than) if older_than is not None else None
    url = ctx.obj.resolved_url
    with ctx.obj.connect() as store:
        if not yes or dry_run:
            counted = store.purge(older_than=age, keep_last=keep_last, dry_run=True)
            print_table("Would delete", ("table", Column("rows", justify="right")), asdict(counted).items())
            if not dry_run:
                fail(f"purge would delete {plural(counted.rollouts, 'finished rollout')} with "
                     f"{plural(counted.attempts, 'attempt')}, {plural(counted.spans, 'span')} and "
                     f"{plural(counted.turns, 'turn')}; nothing was deleted. Pass --yes to delete them, or "
                     "--dry-run to only count.")
            return
        before = maintenance.database_space(url)
        with progress_bar() as progress:
            task = progress.add_task("Purging", total=None)
            deleted = store.purge(older_than=age, keep_last=keep_last,
                                  on_progress=lambda done, total: progress.update(task, completed=done, total=total))
    after = maintenance.database_space(url)
    print_table("Deleted", ("table", Column("rows", justify="right")), asdict(deleted).items())
    if after.free is not None:
        console.print(f"Freed {format_bytes(max(after.free - before.free, 0))} inside the database file, which "
                      f"the database reuses; the file stays {format_bytes(after.size)}"
                      + ("." if vacuum else " (--vacuum shrinks it)."))
    else:
        console.print("PostgreSQL reuses the space of deleted rows once (auto)vacuum has run"
                      + ("." if vacuum else " (--vacuum runs VACUUM now)."))
    if vacuum:
        with progress_bar(total_shown=False) as progress:
            progress.add_task("Vacuuming", total=None)
            maintenance.vacuum_database(url)
        vacuumed = maintenance.database_space(url)
        console.print(f"Vacuumed: the database went from {format_bytes(after.size)} to "
                      f"{format_bytes(vacuumed.size)}.")


@commands.command()
@reports_errors
def gc(
    ctx: typer.Context,
    grace: Annotated[str, typer.Option(
        help="Keep unlinked artifacts put or linked more recently than this (a writer links what it put within it): "
             "30s, 15m, 1h, ...")] = "1h",
) -> None:
    """Delete the artifacts (rows and content) no turn, step or rollout links, and the links whose owner is gone
    (through a server: as an admin).

    Example: rolloutdb gc --grace 1d
    """
    period = parse_duration(grace)
    with ctx.obj.connect() as store:
        result = store.artifacts.gc(grace=period)
    console.print(f"Deleted {plural(result.artifacts, 'artifact')} ({format_bytes(result.bytes)}) and "
                  f"{plural(result.links, 'link')} from turns, steps or rollouts that are gone.")
