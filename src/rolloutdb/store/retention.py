"""Retention: delete finished rollouts (with their attempts, spans, turns and history) so disk stays bounded.

A purge goes through the rollouts to delete in batches, oldest first, each batch its own short transaction:
other writers get in between batches, and SQLite's WAL thread can checkpoint. Every lookup is an index
search, and the next batch starts where the last one stopped (keyset pagination over the index of
finished rollouts), so the time per rollout does not grow with the size of the tables.

A purge also trims the change feed (``store.events``): the events from before its horizon (the cutoff of
``older_than``; with ``keep_last`` at most the end of the newest rollout it deletes), oldest first up to the first one
that is newer, so what stays is the feed's tail and one id (``event_trims``) says how far back it reaches.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, ColumnElement, Connection, Select, and_, delete, func, or_, select, update

from ..errors import InvalidInputError
from ..schema import FINISHED_PREDICATE, attempts, event_trims, events, rollouts, spans, status_changes, turns
from .base import MAX_OFFSET, insert_ignoring_conflicts, whole_number

if TYPE_CHECKING:
    from . import Store

MAX_BATCH = 500  # rollouts per transaction at most: bound parameters stay few
FIRST_BATCH = 50  # until a batch has shown how many rows hang under each rollout
ROWS_PER_BATCH = 10_000  # rollouts, attempts, spans and turns per transaction: keeps it (and the WAL) short
# SQLite: writers of other processes wait on SQLite's busy handler, which tries again every 100 ms at the
# longest. So after at most TURN_SECONDS of batches, a purge leaves the database free for longer than that.
TURN_SECONDS = 0.5
PAUSE_SECONDS = 0.11


@dataclass(frozen=True)
class PurgeResult:
    rollouts: int = 0
    attempts: int = 0
    spans: int = 0
    turns: int = 0
    events: int = 0  # of the change feed

    def __add__(self, other: PurgeResult) -> PurgeResult:
        return PurgeResult(self.rollouts + other.rollouts, self.attempts + other.attempts,
                           self.spans + other.spans, self.turns + other.turns, self.events + other.events)


@dataclass(frozen=True)
class _Range:
    """A stretch of the finished-rollouts index to go through: its conditions and its order (``id`` last)."""

    key: tuple[Column[Any], ...]
    conditions: tuple[ColumnElement[bool], ...]

    def before(self, position: Sequence[Any]) -> _Range:
        """This stretch up to ``position`` (key values), not included."""
        return _Range(self.key, self.conditions + (_beyond(self.key, position, BEFORE),))


def purge(store: Store, *, older_than: timedelta | None = None, keep_last: int | None = None,
          dry_run: bool = False, on_progress: Callable[[int, int], None] | None = None,
          ended_before: datetime | None = None) -> PurgeResult:
    """Delete finished rollouts that ended before ``now - older_than`` and are not among the
    ``keep_last`` most recently finished (either limit alone works too). Unfinished rollouts stay. The change
    feed's events from before the same horizon go too. ``on_progress(rollouts done, rollouts in all)`` is called after each batch.
    ``ended_before`` (instead of ``older_than``) is the cutoff itself: what ``archive`` bundled, to the microsecond."""
    if older_than is None and keep_last is None and ended_before is None:
        raise InvalidInputError("purge needs older_than, keep_last or both: otherwise it would delete every result")
    if keep_last is not None:
        whole_number("keep_last", keep_last, 0, MAX_OFFSET)
    if older_than is not None and not isinstance(older_than, timedelta):
        raise InvalidInputError(f"older_than must be a timedelta, got {type(older_than).__name__} {older_than!r:.80}")
    if older_than is not None and older_than < timedelta(0):
        raise InvalidInputError(f"older_than must not be negative, got {older_than}")
    try:
        cutoff = store.now() - older_than if older_than is not None else ended_before
    except OverflowError:
        raise InvalidInputError(f"older_than reaches back before the year 1: {older_than}") from None
    stretches, horizon = _doomed(store, cutoff, keep_last)
    if on_progress is not None:
        with store.reading() as connection:  # an index-only count: far cheaper than the deletes
            in_all = sum(connection.execute(select(func.count()).select_from(_select(store, stretch).subquery()))
                         .scalar_one() for stretch in stretches)
    totals = PurgeResult()
    turn_began = time.monotonic()
    for stretch in stretches:
        size, position = FIRST_BATCH, None
        while True:
            with store.reading() if dry_run else store.writing() as connection:
                batch = connection.execute(_next_batch(store, stretch, position, size)).all()
                if not batch:
                    break
                counts = _delete(connection, store, [row.id for row in batch], dry_run)
            turn_began = _take_turns(store, dry_run, turn_began)
            totals += counts
            if on_progress is not None:
                on_progress(totals.rollouts, max(in_all, totals.rollouts))
            if len(batch) < size:
                break
            position = tuple(batch[-1])
            # As many rollouts as keep the next transaction near ROWS_PER_BATCH rows.
            rows = counts.rollouts + counts.attempts + counts.spans + counts.turns
            size = max(1, min(MAX_BATCH, ROWS_PER_BATCH * counts.rollouts // rows))
    if horizon is not None:
        totals += PurgeResult(events=_trim_feed(store, horizon, dry_run, turn_began))
    return totals


def _take_turns(store: Store, dry_run: bool, turn_began: float) -> float:
    """After TURN_SECONDS of batches on SQLite, a pause for other processes' writers; when the turn began."""
    if store.backend == "sqlite" and not dry_run and time.monotonic() - turn_began > TURN_SECONDS:
        time.sleep(PAUSE_SECONDS)
        return time.monotonic()
    return turn_began


