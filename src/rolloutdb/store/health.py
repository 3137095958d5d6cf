"""The watchdog: attempts that ran past their rollout's timeout, or went silent for longer than its
unresponsive limit, are marked ``timeout`` / ``unresponsive`` (and the rollout retried or failed)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from ..schema import attempts, rollouts
from ..states import AttemptStatus as A
from ..states import RolloutStatus as RO

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
    with store._read() as connection:
        overdue = [row for row in connection.execute(latest_live_attempts).mappings()
                   if verdict(row, row["config"], now)]
    marked = 0
    for row in overdue:
        # Re-read under the write lock: another process may have marked it, or a span revived it.
        with store._write() as connection:
            rollout, attempt = store.attempts._locate(connection, row["rollout_id"], row["id"], for_update=True)
            status = verdict(attempt, rollout["config"], now) if attempt["status"] in ALIVE else None
            if status is not None and attempt["sequence"] == rollout["attempt_count"]:
                store.attempts._apply(connection, rollout, attempt, {"status": status}, "health check")
                marked += 1
    return marked
