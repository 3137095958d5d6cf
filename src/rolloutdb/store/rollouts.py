"""Rollouts and their queue: enqueue, claim (exactly once, FIFO), start, cancel, wait for results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from .. import states
from ..records import Claim, Rollout
from ..schema import QUEUE_PREDICATE, rollouts
from ..states import RolloutStatus as RO
from .base import EditableArea, Write, ids_of, mappings, seconds, whole_number
from .hooks import before_commit
from .statistics import refresh_statistics
from ._statements import Prepared
from .workers import checked_worker_id

QUEUED = (RO.QUEUING, RO.REQUEUING)
FIGURES = frozenset({"status", "reward", "success"})  # what group and step statistics are computed from
MAX_CLAIM = 1000

# The queue's hot statement, built once. SKIP LOCKED lets PostgreSQL workers claim side by side;
# SQLite has no row locks and ignores it: there the write transaction itself is the lock.
# The predicate is the queue index's own text: SQLite uses a partial index only for the same terms.
OLDEST_QUEUED = Prepared(
    select(rollouts)
    .where(rollouts.c.project_id == bindparam("b_project"), QUEUE_PREDICATE)
    .order_by(rollouts.c.queued_at, rollouts.c.id)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)


class Rollouts(EditableArea[Rollout]):
    table = rollouts
    record = Rollout
    noun = "rollout"
    entity_type = "rollout"
    filterable = frozenset({"id", "run_id", "step", "group_id", "task_id", "mode", "status", "resources_id",
                            "created_at", "started_at", "ended_at", "queued_at", "success", "reward", "script_id"})
    sortable = frozenset({"created_at", "updated_at", "started_at", "ended_at", "queued_at", "reward", "step",
                          "status", "id", "mode", "resources_id"})
    updatable = frozenset({"status", "reward", "success", "validation", "metrics", "metadata", "error", "config",
                           "resources_id", "mode", "input"})
    parents = {"run_id": "runs", "group_id": "groups", "task_id": "tasks", "resources_id": "resources",
               "script_id": "scripts"}

    # -- the queue ------------------------------------------------------------------------------------

    def enqueue(self, input: Any = None, **fields: Any) -> Rollout:
        """Put one rollout at the back of the queue (status queuing). Without ``resources_id`` it runs
        against the latest resources, if any."""
        return self.enqueue_many([{"input": input, **fields}])[0]

    def enqueue_many(self, requests: Iterable[Mapping[str, Any]]) -> list[Rollout]:
        """Enqueue several rollouts in one transaction, keeping their order in the queue."""
        with self._store.writing() as connection:
            return self._enqueue(connection, requests)

    def dequeue(self, worker_id: str | None = None) -> Claim | None:
        """Claim the rollout that has waited longest: it moves to preparing with a new attempt."""
        claims = self.dequeue_many(1, worker_id=worker_id)
        return claims[0] if claims else None

    def dequeue_many(self, limit: int, worker_id: str | None = None) -> list[Claim]:
        """Claim up to ``limit`` rollouts in one transaction, oldest first. Each is claimed exactly once,
        however many workers ask at the same time."""
        whole_number("limit (rollouts claimed at once)", limit, 0, MAX_CLAIM)
        self._store.maybe_check_health()
        if limit <= 0:
            return []
        with self._store.writing() as connection:
            candidates = OLDEST_QUEUED.rows(connection, {"b_project": self._store.project_id, "b_limit": limit})
            claims = self.claim_rows(connection, candidates, worker_id)
            if worker_id is not None:
                self._store.workers.after_dequeue(connection, worker_id, claims, self._store.now())
        return claims

    def start(self, input: Any = None, *, worker_id: str | None = None, **fields: Any) -> Claim:
        """Create a rollout and its first attempt at once, bypassing the queue."""
        return self.start_many([{"input": input, **fields}], worker_id=worker_id)[0]

    def start_many(self, requests: Iterable[Mapping[str, Any]], *, worker_id: str | None = None) -> list[Claim]:
        """``start`` for several rollouts (each request: ``input`` and the other fields ``enqueue`` takes) in one
        transaction, in order."""
        with self._store.writing() as connection:
            started = self._new_queued(connection, requests)
            if not started:
                return []

            def insert_claimed(connection: Connection, writes) -> None:
                # Written once, as claimed; their history still says they were queued first.
                self.insert_rows(connection, [{**row, **values} for row, values in writes], started[0].created_at,
                                 created_as=RO.QUEUING)

            claims = self.claim_rows(connection, [self.to_row(rollout) for rollout in started], worker_id,
                                     write=insert_claimed)
            return [self._store.attempts.started_by(connection, claim) for claim in claims]

    def cancel(self, rollout_id: str, reason: str | None = None) -> Rollout:
        """Cancel an unfinished rollout; waiters see it as finished."""
        return self.update(rollout_id, status=RO.CANCELLED, reason=reason or "cancelled")

    def wait(self, rollout_ids: Iterable[str], timeout: float | None = None) -> list[Rollout]:
        """Block until the rollouts finish or ``timeout`` seconds pass; returns the finished ones.
        Unknown ids raise NotFoundError."""
        return self._store.waiter.wait(ids_of("rollout", rollout_ids),
                                        None if timeout is None else seconds("timeout", timeout))

    # -- building blocks ------------------------------------------------------------------------------

    def _check_parents(self, connection: Connection, references: Iterable[tuple[str, Any]]) -> None:
        if not self._store.resources_must_exist:  # then resources_id is a name, as in Agent Lightning
            references = [(field, value) for field, value in references if field != "resources_id"]
        super()._check_parents(connection, references)

    def _enqueue(self, connection: Connection, requests: Iterable[Mapping[str, Any]]) -> list[Rollout]:
        records = self._new_queued(connection, requests)
        self.insert_records(connection, records)
        return records

    def _new_queued(self, connection: Connection, requests: Iterable[Mapping[str, Any]]) -> list[Rollout]:
        """Records of new queued rollouts, not written yet."""
        requests = mappings("rollout", requests)
        latest = None  # looked up once per batch, and only when a request has no resources of its own
        if any(request.get("resources_id") is None for request in requests):
            row = self._store.resources.latest_row(connection)
            latest = None if row is None else row["id"]
        return [self.new_record({"id": self._store.new_id("rollout"), **request, "status": RO.QUEUING,
                                  "resources_id": latest if request.get("resources_id") is None
                                  else request["resources_id"]})
                   for request in requests]

    def claim_rows(self, connection: Connection, rows: list[Mapping[str, Any]], worker_id: str | None, *,
               write: Write | None = None) -> list[Claim]:
        """Move these rollout rows (locked) to preparing, each with a new attempt. ``write``: as ``change_rows``
        takes it (a rollout started at once is inserted as claimed)."""
        if worker_id is not None:
            checked_worker_id(worker_id)
        if not rows:
            return []
        now = self._store.now()
        claimed = self.change_rows(
            connection, [(row, {"status": RO.PREPARING, "attempt_count": row["attempt_count"] + 1}) for row in rows],
            "claimed" if worker_id is None else f"claimed by {worker_id}", now, write=write)
        new_attempts = self._store.attempts.insert_next(
            connection, [(row, row["attempt_count"]) for row in claimed], worker_id, now)
        return [Claim(rollout=self.to_record(row), attempt=attempt) for row, attempt in zip(claimed, new_attempts)]

    def follow_latest_attempts(self, connection: Connection, follows: Sequence[tuple[Mapping[str, Any], str]],
                               now: datetime, reason: str | None) -> None:
        """Move each rollout (given as (row, status), each rollout once) to the status its latest attempt
        implies, when that is a legal change.

        A finished rollout stays finished (a late result of a cancelled rollout changes only its attempt)."""
        self.change_rows(connection, [(row, {"status": status}) for row, status in follows], reason, now, guarded=True)

    def _stamps(self, row: Mapping[str, Any], new_status: str, now: datetime) -> dict[str, Any]:
        # queued_at orders the queue: set on entering it (a requeued rollout goes to the back), cleared on leaving.
        stamps = super()._stamps(row, new_status, now)
        if new_status in QUEUED:
            stamps["queued_at"] = now
        elif row.get("queued_at") is not None:
            stamps["queued_at"] = None
        return stamps

    def update_rows(self, connection, updates, reason):
        updated = super().update_rows(connection, updates, reason)
        self._touch_statistics(connection, [(rollout.group_id, rollout.run_id, rollout.step)
                                            for rollout, (_, changes) in zip(updated, updates) if FIGURES & changes.keys()])
        return updated

    def insert_rows(self, connection: Connection, rows, now=None, **options) -> None:
        super().insert_rows(connection, rows, now, **options)
        self._touch_statistics(connection, [(row["group_id"], row["run_id"], row["step"]) for row in rows])

    def _after_status_change(self, connection, changed, reason, now, parents) -> None:
        # Group and step figures count finished rollouts: only a rollout that finishes moves them.
        finished = [row for row, _ in changed if row["status"] in states.TERMINAL["rollout"]]
        self._touch_statistics(connection, [(row["group_id"], row["run_id"], row["step"]) for row in finished])
        self._store.waiter.announce(connection, [row["id"] for row in finished])

    def _touch_statistics(self, connection: Connection, places: Iterable[tuple[str | None, str | None, int | None]]) -> None:
        """Queue the groups, steps and run progress that rollouts at these (group, run, step) places count
        in, refreshed just before commit: the store keeps them true whoever writes the rollouts."""
        touched = [place for place in places if place[0] is not None or (place[1] is not None and place[2] is not None)]
        if touched:
            before_commit(connection, self._refresh_statistics, set).update(touched)

    def _refresh_statistics(self, connection: Connection, touched: set[tuple[str | None, str | None, int | None]]) -> None:
        refresh_statistics(self._store, connection, touched)