def _trim_feed(store: Store, horizon: datetime, dry_run: bool, turn_began: float) -> int:
    """Delete the project's events from before ``horizon``, oldest first, stopping at the first that is not
    (ids and times rise together but for clock steps: the feed stays one unbroken tail), in batches along the
    (project, id) index; records how far it went in ``event_trims``. Returns how many it deleted."""
    trimmed, position = 0, 0
    while True:
        with store.reading() if dry_run else store.writing() as connection:
            batch = connection.execute(
                select(events.c.id, events.c.time).where(events.c.project_id == store.project_id,
                                                         events.c.id > position)
                .order_by(events.c.id).limit(ROWS_PER_BATCH)).all()
            old = list(itertools.takewhile(lambda row: row.time < horizon, batch))
            if old and not dry_run:
                through = old[-1].id
                connection.execute(delete(events).where(events.c.project_id == store.project_id,
                                                        events.c.id > position, events.c.id <= through))
                connection.execute(insert_ignoring_conflicts(connection, event_trims),
                                   {"project_id": store.project_id, "trimmed_through": through})
                connection.execute(update(event_trims).where(event_trims.c.project_id == store.project_id,
                                                             event_trims.c.trimmed_through < through)
                                   .values(trimmed_through=through))
        trimmed += len(old)
        if len(old) < len(batch) or len(batch) < ROWS_PER_BATCH:
            return trimmed
        position = old[-1].id
        turn_began = _take_turns(store, dry_run, turn_began)


