"""Retention: delete finished rollouts (with their attempts, spans and turns) so disk stays bounded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select

from .. import states
from ..errors import InvalidInputError
from ..schema import attempts, rollouts, spans, status_changes, turns

if TYPE_CHECKING:
    from . import Store

BATCH = 500  # rollouts per transaction: keeps locks short and bound parameters few


@dataclass(frozen=True)
class PurgeResult:
    rollouts: int = 0
    attempts: int = 0
    spans: int = 0
    turns: int = 0


def purge(store: Store, *, older_than: timedelta | None = None, keep_last: int | None = None,
          dry_run: bool = False, on_progress: Callable[[int, int], None] | None = None) -> PurgeResult:
    """Delete finished rollouts that ended before ``now - older_than`` and are not among the
    ``keep_last`` most recently finished (either limit alone works too). Unfinished rollouts stay.
    ``on_progress(rollouts done, rollouts in all)`` is called after each batch."""
    if older_than is None and keep_last is None:
        raise InvalidInputError("purge needs older_than, keep_last or both: otherwise it would delete every result")
    if keep_last is not None and keep_last < 0:
        raise InvalidInputError(f"keep_last must not be negative, got {keep_last}")
    if older_than is not None and older_than < timedelta(0):
        raise InvalidInputError(f"older_than must not be negative, got {older_than}")
    newest_first = select(rollouts.c.id, rollouts.c.ended_at).where(
        rollouts.c.project_id == store.project_id, rollouts.c.status.in_(states.TERMINAL["rollout"])
    ).order_by(rollouts.c.ended_at.desc().nulls_last(), rollouts.c.id.desc())
    if keep_last is not None:
        newest_first = newest_first.offset(keep_last)  # never the keep_last most recent
    cutoff = store.now() - older_than if older_than is not None else None
    with store._read() as connection:
        # Both limits given: a rollout goes only when it is old AND not among the most recent.
        doomed = [row.id for row in connection.execute(newest_first)
                  if cutoff is None or (row.ended_at is not None and row.ended_at < cutoff)]
    totals = PurgeResult()
    for start in range(0, len(doomed), BATCH):
        totals = _add(totals, _delete_batch(store, doomed[start:start + BATCH], dry_run))
        if on_progress is not None:
            on_progress(totals.rollouts, len(doomed))
    return totals


def _delete_batch(store: Store, rollout_ids: list[str], dry_run: bool) -> PurgeResult:
    with store._write() as connection:
        attempt_ids = list(connection.execute(
            select(attempts.c.id).where(attempts.c.rollout_id.in_(rollout_ids))).scalars())
        counts = PurgeResult(
            rollouts=len(rollout_ids),
            attempts=len(attempt_ids),
            spans=connection.execute(select(func.count()).where(spans.c.rollout_id.in_(rollout_ids))).scalar_one(),
            turns=connection.execute(select(func.count()).where(turns.c.rollout_id.in_(rollout_ids))).scalar_one(),
        )
        if not dry_run:
            # Spans, turns and attempts go by ON DELETE CASCADE; history rows have no foreign key.
            connection.execute(delete(status_changes).where(
                status_changes.c.project_id == store.project_id,
                status_changes.c.entity_id.in_(rollout_ids + attempt_ids)))
            connection.execute(delete(rollouts).where(rollouts.c.id.in_(rollout_ids)))
        return counts


def _add(a: PurgeResult, b: PurgeResult) -> PurgeResult:
    return PurgeResult(a.rollouts + b.rollouts, a.attempts + b.attempts, a.spans + b.spans, a.turns + b.turns)
