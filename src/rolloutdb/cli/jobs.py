"""`rolloutdb jobs`: long jobs (every run is one): list, show, watch, pause, resume, cancel, logs, delete."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .. import states
from .options import Json, Wide, group, values
from .output import (
    Column,
    answered_without_table,
    console,
    err_console,
    fail,
    fit_columns,
    table_width,
    format_age,
    format_time,
    format_value,
    print_fields,
    print_json,
    print_table,
    printable,
    relative_time,
    reports_errors,
)

if TYPE_CHECKING:
    from ..records import Event, Run, RunEvent
    from ..store import Store
    from ..store.jobs import Jobs, JobStatus

jobs_app = group("Long jobs (every run is one): watch, pause, resume, cancel, logs.")

JobName = Annotated[str, typer.Argument(help="Job name or id.")]
Reason = Annotated[str | None, typer.Option(help="Why, for the job's log.")]
SHOWN_LOG_ROWS = 10
# A paused job may be resumed: only these end a job for good.
ENDED = (states.RunStatus.COMPLETED, states.RunStatus.FAILED, states.RunStatus.CANCELLED)
LEVEL_WIDTH = len("warning")


def job_status_label(job: JobStatus) -> str:
    """The status, with what is pending: "running (stale)", "running, pause requested"."""
    label = job.run.status + (" (stale)" if job.stale else "")
    return label + (f", {job.run.control} requested" if job.run.control else "")


def stage_label(run: Run) -> str | None:
    """The current stage with its share of the plan, e.g. "ddl (10-40%)"."""
    plan = {stage["name"]: stage for stage in run.stages}
    stage = plan.get(run.stage or "")
    return f"{run.stage} ({stage['start']:g}-{stage['end']:g}%)" if stage else run.stage


def where_it_stands(run: Run) -> str:
    """ "step 12 of 20" for a training run that knows its length, else the progress: "37%"."""
    if run.total_steps:
        return f"step {round(run.progress * run.total_steps / 100)} of {run.total_steps}"
    return f"{run.progress:.0f}%"


@jobs_app.command("ls")
@reports_errors
def jobs_ls(
    ctx: typer.Context,
    status: Annotated[list[states.RunStatus] | None, typer.Option(help="Only jobs in this status (repeatable).")]
    = None,
    kind: Annotated[states.RunKind | None, typer.Option(help="Only runs of this kind.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many jobs.")] = 20,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """List jobs (every run is one) with their stage, progress and heartbeat.

    Example: rolloutdb jobs ls --status running --status paused
    """
    filters: dict[str, Any] = {key: value for key, value in (("status", values(status)), ("kind", kind)) if value}
    with ctx.obj.connect() as store:
        jobs = [store.jobs.get(run.id) for run in store.jobs.query(limit=limit, **filters)]
        now = store.now()
    if answered_without_table(jobs, json=json, noun="jobs", where=f"project {store.project!r}",
                              filtered=bool(filters)):
        return
    print_table(
        None, (Column("name"), Column("kind", drop=3), Column("status"), Column("stage", drop=4),
               Column("progress", justify="right"), Column("message", text=True, drop=5),
               Column("heartbeat", drop=1), Column("started", drop=2)),
        ((job.run.name, job.run.kind, job_status_label(job), job.run.stage, where_it_stands(job.run),
          job.run.message, format_age(job.run.heartbeat_at, now),
          format_time(job.run.started_at, precision="minutes") if wide else relative_time(job.run.started_at, now))
         for job in jobs),
        wide=wide,
    )


@jobs_app.command("show")
@reports_errors
def jobs_show(ctx: typer.Context, name: JobName, json: Json = False) -> None:
    """Show a job: status, stage, progress, saved state and its latest log rows.

    Example: rolloutdb jobs show build-index
    """
    with ctx.obj.connect() as store:
        job = store.jobs.get(name)
        events = store.jobs.logs(job.run.id, limit=SHOWN_LOG_ROWS)
        now = store.now()
    if json:
        print_json([job])
        return
    run = job.run
    print_fields([
        ("job", run.name), ("id", run.id), ("kind", run.kind), ("status", job_status_label(job)),
        ("stage", stage_label(run)), ("progress", f"{run.progress:.1f}%"
                                      + (f" ({where_it_stands(run)})" if run.total_steps else "")),
        ("message", run.message), ("error", run.error), ("concurrency key", run.concurrency_key),
        ("saved state", run.state), ("heartbeat", format_age(run.heartbeat_at, now)),
        ("created", format_time(run.created_at)), ("started", format_time(run.started_at)),
        ("ended", format_time(run.ended_at)),
    ])
    console.print()
    print_events(f"Log (last {len(events)})", run, events)


def event_columns(run: Run) -> tuple[Column, ...]:
    stages = max((len(stage["name"]) for stage in run.stages), default=0)
    return (Column("time"), Column("level", min_width=LEVEL_WIDTH, drop=2), Column("stage", min_width=stages, drop=1),
            Column("progress", justify="right", min_width=len("100.0%")), Column("message", text=True))


def event_row(event: RunEvent) -> tuple[Any, ...]:
    return (format_time(event.time, precision="milliseconds"), event.level, event.stage,
            None if event.progress is None else f"{event.progress:.1f}%", event.message)


def print_events(title: str | None, run: Run, events: list[RunEvent]) -> None:
    print_table(title, event_columns(run), (event_row(event) for event in events))


def ask(ctx: typer.Context, request: Callable[[Jobs], Run]) -> Run:
    """Make a pause, resume or cancel request of the project's jobs; returns the run as it is now."""
    with ctx.obj.connect() as store:
        return request(store.jobs)


