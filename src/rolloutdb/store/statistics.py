"""Statistics the store computes from the rows, never the caller: group and step reward and success
figures, and a training run's progress."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, case, func, select

from .. import states
from ..schema import groups, rollouts, steps
from ..states import GroupStatus, RunStatus, StepStatus

if TYPE_CHECKING:
    from . import Store

FINISHED = tuple(states.TERMINAL["rollout"])
GROUPS_PER_QUERY = 500


def rollout_figures(where, *, times: bool = False) -> Any:
    """count, finished, successes, mean reward and mean squared reward of the rollouts ``where`` selects; with
    ``times``, also when the first of them started and the last ended."""
    return select(
        func.count().label("count"),
        func.coalesce(func.sum(case((rollouts.c.status.in_(FINISHED), 1), else_=0)), 0).label("finished"),
        func.coalesce(func.sum(case((rollouts.c.success.is_(True), 1), else_=0)), 0).label("successes"),
        func.avg(rollouts.c.reward).label("reward_mean"),
        func.avg(rollouts.c.reward * rollouts.c.reward).label("reward_square_mean"),
        *((func.min(rollouts.c.started_at).label("first_started"), func.max(rollouts.c.ended_at).label("last_ended"))
          if times else ()),
    ).where(where)


def population_std(mean: float | None, square_mean: float | None) -> float | None:
    if mean is None or square_mean is None:
        return None
    return math.sqrt(max(0.0, square_mean - mean * mean))


def refresh_statistics(store: Store, connection: Connection,
                       touched: Iterable[tuple[str | None, str | None, int | None]]) -> None:
    """Refresh what depends on the rollouts touched in a transaction, given as (group id, run id, step):
    their groups, their training steps and those runs' progress."""
    touched = list(touched)
    refresh_groups(store, connection, sorted({group for group, _, _ in touched if group is not None}))
    steps_by_run: dict[str, set[int]] = {}
    for _, run, step in touched:
        if run is not None and step is not None:
            steps_by_run.setdefault(run, set()).add(step)
    for run, numbers in sorted(steps_by_run.items()):
        refresh_steps(store, connection, run, sorted(numbers))
        refresh_progress(store, connection, run)


def refresh_groups(store: Store, connection: Connection, group_ids: Iterable[str]) -> None:
    """Recount each group from its rollouts; a group with all its rollouts finished is completed. Figures
    for all the groups come from one query, and a group whose figures did not change is not written."""
    group_ids = list(group_ids)
    for start in range(0, len(group_ids), GROUPS_PER_QUERY):
        chunk = group_ids[start:start + GROUPS_PER_QUERY]
        figures = {row.group_id: row for row in connection.execute(
            rollout_figures(rollouts.c.group_id.in_(chunk), times=True).add_columns(rollouts.c.group_id)
            .group_by(rollouts.c.group_id))}
        rows = connection.execute(select(groups).where(groups.c.project_id == store.project_id,
                                                       groups.c.id.in_(chunk)).with_for_update()).mappings()
        updates = [(group, values) for group in rows
                   if (values := _group_changes(group, figures.get(group["id"]))) is not None]
        if updates:
            store.groups.update_rows(connection, updates, "rollouts recorded")


def _group_changes(group: Any, figures: Any) -> dict[str, Any] | None:
    """What a group's rollouts' figures change in it, or None when nothing. A group starts when its first rollout
    started and ends when its last ended (a recorder's rollouts: the training loop's times, not the writer's)."""
    count, finished, successes = (figures.count, figures.finished, figures.successes) if figures else (0, 0, 0)
    mean = figures.reward_mean if figures else None
    values: dict[str, Any] = {
        "rollout_count": count, "completed_count": finished, "success_count": successes, "reward_mean": mean,
        "reward_std": population_std(mean, figures.reward_square_mean if figures else None),
    }
    expected = group["size"] or count
    if finished and finished >= expected and group["status"] != GroupStatus.COMPLETED:
        values["status"] = GroupStatus.COMPLETED
        if figures.last_ended is not None:
            values["ended_at"] = figures.last_ended
    elif count and group["status"] == GroupStatus.PENDING:
        values["status"] = GroupStatus.RUNNING
    if "status" in values and group["started_at"] is None and figures.first_started is not None:
        values["started_at"] = figures.first_started
    return None if all(group[name] == value for name, value in values.items()) else values


def refresh_steps(store: Store, connection: Connection, run_id: str, numbers: Iterable[int]) -> None:
    """Fold the rollout figures of each training step into its metrics."""
    for number in numbers:
        step = connection.execute(select(steps).where(steps.c.run_id == run_id, steps.c.number == number)
                                  .with_for_update()).mappings().first()
        if step is None:
            continue
        figures = connection.execute(rollout_figures(
            (rollouts.c.run_id == run_id) & (rollouts.c.step == number))).one()
        metrics = {
            **step["metrics"], "rollouts": figures.count, "rollouts_finished": figures.finished,
            "success_count": figures.successes,
            "success_rate": figures.successes / figures.finished if figures.finished else None,
            "reward_mean": figures.reward_mean,
            "reward_std": population_std(figures.reward_mean, figures.reward_square_mean),
        }
        store.steps.update_row(connection, step["id"], {"metrics": metrics}, None, step)


def refresh_progress(store: Store, connection: Connection, run_id: str) -> None:
    """A training run's progress: finished steps, plus the finished share of the current step's
    rollouts, out of its total steps. Runs without ``total_steps`` keep the progress they were given."""
    run = store.runs.fetch_row(connection, run_id, for_update=True)
    if not run["total_steps"] or run["status"] not in (RunStatus.PENDING, RunStatus.RUNNING):
        return
    done = connection.execute(select(func.count()).where(
        steps.c.run_id == run_id, steps.c.status == StepStatus.COMPLETED)).scalar_one()
    current = connection.execute(select(steps.c.number).where(
        steps.c.run_id == run_id, steps.c.status == StepStatus.RUNNING).order_by(steps.c.number.desc()).limit(1)
    ).scalar()
    partial = 0.0
    if current is not None:
        figures = connection.execute(rollout_figures((rollouts.c.run_id == run_id) & (rollouts.c.step == current))).one()
        expected = connection.execute(select(func.sum(groups.c.size)).where(
            groups.c.run_id == run_id, groups.c.step == current)).scalar() or figures.count
        partial = figures.finished / expected if expected else 0.0
    progress = min(100.0, 100.0 * (done + min(partial, 1.0)) / run["total_steps"])
    store.runs.update_row(connection, run_id, {"progress": max(progress, run["progress"])}, None, run)

