"""Comparing two runs task by task: eval against baseline, or an eval at step i against step j."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import case, func, select

from ..records import ComparisonRow, RunComparison, RunStats
from ..schema import rollouts, tasks, turns
from .statistics import FINISHED

if TYPE_CHECKING:
    from . import Store


def _stats_by_task(store: Store, run_id: str) -> tuple[dict[str | None, RunStats], RunStats]:
    """Finished rollouts of the run per task id (None: rollouts without a task), and over all of them."""
    turn_counts = (select(turns.c.rollout_id, func.count().label("turns")).where(turns.c.project_id == store.project_id)
                   .group_by(turns.c.rollout_id).subquery())
    figures = [
        func.count().label("rollouts"),
        func.avg(case((rollouts.c.success.is_(True), 1.0), (rollouts.c.success.is_(False), 0.0))).label("success"),
        func.avg(rollouts.c.reward).label("reward"),
        func.avg(func.coalesce(turn_counts.c.turns, 0)).label("turns"),
    ]
    base = (select(rollouts.c.task_id, *figures)
            .select_from(rollouts.outerjoin(turn_counts, turn_counts.c.rollout_id == rollouts.c.id))
            .where(rollouts.c.project_id == store.project_id, rollouts.c.run_id == run_id,
                   rollouts.c.status.in_(FINISHED)))
    with store.reading() as connection:
        rows = connection.execute(base.group_by(rollouts.c.task_id)).all()
        overall = connection.execute(base.with_only_columns(*figures)).one()
    stats = {row.task_id: RunStats(rollouts=row.rollouts, success_rate=row.success, reward_mean=row.reward,
                                   turns_mean=row.turns) for row in rows}
    return stats, RunStats(rollouts=overall.rollouts, success_rate=overall.success, reward_mean=overall.reward,
                           turns_mean=overall.turns)


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _row(task_id: str | None, label: str, a: RunStats | None, b: RunStats | None) -> ComparisonRow:
    return ComparisonRow(
        task_id=task_id, task=label, a=a, b=b,
        success_rate_delta=_delta(a and a.success_rate, b and b.success_rate),
        reward_mean_delta=_delta(a and a.reward_mean, b and b.reward_mean),
        turns_mean_delta=_delta(a and a.turns_mean, b and b.turns_mean),
    )


def compare_runs(store: Store, a: str, b: str) -> RunComparison:
    """Per task and overall: success rate, mean reward and mean turns of run ``a`` and run ``b``
    (each given by name or id), with ``b - a``."""
    run_a, run_b = store.runs.get(a), store.runs.get(b)
    (stats_a, overall_a), (stats_b, overall_b) = _stats_by_task(store, run_a.id), _stats_by_task(store, run_b.id)
    task_ids = set(stats_a) | set(stats_b)
    with store.reading() as connection:
        labels = dict(connection.execute(select(tasks.c.id, tasks.c.external_id).where(
            tasks.c.project_id == store.project_id, tasks.c.id.in_(task_ids - {None}))).all())
    rows = [_row(task_id, labels.get(task_id, "(no task)"), stats_a.get(task_id), stats_b.get(task_id))
            for task_id in task_ids]
    return RunComparison(run_a=run_a, run_b=run_b, overall=_row(None, "overall", overall_a, overall_b),
                         tasks=sorted(rows, key=lambda row: row.task))
