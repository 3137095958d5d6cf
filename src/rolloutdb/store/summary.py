"""Summaries of the project's rollouts per task or per day: how many, how many succeeded, their turns, their
duration and their errors by type (the rollouts' own, and their turns'). Replays of scripts are rollouts, so they
count here like any other."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, case, func, select

from ..errors import InvalidInputError
from ..records import SummaryRow
from ..schema import rollouts, tasks, turns
from ..states import RolloutStatus
from .base import aware_time
from .statistics import FINISHED

if TYPE_CHECKING:
    from . import Store

SUMMARY_BY = ("task", "day")
NO_TASK = "(no task)"
ERROR_TYPE_LENGTH = 80


# The periods a time falls in, named by their start in UTC: 2026-12-05 (a day), 2026-12-05T13:00 (an hour); as
# SQLite's strftime and PostgreSQL's to_char write them.
PERIODS = {"day": ("%Y-%m-%d", "YYYY-MM-DD"), "hour": ("%Y-%m-%dT%H:00", 'YYYY-MM-DD"T"HH24:00')}


def utc_period(column: Any, backend: str, every: str = "day") -> Any:
    """The ``every`` (a key of PERIODS) a time falls in, as text (SQLite stores times as UTC text already)."""
    sqlite_format, postgresql_format = PERIODS[every]
    if backend == "postgresql":
        return func.to_char(func.timezone("UTC", column), postgresql_format)
    return func.strftime(sqlite_format, column)


def _seconds_between(start: Any, end: Any, backend: str) -> Any:
    if backend == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _error_type(column: Any, backend: str) -> Any:
    """An error's type: its text up to the first colon ("TimeoutError: after 30s" is a TimeoutError)."""
    if backend == "postgresql":
        return func.split_part(column, ":", 1)
    colon = func.instr(column, ":")
    return case((colon > 0, func.substr(column, 1, colon - 1)), else_=column)


def summarize(store: Store, by: str = "task", run: str | None = None, since: datetime | None = None
              ) -> list[SummaryRow]:
    if by not in SUMMARY_BY:
        raise InvalidInputError(f"a summary is by {' or '.join(SUMMARY_BY)}, got {by!r:.80}")
    if since is not None:
        aware_time("since", since)
    backend = store.backend
    scope = [rollouts.c.project_id == store.project_id]
    if run is not None:
        scope.append(rollouts.c.run_id == store.runs.get(run).id)
    if since is not None:
        scope.append(rollouts.c.created_at >= since)
    if by == "task":
        keys = [rollouts.c.task_id, tasks.c.external_id]
        source = rollouts.outerjoin(tasks, tasks.c.id == rollouts.c.task_id)
    else:
        keys = [utc_period(rollouts.c.created_at, backend).label("day")]
        source = rollouts
    scoped_ids = select(rollouts.c.id).where(*scope)
    turn_counts = (select(turns.c.rollout_id, func.count().label("turns"))
                   .where(turns.c.project_id == store.project_id, turns.c.rollout_id.in_(scoped_ids))
                   .group_by(turns.c.rollout_id).subquery())
    finished = rollouts.c.status.in_(FINISHED)
    figures = select(
        *keys,
        func.count().label("rollouts"),
        func.coalesce(func.sum(case((finished, 1), else_=0)), 0).label("finished"),
        # A rollout's success flag, or without one (a queue's rollouts) whether it succeeded.
        func.avg(case((~finished, None), (rollouts.c.success.is_(True), 1.0), (rollouts.c.success.is_(False), 0.0),
                      (rollouts.c.status == RolloutStatus.SUCCEEDED, 1.0), else_=0.0)).label("success_rate"),
        func.avg(case((finished, func.coalesce(turn_counts.c.turns, 0)))).label("turns_mean"),
        func.avg(case((finished, _seconds_between(rollouts.c.started_at, rollouts.c.ended_at, backend))))
        .label("duration_mean"),
    ).select_from(source.outerjoin(turn_counts, turn_counts.c.rollout_id == rollouts.c.id)).where(*scope)
    with_turns = source.join(turns, and_(turns.c.rollout_id == rollouts.c.id, turns.c.project_id == store.project_id))
    with store.reading() as connection:
        rows = connection.execute(figures.group_by(*keys)).all()
        errors = _errors_by_type(connection, keys, source, scope, rollouts.c.error, backend)
        turn_errors = _errors_by_type(connection, keys, with_turns, scope, turns.c.error, backend)
    summary = [SummaryRow(
        key=(row.external_id or NO_TASK) if by == "task" else row.day,
        task_id=row.task_id if by == "task" else None,
        rollouts=row.rollouts, finished=row.finished,
        success_rate=_number(row.success_rate), turns_mean=_number(row.turns_mean),
        duration_mean_seconds=_number(row.duration_mean),
        errors=errors.get(tuple(row[:len(keys)]), {}), turn_errors=turn_errors.get(tuple(row[:len(keys)]), {}),
    ) for row in rows]
    return sorted(summary, key=lambda row: row.key)


def _errors_by_type(connection: Connection, keys: list[Any], source: Any, scope: list[Any], column: Any,
                    backend: str) -> dict[tuple, dict[str, int]]:
    """The errors in ``column`` (of the scoped rollouts, or of their turns) counted by type, per row key; each
    row's types most frequent first."""
    error_type = _error_type(column, backend)
    by_key: dict[tuple, dict[str, int]] = {}
    for row in connection.execute(select(*keys, error_type.label("type"), func.count().label("count"))
                                  .select_from(source).where(*scope, column.is_not(None)).group_by(*keys, error_type)):
        kind = (row.type.strip() or "(untyped)")[:ERROR_TYPE_LENGTH]
        counts = by_key.setdefault(tuple(row[:len(keys)]), {})
        counts[kind] = counts.get(kind, 0) + row.count
    return {key: dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))) for key, counts in by_key.items()}


def _number(value: Any) -> float | None:
    return None if value is None else float(value)  # PostgreSQL's averages are Decimal