def say_which(done: bool, *, at_once: str, requested: str) -> None:
    """What came of a pause or cancel request: done at once (the job was not running), or asked for."""
    console.print(printable(at_once if done else requested))


@jobs_app.command("pause")
@reports_errors
def jobs_pause(ctx: typer.Context, name: JobName, reason: Reason = None) -> None:
    """Ask a running job to pause at its next checkpoint (its state is saved; run it again to resume).

    Example: rolloutdb jobs pause build-index --reason "freeing the GPU"
    """
    run = ask(ctx, lambda jobs: jobs.request_pause(name, reason))
    say_which(run.status == states.RunStatus.PAUSED,
              at_once=f"{run.name} paused at once: its process had stopped sending heartbeats.",
              requested=f"Pause requested: {run.name} stops at its next checkpoint, saving its state.")


@jobs_app.command("resume")
@reports_errors
def jobs_resume(ctx: typer.Context, name: JobName, reason: Reason = None) -> None:
    """Mark a paused job for resuming; its code, started again, continues from the saved stage and state.

    Example: rolloutdb jobs resume build-index
    """
    run = ask(ctx, lambda jobs: jobs.request_resume(name, reason))
    where = f" from stage {run.stage}" if run.stage else ""
    console.print(printable(f"Resume requested: run {run.name}'s code again; it continues{where} at "
                            f"{run.progress:.0f}%."))


@jobs_app.command("cancel")
@reports_errors
def jobs_cancel(ctx: typer.Context, name: JobName, reason: Reason = None) -> None:
    """Cancel a job: a running one at its next checkpoint, a pending or paused one at once.

    Example: rolloutdb jobs cancel build-index --reason "wrong dataset"
    """
    run = ask(ctx, lambda jobs: jobs.request_cancel(name, reason))
    say_which(run.status == states.RunStatus.CANCELLED, at_once=f"{run.name} cancelled.",
              requested=f"Cancel requested: {run.name} stops at its next checkpoint.")


@jobs_app.command("delete")
@reports_errors
def jobs_delete(ctx: typer.Context, name: JobName,
                yes: Annotated[bool, typer.Option("--yes", help="Really delete it.")] = False) -> None:
    """Delete a job that is not running, with its log and history.

    Example: rolloutdb jobs delete old-index --yes
    """
    if not yes:
        fail(f"this deletes job {name!r} with its log and history for good; pass --yes to do it")
    with ctx.obj.connect() as store:
        store.jobs.delete(name)
    console.print(printable(f"Deleted {name}."))


def until_it_ends(store: Store, run: Run, topics: tuple[str, ...], after: int) -> Iterator[Event]:
    """The run's events of ``topics`` and its status changes after the event id ``after``, as they are written
    (by any process; through a server too), until the change that ends it, which is the last one given."""
    for event in store.events.follow(after, topics=[*topics, "run"], run=run.id):
        yield event
        if event.topic == "run" and event.data["new_status"] in ENDED:
            return


