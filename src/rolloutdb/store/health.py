"""The watchdog: attempts that ran past their rollout's timeout, or went silent for longer than its
unresponsive limit, are marked ``timeout`` / ``unresponsive`` (and the rollout retried or failed)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, select

from .. import states
from ..records import QueueSummary, WorkerActivity
from ..schema import attempts, rollouts
from ..states import AttemptStatus as A
from ..states import RolloutStatus as RO
from .rollouts import QUEUED

if TYPE_CHECKING:
    from . import Store

ALIVE = (A.PREPARING, A.RUNNING)


def verdict(attempt: Mapping[str, Any], config: Mapping[str, Any], now: datetime) -> str | None:
    """``timeout``, ``unresponsive`` or None for a live attempt under its rollout's config."""
    timeout, silence = config.get("timeout_seconds"), config.get("unresponsive_seconds")
    if timeout is not None and now - attempt["started_at"] > timedelta(seconds=timeout):
        return A.TIMEOUT
    last_sign = attempt["last_heartbeat_at"] or attempt["started_at"]
    if silence is not None and now - last_sign > timedelta(seconds=silence):
        return A.UNRESPONSIVE
    return None


def check_health(store: Store) -> int:
    """Mark every overdue latest attempt of a claimed rollout; returns how many were marked."""
    now = store.now()
    latest_live_attempts = (
        select(attempts.c.id, attempts.c.rollout_id, attempts.c.started_at, attempts.c.last_heartbeat_at,
               rollouts.c.config)
        .join(rollouts, and_(rollouts.c.id == attempts.c.rollout_id, rollouts.c.attempt_count == attempts.c.sequence))
        .where(rollouts.c.project_id == store.project_id, rollouts.c.status.in_((RO.PREPARING, RO.RUNNING)),
               attempts.c.status.in_(ALIVE))
    )
    with store.reading() as connection:
        overdue = [row for row in connection.execute(latest_live_attempts).mappings()
                   if verdict(row, row["config"], now)]
    marked = 0
    for row in overdue:
        # Re-read under the write lock: another process may have marked it, or a span revived it.
        with store.writing() as connection:
            rollout, attempt = store.attempts.locate(connection, row["rollout_id"], row["id"], for_update=True)
            status = verdict(attempt, rollout["config"], now) if attempt["status"] in ALIVE else None
            if status is not None and attempt["sequence"] == rollout["attempt_count"]:
                store.attempts.apply_changes(connection, [(rollout, attempt, {"status": status})], "health check")
                marked += 1
    return marked


def queue_summary(store: Store) -> QueueSummary:
    """Rollouts by status, the longest wait, the attempts of unfinished rollouts by status, and the workers
    with when each was last heard of (spans count as heartbeats: they are sent by the worker's attempts)."""
    project = store.project_id
    by_status = (select(rollouts.c.status, func.count()).where(rollouts.c.project_id == project)
                 .group_by(rollouts.c.status))
    oldest = select(func.min(rollouts.c.queued_at)).where(rollouts.c.project_id == project,
                                                          rollouts.c.status.in_(QUEUED))
    attempts_by_status = (
        select(attempts.c.status, func.count())
        .join(rollouts, rollouts.c.id == attempts.c.rollout_id)
        .where(rollouts.c.project_id == project, rollouts.c.status.not_in(states.TERMINAL["rollout"]))
        .group_by(attempts.c.status)
    )
    workers = store.workers.query(limit=None)
    attempt_heartbeats = (
        select(attempts.c.worker_id, func.max(attempts.c.last_heartbeat_at))
        .where(attempts.c.project_id == project, attempts.c.worker_id.in_([worker.id for worker in workers]))
        .group_by(attempts.c.worker_id)
    )
    with store.reading() as connection:
        rollout_counts = dict(connection.execute(by_status).all())
        oldest_queued = connection.execute(oldest).scalar_one()
        attempt_counts = dict(connection.execute(attempts_by_status).all())
        spans_seen = dict(connection.execute(attempt_heartbeats).all()) if workers else {}
    counts = {str(status): rollout_counts.get(str(status), 0) for status in states.RolloutStatus}
    return QueueSummary(
        rollouts_by_status=counts,
        waiting=sum(counts[str(status)] for status in QUEUED),
        oldest_queued_at=oldest_queued,
        attempts_by_status={str(status): attempt_counts.get(str(status), 0) for status in states.AttemptStatus},
        workers=[WorkerActivity(worker=worker, last_seen_at=max(
            (seen for seen in (worker.last_heartbeat_at, spans_seen.get(worker.id)) if seen is not None),
            default=None)) for worker in workers],
    )
