"""`rolloutdb runs`, `steps`, `groups`, `tasks` and `history`: runs and what they are made of."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import states
from .jobs import ENDED, progress_bar, until_it_ends
from .options import EntityType, Json, Wide, group, values
from .output import (
    Column,
    answered_without_table,
    console,
    format_duration,
    format_time,
    format_value,
    print_fields,
    print_json,
    print_shown,
    print_table,
    printable,
    relative_time,
    reports_errors,
    short_ids,
)

if TYPE_CHECKING:
    from ..records import Run, RunComparison, RunStats, StatusChange
    from ..store import Store

runs_app = group("Training, eval, baseline and job runs: list them, show one, compare two.")
steps_app = group("Steps of a training run, with their metrics.")
groups_app = group("Groups: several rollouts of one task (GRPO-style), with their statistics.")
tasks_app = group("The task catalogue: tasks saved when a dataset is loaded.")
commands = typer.Typer()  # top level: history

SHOWN_STEPS = 20
RunName = Annotated[str, typer.Argument(help="Run name or id (a unique start of the id will do).")]


@runs_app.command("ls")
@reports_errors
def runs_ls(
    ctx: typer.Context,
    status: Annotated[list[states.RunStatus] | None, typer.Option(help="Only runs in this status (repeatable).")]
    = None,
    kind: Annotated[states.RunKind | None, typer.Option(help="Only runs of this kind.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 20,
    sort: Annotated[str, typer.Option(help="Field to sort by: created_at, name, status, progress, ...")] = "created_at",
    descending: Annotated[bool, typer.Option("--desc/--asc", help="Sort order (newest first by default).")] = True,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """List runs.

    Example: rolloutdb runs ls --status running --kind train
    """
    filters: dict[str, Any] = {key: value for key, value in (("status", values(status)), ("kind", kind)) if value}
    with ctx.obj.connect() as store:
        runs = store.runs.query(sort=sort, order="desc" if descending else "asc", limit=limit, **filters)
        total = store.runs.count(**filters)
        now = store.now()
    if answered_without_table(runs, json=json, noun="runs", where=f"project {store.project!r}",
                              filtered=bool(filters)):
        return
    ids = short_ids(run.id for run in runs)
    print_table(
        None, (Column("name"), Column("kind"), Column("status"), Column("progress", justify="right"),
               Column("stage", drop=3, text=True), Column("created", drop=2), Column("duration", drop=1),
               Column("id", drop=4)),
        ((run.name, run.kind, run.status, f"{run.progress:.0f}%", run.stage,
          format_time(run.created_at, precision="minutes") if wide else relative_time(run.created_at, now),
          format_duration(run.started_at, run.ended_at or (now if run.started_at else None)),
          run.id if wide else ids[run.id]) for run in runs),
        wide=wide,
    )
    print_shown(len(runs), total, "runs")


@runs_app.command("show")
@reports_errors
def runs_show(
    ctx: typer.Context,
    name: RunName,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Then print steps as they end and status changes "
                                                                "as they happen, until the run ends.")] = False,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """Show one run: its fields, its last steps and its groups and rollouts by status; with --follow, then its
    steps and status changes as they are written (through a server too: `--url http://...`).

    Example: rolloutdb runs show grpo-arith --follow
    """
    with ctx.obj.connect() as store:
        after = store.events.latest_id() if follow else 0  # before the run is read: nothing falls in between
        run = store.runs.find(name)
        if json:
            print_json([run])
        else:
            print_run(store, run, wide=wide)
        if follow and run.status not in ENDED:
            follow_run(store, run, after, json=json)


def follow_run(store: Store, run: Run, after: int, *, json: bool) -> None:
    """Print the run's steps as they end and its status changes (JSON: the events), with a progress bar, until
    the run ends or Ctrl-C."""
    bar = progress_bar()
    if not json:
        console.print()
    with contextlib.suppress(KeyboardInterrupt), bar:
        task = bar.add_task(printable(run.name), total=100, completed=run.progress)
        for event in until_it_ends(store, run, ("step",), after):
            if json:
                print_json([event])
            elif event.topic == "run":
                console.print(printable(f"{format_time(event.time, precision='milliseconds')}  run {run.name}: "
                                        f"{event.data['old_status']} → {event.data['new_status']}"
                                        + (f" ({event.data['reason']})" if event.data["reason"] else "")))
            elif event.data["new_status"] in states.TERMINAL["step"]:
                step = store.steps.get(event.entity_id)
                metrics = ", ".join(f"{key} {format_value(value)}" for key, value in sorted(step.metrics.items()))
                console.print(printable(f"{format_time(event.time, precision='milliseconds')}  step {step.number} "
                                        f"{step.status}" + (f": {metrics}" if metrics else "")))
            run = store.runs.get(run.id)
            bar.update(task, completed=run.progress, description=printable(f"{run.name} · {run.status}"))


def print_run(store: Store, run: Run, *, wide: bool = False) -> None:
    parent = store.runs.get(run.parent_run_id) if run.parent_run_id else None
    print_fields([
        ("run", run.name), ("id", run.id), ("kind", run.kind), ("status", run.status),
        ("progress", f"{run.progress:.0f}%" + (f" of {run.total_steps} steps" if run.total_steps else "")),
        ("stage", run.stage), ("message", run.message), ("error", run.error),
        ("parent", f"{parent.name} step {run.parent_step}" if parent else None),
        ("config", run.config), ("created", format_time(run.created_at)), ("started", format_time(run.started_at)),
        ("ended", format_time(run.ended_at)), ("duration", format_duration(run.started_at, run.ended_at)),
    ])
    console.print()
    total = store.steps.count(run_id=run.id)
    if not total:
        console.print("No steps.")
    else:
        steps = store.steps.query(run_id=run.id, order="desc", limit=SHOWN_STEPS)[::-1]
        title = "Steps" if total <= len(steps) else f"Steps (last {len(steps)} of {total}; `rolloutdb steps ls` for more)"
        print_steps(title, steps, wide=wide)
    console.print()
    print_fields([
        ("groups", status_counts(store.groups.count, run.id, states.GroupStatus)),
        ("rollouts", status_counts(store.rollouts.count, run.id, states.RolloutStatus)),
    ])


def print_steps(title: str | None, steps: list[Any], *, wide: bool = False) -> None:
    """Steps with one column per metric; on a narrow terminal the metrics on the right go first."""
    metric_names = sorted({name for step in steps for name in step.metrics})
    print_table(
        title,
        (Column("step", justify="right"), Column("status"),
         *(Column(name, drop=10 + index, justify="right") for index, name in enumerate(metric_names)),
         Column("duration", drop=1, justify="right")),
        ((step.number, step.status, *(step.metrics.get(name) for name in metric_names),
          format_duration(step.started_at, step.ended_at)) for step in steps),
        wide=wide,
    )


def status_counts(count: Callable[..., int], run_id: str, statuses: Iterable[str]) -> str:
    """e.g. "24: 19 succeeded, 5 failed" for the statuses that have rows."""
    return format_counts({str(status): count(run_id=run_id, status=str(status)) for status in statuses})


def format_counts(by_status: Mapping[str, int]) -> str:
    """The total, then the statuses that have rows: "24: 19 succeeded, 5 failed"."""
    present = [f"{number} {status}" for status, number in by_status.items() if number]
    return f"{sum(by_status.values())}" + (f": {', '.join(present)}" if present else "")


@runs_app.command("compare")
@reports_errors
def runs_compare(ctx: typer.Context, a: Annotated[str, typer.Argument(help="Run A (name or id), e.g. a baseline.")],
                 b: Annotated[str, typer.Argument(help="Run B, e.g. an eval.")], json: Json = False) -> None:
    """Compare two runs per task and overall: success rate, mean reward, mean turns, and B - A.

    Example: rolloutdb runs compare grpo-arith/baseline grpo-arith/eval@19
    """
    with ctx.obj.connect() as store:
        comparison = store.compare_runs(store.runs.find(a).id, store.runs.find(b).id)
    if json:
        print_json([comparison])
        return
    print_comparison(comparison)


def print_comparison(comparison: RunComparison) -> None:
    def label(run: Run) -> str:
        return f"{run.name} ({run.kind}" + (f" @ step {run.parent_step}" if run.parent_step is not None else "") + ")"

    def figure(stats: RunStats | None, field: str, percent: bool) -> str:
        value = None if stats is None else getattr(stats, field)
        return "-" if value is None else (f"{value:.0%}" if percent else f"{value:.2f}")

    def change(row: Any, field: str, percent: bool = False) -> tuple[str, str]:
        """"A → B" and B - A, one figure of one row."""
        delta = getattr(row, f"{field}_delta")
        return (f"{figure(row.a, field, percent)} → {figure(row.b, field, percent)}",
                "-" if delta is None else (f"{delta:+.0%}" if percent else f"{delta:+.2f}"))

    print_table(
        f"A = {label(comparison.run_a)}   B = {label(comparison.run_b)}",
        (Column("task"), Column("n A/B", drop=4), Column("success A → B"), Column("Δ"),
         Column("reward A → B", drop=2), Column("Δ", drop=2), Column("turns A → B", drop=3), Column("Δ", drop=3)),
        ((row.task, f"{row.a.rollouts if row.a else 0}/{row.b.rollouts if row.b else 0}",
          *change(row, "success_rate", True), *change(row, "reward_mean"), *change(row, "turns_mean"))
         for row in [*comparison.tasks, comparison.overall]),
    )


# -- steps, groups, tasks -----------------------------------------------------------------------------------


@steps_app.command("ls")
@reports_errors
def steps_ls(
    ctx: typer.Context,
    run: RunName,
    status: Annotated[list[states.StepStatus] | None, typer.Option(help="Only steps in this status (repeatable).")]
    = None,
    limit: Annotated[int, typer.Option(help="At most this many steps: the last ones.")] = 50,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """List the steps of a run, oldest first, with their metrics.

    Example: rolloutdb steps ls grpo-arith --limit 100
    """
    filters: dict[str, Any] = {"status": values(status)} if status else {}
    with ctx.obj.connect() as store:
        found = store.runs.find(run)
        steps = store.steps.query(run_id=found.id, order="desc", limit=limit, **filters)[::-1]
        total = store.steps.count(run_id=found.id, **filters)
    if answered_without_table(steps, json=json, noun="steps", where=f"run {found.name!r}", filtered=bool(filters)):
        return
    print_steps(None, steps, wide=wide)
    if total > len(steps):
        console.print(f"The last {len(steps)} of {total} steps shown; raise --limit to see more.")


@groups_app.command("ls")
@reports_errors
def groups_ls(
    ctx: typer.Context,
    run: Annotated[str | None, typer.Option(help="Only groups of this run (name or id).")] = None,
    step: Annotated[int | None, typer.Option(help="Only groups of this step.")] = None,
    task: Annotated[str | None, typer.Option(help="Only groups of this task (external id or id).")] = None,
    status: Annotated[list[states.GroupStatus] | None, typer.Option(help="Only groups in this status (repeatable).")]
    = None,
    limit: Annotated[int, typer.Option(help="At most this many groups.")] = 20,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """List groups, newest first, with their rollout counts, success and reward statistics.

    Example: rolloutdb groups ls --run grpo-arith --step 3
    """
    filters: dict[str, Any] = {key: value for key, value in (("status", values(status)), ("step", step))
                               if value is not None}
    with ctx.obj.connect() as store:
        if run:
            filters["run_id"] = store.runs.find(run).id
        if task:
            filters["task_id"] = find_task(store, task).id
        groups = store.groups.query(sort="created_at", order="desc", limit=limit, **filters)
        total = store.groups.count(**filters)
        run_names = names_of(store.runs, (group.run_id for group in groups), "name")
        task_names = names_of(store.tasks, (group.task_id for group in groups), "external_id")
        now = store.now()
    if answered_without_table(groups, json=json, noun="groups", where=f"project {store.project!r}",
                              filtered=bool(filters)):
        return
    ids = short_ids(group.id for group in groups)
    print_table(
        None, (Column("id"), Column("run/step", drop=3), Column("task", drop=2), Column("status"),
               Column("done", justify="right"), Column("success", justify="right"),
               Column("reward", justify="right", drop=1), Column("created", drop=4)),
        ((group.id if wide else ids[group.id], run_and_step(run_names.get(group.run_id), group.step),
          task_names.get(group.task_id), group.status, f"{group.completed_count}/{group.size or group.rollout_count}",
          f"{group.success_count}/{group.completed_count}",
          None if group.reward_mean is None else f"{group.reward_mean:.3g} ± {group.reward_std or 0:.2g}",
          format_time(group.created_at) if wide else relative_time(group.created_at, now)) for group in groups),
        wide=wide,
    )
    print_shown(len(groups), total, "groups")


@tasks_app.command("ls")
@reports_errors
def tasks_ls(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="Only tasks of this dataset.")] = None,
    split: Annotated[str | None, typer.Option(help="Only tasks of this split.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Only tasks with this tag (repeatable: all of them).")]
    = None,
    limit: Annotated[int, typer.Option(help="At most this many tasks.")] = 50,
    json: Json = False,
    wide: Wide = False,
) -> None:
    """List the saved tasks by external id, with their dataset, split, tags and instruction.

    Example: rolloutdb tasks ls --dataset arith --split train --tag easy
    """
    with ctx.obj.connect() as store:
        tasks = store.tasks.load(dataset=dataset, split=split, tags=tag)
        validators = names_of(store.validators, (task.validator_id for task in tasks), "name")
    shown = tasks[:limit]
    if answered_without_table(shown, json=json, noun="tasks", where=f"project {store.project!r}",
                              filtered=bool(dataset or split or tag)):
        return
    print_table(
        None, (Column("task"), Column("dataset", drop=3), Column("split", drop=4), Column("tags", drop=2, text=True),
               Column("validator", drop=1), Column("instruction", text=True, drop=5)),
        ((task.external_id, task.dataset, task.split, ", ".join(task.tags) or None,
          validators.get(task.validator_id), task.instruction) for task in shown),
        wide=wide,
    )
    print_shown(len(shown), len(tasks), "tasks")


def find_task(store: Store, external_id_or_id: str) -> Any:
    """A task named by its external id, its id, or a unique start of its id."""
    by_name = store.tasks.query(external_id=external_id_or_id, limit=1)
    return by_name[0] if by_name else store.tasks.find(external_id_or_id)


def names_of(area: Any, ids: Iterable[str | None], field: str) -> dict[str, str]:
    """``field`` of the rows of ``area`` with these ids, by id, read at once."""
    wanted = sorted({id for id in ids if id})
    return {row.id: getattr(row, field) for row in area.query(id=wanted, limit=None)} if wanted else {}


def run_and_step(run_name: str | None, step: int | None) -> str | None:
    """ "my-run/3", "my-run", "step 3" or None."""
    if run_name is None:
        return None if step is None else f"step {step}"
    return run_name if step is None else f"{run_name}/{step}"


# -- history ------------------------------------------------------------------------------------------------

AREAS = {"run": "runs", "step": "steps", "group": "groups", "rollout": "rollouts", "attempt": "attempts"}


@commands.command()
@reports_errors
def history(
    ctx: typer.Context,
    entity: Annotated[EntityType, typer.Argument(help="What the id names.")],
    id: Annotated[str, typer.Argument(help="Its id, or a unique start of it (a run may also be named by its name).")],
    json: Json = False,
) -> None:
    """Show the status history of a run, step, group, rollout or attempt, oldest first.

    Example: rolloutdb history rollout 0190a1b2
    """
    with ctx.obj.connect() as store:
        found = getattr(store, AREAS[entity.value]).find(id)
        changes = store.history(entity.value, found.id)
    if json:
        print_json(changes)
        return
    print_history(f"History of {entity.value} {getattr(found, 'name', None) or found.id}", changes)


def print_history(title: str, changes: Iterable[StatusChange]) -> None:
    print_table(
        title, (Column("time"), Column("change"), Column("reason", text=True)),
        ((format_time(change.changed_at, precision="milliseconds"),
          f"{change.old_status or '(new)'} → {change.new_status}", change.reason) for change in changes),
    )