def progress_bar() -> Progress:
    """The live progress bar of a run followed (on stderr: the output stays clean for pipes)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                    TimeElapsedColumn(), console=err_console, transient=True)


# Kept for scripts written when --follow and watch looked every --interval seconds: events now come at once.
Interval = Annotated[float, typer.Option(min=0.05, hidden=True, help="Ignored: changes are shown as they are written.")]


@jobs_app.command("logs")
@reports_errors
def jobs_logs(
    ctx: typer.Context,
    name: JobName,
    limit: Annotated[int, typer.Option(help="The last this many rows.")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new rows until the job ends.")] = False,
    interval: Interval = 0.5,
    json: Json = False,
) -> None:
    """Print a job's log, oldest first; with --follow, new rows as they are written, under the same header, until
    the job ends (through a server too: `--url http://...`).

    Example: rolloutdb jobs logs build-index --follow
    """
    with ctx.obj.connect() as store, contextlib.suppress(KeyboardInterrupt):
        after = store.events.latest_id() if follow else 0  # before the log is read: nothing falls in between
        run = store.runs.find(name)
        events = store.jobs.logs(run.id, limit=limit)
        if json:
            print_json(events)
        else:
            columns = event_columns(run)
            rows = [event_row(event) for event in events]
            widths = fit_columns(columns, [[format_value(cell) for cell in row] for row in rows], console.width)
            if follow:  # the message takes what is left of the line: rows to come may say more
                widths[-1] = (widths[-1] or 0) + console.width - table_width(widths)
            print_table(None, columns, rows, widths=widths)
        if not follow or store.runs.get(run.id).status in ENDED:
            return
        from ..records import RunEvent  # here: the CLI loads the records when a command needs them

        printed = {(event.time, event.message) for event in events}  # rows written after ``after`` may be among them
        for event in until_it_ends(store, run, ("log",), after):
            if event.topic != "log":
                continue
            row = RunEvent(run_id=run.id, **event.data, time=event.time)
            if (row.time, row.message) in printed:
                continue
            if json:
                print_json([row])
            else:
                print_table(None, columns, [event_row(row)], show_header=False, widths=widths)


@jobs_app.command("watch")
@reports_errors
def jobs_watch(
    ctx: typer.Context,
    name: JobName,
    interval: Interval = 0.5,
) -> None:
    """A live progress bar of a job (step N of M for a training run) until it completes, fails or is cancelled;
    a paused job is watched until it resumes and ends, or Ctrl-C. Exit code 1 if it failed. It moves as the job
    writes (through a server too: `--url http://...`).

    Example: rolloutdb jobs watch grpo-arith
    """
    bar = progress_bar()
    with ctx.obj.connect() as store:
        after = store.events.latest_id()  # before the run is read: no change falls in between
        run = store.runs.find(name)
        with contextlib.suppress(KeyboardInterrupt), bar:
            task = bar.add_task(printable(run.name), total=100)
            said_paused = False
            changes = until_it_ends(store, run, ("job", "step"), after)
            while run.status not in ENDED:
                paused = run.status == states.RunStatus.PAUSED
                if paused and not said_paused:
                    bar.console.print(printable(f"{run.name} is paused at {where_it_stands(run)}: watching until "
                                                "it resumes and ends (Ctrl-C stops watching)."), soft_wrap=True)
                said_paused = paused
                bar.update(task, completed=run.progress, description=printable(
                    f"{run.name} · {run.status} · {where_it_stands(run)} · {run.stage or '-'} · {run.message or ''}"))
                if next(changes, None) is None:
                    break
                run = store.runs.get(run.id)
            run = store.runs.get(run.id)
    console.print(printable(f"{run.name}: {run.status} at {run.progress:.0f}%"
                            + (f" ({where_it_stands(run)})" if run.total_steps else "")
                            + (f" in stage {run.stage}" if run.stage else "")))
    for line in (run.error or "").splitlines():
        console.print(printable(line))
    if run.status == states.RunStatus.FAILED:
        raise typer.Exit(1)