def _doomed(store: Store, cutoff: datetime | None,
            keep_last: int | None) -> tuple[list[_Range], datetime | None]:
    """Where in the index the rollouts to delete are, oldest first, and the horizon of the feed's events to
    delete (None: none). Finished rollouts without an end time count as the oldest (they are never old
    enough for ``older_than``); then come the others by end time."""
    undated = _Range((rollouts.c.id,), (rollouts.c.ended_at.is_(None),))
    dated = _Range((rollouts.c.ended_at, rollouts.c.id), (rollouts.c.ended_at.is_not(None),)
                   + (() if cutoff is None else (rollouts.c.ended_at < cutoff,)))
    stretches = [dated] if cutoff is not None else [undated, dated]
    if not keep_last:
        return stretches, cutoff
    with store.reading() as connection:
        # The oldest kept and, after it, the newest deleted (unless another limit keeps it).
        oldest_kept, newest_doomed = (connection.execute(
            select(rollouts.c.ended_at, rollouts.c.id)
            .where(rollouts.c.project_id == store.project_id, FINISHED_PREDICATE)
            .order_by(rollouts.c.ended_at.desc().nulls_last(), rollouts.c.id.desc())
            .offset(keep_last - 1).limit(2)).all() + [None, None])[:2]
    if oldest_kept is None:  # no more finished rollouts than keep_last: all are kept
        return [], None
    horizon = None
    if newest_doomed is not None and newest_doomed.ended_at is not None:  # events up to its end go with it
        horizon = newest_doomed.ended_at + timedelta(microseconds=1)
        horizon = horizon if cutoff is None else min(cutoff, horizon)
    if oldest_kept.ended_at is None:  # all dated ones are kept, and the undated ones after it
        return ([undated.before((oldest_kept.id,))], None) if cutoff is None else ([], None)
    return [stretch.before(tuple(oldest_kept)) if stretch is dated else stretch for stretch in stretches], horizon


def _select(store: Store, stretch: _Range) -> Select[Any]:
    """The rollouts of ``stretch``: their key values."""
    return select(*stretch.key).where(rollouts.c.project_id == store.project_id, FINISHED_PREDICATE,
                                      *stretch.conditions)


def _next_batch(store: Store, stretch: _Range, position: tuple[Any, ...] | None, size: int) -> Select[Any]:
    """The next ``size`` rollouts of ``stretch`` after ``position`` (key values), in key order."""
    statement = _select(store, stretch).order_by(*stretch.key).limit(size)
    return statement if position is None else statement.where(_beyond(stretch.key, position, AFTER))


AFTER, BEFORE = (operator.gt, operator.ge), (operator.lt, operator.le)  # (strictly, or equal to)


def _beyond(key: Sequence[Column[Any]], position: Sequence[Any], side: tuple) -> ColumnElement[bool]:
    """Rows strictly AFTER or BEFORE ``position`` (key values) in ``key`` order, written as a range of the
    first column, so that both backends seek in the index on ``key``."""
    strictly, or_equal = side
    first, *rest = key
    if not rest:
        return strictly(first, position[0])
    return and_(or_equal(first, position[0]),
                or_(strictly(first, position[0]), _beyond(rest, position[1:], side)))


def _delete(connection: Connection, store: Store, rollout_ids: list[str], dry_run: bool) -> PurgeResult:
    """Count what hangs under these rollouts and, unless ``dry_run``, delete them with it."""
    their_attempts = select(attempts.c.id).where(attempts.c.rollout_id.in_(rollout_ids))
    counts = PurgeResult(
        rollouts=len(rollout_ids),
        attempts=_count(connection, their_attempts),
        spans=_count(connection, select(spans.c.id).where(spans.c.rollout_id.in_(rollout_ids))),
        turns=_count(connection, select(turns.c.id).where(turns.c.rollout_id.in_(rollout_ids))),
    )
    if not dry_run:
        # Spans, turns and attempts go by ON DELETE CASCADE; history rows have no foreign key. Naming the
        # entity type lets the history index find them.
        connection.execute(delete(status_changes).where(
            status_changes.c.project_id == store.project_id, status_changes.c.entity_type == "attempt",
            status_changes.c.entity_id.in_(their_attempts.scalar_subquery())))
        connection.execute(delete(status_changes).where(
            status_changes.c.project_id == store.project_id, status_changes.c.entity_type == "rollout",
            status_changes.c.entity_id.in_(rollout_ids)))
        connection.execute(delete(rollouts).where(rollouts.c.id.in_(rollout_ids)))
    return counts


def _count(connection: Connection, rows: Select[Any]) -> int:
    return connection.execute(select(func.count()).select_from(rows.subquery())).scalar_one()
