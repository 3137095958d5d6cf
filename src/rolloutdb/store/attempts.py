"""Attempts: one execution of a rollout by a worker. The rollout's status follows its latest attempt."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, select, true

from .. import states
from ..errors import InvalidTransitionError, NotFoundError
from ..records import Attempt, Claim, RolloutConfig
from ..schema import attempts, rollouts
from ..states import AttemptStatus as A
from ..states import RolloutStatus as RO
from .base import Area, build_record, build_records, check_key, mappings
from ._statements import Prepared

LATEST = "latest"
T = TypeVar("T")
# Hot statements, prepared once (see _statements.Prepared).
SELECT_OF_ROLLOUT = Prepared(select(attempts).where(attempts.c.id == bindparam("b_id"),
                                                    attempts.c.rollout_id == bindparam("b_rollout")))
SELECT_BY_SEQUENCE = Prepared(select(attempts).where(attempts.c.rollout_id == bindparam("b_rollout"),
                                                     attempts.c.sequence == bindparam("b_sequence")))
# An attempt in one of these that shows a sign of life runs again: its heartbeat is a status change.
REVIVED_BY_HEARTBEAT = frozenset({A.PREPARING, A.UNRESPONSIVE})


# A rollout's columns, then its attempt's: read as one row (see Attempts.rollout_and_attempt).
ROLLOUT_THEN_ATTEMPT = (*(column.label(f"rollout_{column.name}") for column in rollouts.c),
                        *(column.label(f"attempt_{column.name}") for column in attempts.c))


def _rollout_with_attempt(latest: bool, for_update: bool) -> Prepared:
    """A rollout and one attempt of it (its latest, or ``b_attempt``) in one query: one round trip, not two.
    The rollout comes first (``rollout_*`` columns); the attempt's are NULL when it has no such attempt."""
    which = attempts.c.sequence == rollouts.c.attempt_count if latest else attempts.c.id == bindparam("b_attempt")
    statement = (
        select(*ROLLOUT_THEN_ATTEMPT)
        .select_from(rollouts.outerjoin(attempts, and_(attempts.c.rollout_id == rollouts.c.id, which)))
        .where(rollouts.c.id == bindparam("b_rollout"), rollouts.c.project_id == bindparam("b_project"))
    )
    return Prepared(statement.with_for_update(of=rollouts) if for_update else statement)


ATTEMPTS_PER_LOOKUP = 64  # the most attempts locate_many asks for in one query


@functools.lru_cache(maxsize=4 * ATTEMPTS_PER_LOOKUP)
def _rollouts_with_attempts(count: int, for_update: bool, latest: bool) -> Prepared:
    """``count`` attempts with their rollouts: attempts ``b_attempt_0`` ..., or with ``latest`` the latest attempts of
    rollouts ``b_rollout_0`` ... (a rollout without one is left out). Rollouts are locked in the order of their ids
    (so that writers locking several never wait for each other in a circle); prepared once per count."""
    joined = attempts.join(rollouts, and_(attempts.c.rollout_id == rollouts.c.id,
                                          attempts.c.sequence == rollouts.c.attempt_count if latest else true()))
    named = rollouts.c.id if latest else attempts.c.id
    statement = (
        select(*ROLLOUT_THEN_ATTEMPT)
        .select_from(joined)
        .where(named.in_([bindparam(f"b_key_{n}") for n in range(count)]), rollouts.c.project_id == bindparam("b_project"))
        .order_by(rollouts.c.id)
    )
    return Prepared(statement.with_for_update(of=rollouts) if for_update else statement)


ROLLOUT_COLUMNS, ATTEMPT_COLUMNS = tuple(rollouts.c.keys()), tuple(attempts.c.keys())
ROLLOUT_WITH_ATTEMPT = {(latest, for_update): _rollout_with_attempt(latest, for_update)
                        for latest in (True, False) for for_update in (True, False)}


def rows_in_chunks(connection: Connection, statement: Callable[[int], Prepared], items: Sequence[T],
                   params_of: Callable[[int, T], dict[str, Any]], fixed: Mapping[str, Any] | None = None,
                   ) -> list[dict[str, Any]]:
    """The rows of ``statement(count)`` run for the items, ``ATTEMPTS_PER_LOOKUP`` at a time: item ``n`` of a
    chunk gives the parameters ``params_of(n, item)``, and every run takes ``fixed`` too."""
    rows = []
    for start in range(0, len(items), ATTEMPTS_PER_LOOKUP):
        chunk = items[start:start + ATTEMPTS_PER_LOOKUP]
        params = dict(fixed or {})
        for n, item in enumerate(chunk):
            params |= params_of(n, item)
        rows.extend(statement(len(chunk)).rows(connection, params))
    return rows


def rollout_and_attempt_read(project_id: str, rollout_id: str, attempt_id: str, *,
                             for_update: bool = False) -> tuple[Prepared, dict[str, Any]]:
    """The statement of ``Attempts.rollout_and_attempt`` and its parameters (``b_rollout``, ``b_project``, and
    ``b_attempt`` unless the latest), to run among others (``_statements.rows_of_each``); its rows go to
    ``Attempts.rollout_and_attempt_found``."""
    check_key("rollout", rollout_id)
    check_key("attempt", attempt_id)
    return ROLLOUT_WITH_ATTEMPT[(attempt_id == LATEST, for_update)], {
        "b_rollout": rollout_id, "b_project": project_id, **({} if attempt_id == LATEST else {"b_attempt": attempt_id})}


def rollout_and_attempt_of(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A row of ``ROLLOUT_THEN_ATTEMPT`` as the rollout's row and the attempt's (None when it has none)."""
    values = list(row.values())
    rollout = dict(zip(ROLLOUT_COLUMNS, values[:len(ROLLOUT_COLUMNS)]))
    if row["attempt_id"] is None:
        return rollout, None
    return rollout, dict(zip(ATTEMPT_COLUMNS, values[len(ROLLOUT_COLUMNS):]))


def by_distinct_rollouts(items: Iterable[T], rollout_of: Callable[[T], str | None]) -> Iterator[list[T]]:
    """``items`` in waves, in order, each wave naming each rollout at most once: a wave's changes can be made
    together with the effect of one after another."""
    wave: list[T] = []
    seen: set[str | None] = set()
    for item in items:
        if rollout_of(item) in seen:
            yield wave
            wave, seen = [], set()
        wave.append(item)
        seen.add(rollout_of(item))
    if wave:
        yield wave


def sign_of_life(attempt: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """What a sign of life of the attempt changes: its heartbeat, and its status when that revives it."""
    if attempt["status"] in REVIVED_BY_HEARTBEAT:
        return {"last_heartbeat_at": now, "status": A.RUNNING}
    return {"last_heartbeat_at": now}


def no_such_attempt(rollout_id: str, attempt_id: str) -> NotFoundError:
    if attempt_id == LATEST:
        return NotFoundError(f"rollout {rollout_id} has no attempt yet")
    return NotFoundError(f"attempt {attempt_id!r} not found for rollout {rollout_id!r}")


def rollout_status_for(attempt_status: str, sequence: int, config: Mapping[str, Any]) -> str:
    """What the rollout's status becomes when its latest attempt is in ``attempt_status``."""
    if attempt_status in (A.PREPARING, A.RUNNING, A.SUCCEEDED):
        return attempt_status
    policy = RolloutConfig.model_validate(config)
    if attempt_status in policy.retry_condition and sequence < policy.max_attempts:
        return RO.REQUEUING
    return RO.FAILED


class Attempts(Area[Attempt]):
    table = attempts
    record = Attempt
    noun = "attempt"
    entity_type = "attempt"
    filterable = frozenset({"id", "rollout_id", "sequence", "status", "worker_id", "created_at", "started_at",
                            "last_heartbeat_at"})
    sortable = frozenset({"sequence", "created_at", "started_at", "ended_at", "last_heartbeat_at", "status", "id",
                          "rollout_id", "worker_id"})
    updatable = frozenset({"status", "worker_id", "last_heartbeat_at", "metadata"})
    default_sort = "sequence"

    def start(self, rollout_id: str, worker_id: str | None = None) -> Claim:
        """Start a new attempt of an existing, unfinished rollout by hand (outside the queue)."""
        with self._store.writing() as connection:
            rollout = self._store.rollouts.fetch_row(connection, rollout_id, for_update=True)
            if rollout["status"] in states.TERMINAL["rollout"]:
                raise InvalidTransitionError(
                    f"rollout {rollout_id} is {rollout['status']}: a finished rollout gets no new attempt"
                )
            return self.started_by(connection, self._store.rollouts.claim_rows(connection, [rollout], worker_id)[0])

    def started_by(self, connection: Connection, claim: Claim) -> Claim:
        """A worker that starts an attempt by hand is busy with it, as one that dequeued it would be."""
        if claim.attempt.worker_id is not None:
            self._store.workers.follow_attempt(connection, claim.attempt.__dict__, claim.attempt.created_at)
        return claim

    def latest(self, rollout_id: str) -> Attempt | None:
        """The rollout's attempt with the highest sequence number, or None before its first attempt."""
        with self._store.reading() as connection:
            rollout = self._store.rollouts.fetch_row(connection, rollout_id)
            row = self._latest_row(connection, rollout)
        return None if row is None else self.to_record(row)

    def update(
        self, rollout_id: str, attempt_id: str = LATEST, *, reason: str | None = None, **changes: Any
    ) -> Attempt:
        """Update an attempt (``attempt_id`` or ``"latest"``): status, worker_id, last_heartbeat_at, metadata.

        A status change of the latest attempt moves the rollout too: running/succeeded follow it; failed,
        timeout and unresponsive requeue the rollout when that status is in its retry condition and
        attempts remain, else fail it.
        """
        self._check_updatable(changes)
        with self._store.writing() as connection:
            rollout, attempt = self.locate(connection, rollout_id, attempt_id, for_update=True)
            return self.apply_changes(connection, [(rollout, attempt, changes)], reason)[0]

    def update_many(self, updates: Sequence[Mapping[str, Any]], *, reason: str | None = None) -> list[Attempt]:
        """``update`` of several attempts in one transaction, each given as ``{"rollout_id": ..., "attempt_id":
        ... (default "latest"), **changes}``, with the same effect as one after another (an attempt or rollout
        named twice sees the change before): all of them, or none when one fails. Returns each attempt as
        updated, in order."""
        wanted = []
        for update in mappings("attempt update", updates):
            changes = {name: value for name, value in update.items() if name not in ("rollout_id", "attempt_id")}
            self._check_updatable(changes)
            wanted.append((update.get("rollout_id"), update.get("attempt_id", LATEST), changes))
        updated: list[Attempt | None] = [None] * len(wanted)
        with self._store.writing() as connection:
            for wave in by_distinct_rollouts(range(len(wanted)), lambda index: wanted[index][0]):
                located = self.locate_many(connection, [wanted[index][:2] for index in wave], for_update=True)
                done = self.apply_changes(connection, [(*located[wanted[index][:2]], wanted[index][2])
                                                       for index in wave], reason, positions=wave)
                for index, attempt in zip(wave, done):
                    updated[index] = attempt
        return updated

    # -- used by the queue, spans and the health check, inside their transactions -------------------

    def locate(self, connection: Connection, rollout_id: str, attempt_id: str, *,
                for_update: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
        """The rollout (locked with ``for_update``) and its attempt ``attempt_id`` or ``"latest"``."""
        rollout, attempt = self.rollout_and_attempt(connection, rollout_id, attempt_id, for_update=for_update)
        if attempt is None:
            raise no_such_attempt(rollout_id, attempt_id)
        return rollout, attempt

    def locate_many(self, connection: Connection, pairs: Sequence[tuple[str, str]], *, for_update: bool = False,
                    ) -> dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]]:
        """``locate`` for several (rollout id, attempt id or "latest") pairs: those naming their attempt by id found
        in one query, those naming the latest in another (``ATTEMPTS_PER_LOOKUP`` at a time), any not found (for
        ``locate``'s error) one by one."""
        found: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        for latest in (False, True):
            wanted = list(dict.fromkeys(pair for pair in pairs if (pair[1] == LATEST) == latest))
            for rollout_id, attempt_id in wanted:
                check_key("rollout", rollout_id)
                check_key("attempt", attempt_id)
            for row in rows_in_chunks(connection, functools.partial(_rollouts_with_attempts, for_update=for_update,
                                                                    latest=latest),
                                      wanted, lambda n, pair: {f"b_key_{n}": pair[0] if latest else pair[1]},
                                      {"b_project": self._store.project_id}):
                rollout, attempt = rollout_and_attempt_of(row)
                found[(rollout["id"], LATEST if latest else attempt["id"])] = (rollout, attempt)
        for pair in pairs:
            if pair not in found:
                found[pair] = self.locate(connection, *pair, for_update=for_update)
        return found

    def rollout_and_attempt(self, connection: Connection, rollout_id: str, attempt_id: str, *,
                            for_update: bool = False) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """``locate``, with None for an attempt the rollout does not have."""
        statement, params = rollout_and_attempt_read(self._store.project_id, rollout_id, attempt_id,
                                                     for_update=for_update)
        row = statement.first(connection, params)
        return self.rollout_and_attempt_found(rollout_id, [] if row is None else [row])

    def rollout_and_attempt_found(self, rollout_id: str, rows: Sequence[Mapping[str, Any]]
                                  ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The rollout and attempt rows ``rollout_and_attempt_read``'s statement returned; NotFoundError for none."""
        if not rows:
            raise self._store.rollouts.not_found(rollout_id)
        return rollout_and_attempt_of(rows[0])

    def _resolve(self, connection: Connection, rollout: Mapping[str, Any], attempt_id: str) -> Mapping[str, Any]:
        if attempt_id == LATEST:
            row = self._latest_row(connection, rollout)
        else:
            row = SELECT_OF_ROLLOUT.first(connection, {"b_id": attempt_id, "b_rollout": rollout["id"]})
        if row is None:
            raise no_such_attempt(rollout["id"], attempt_id)
        return row

    def _latest_row(self, connection: Connection, rollout: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return SELECT_BY_SEQUENCE.first(connection, {"b_rollout": rollout["id"], "b_sequence": rollout["attempt_count"]})

    def apply_changes(self, connection: Connection,
                      located: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]],
                      reason: str | None, positions: Sequence[int] | None = None) -> list[Attempt]:
        """Apply changes to attempts, given as (rollout, attempt, changes) of distinct rollouts, rows as read and
        locked; returns the attempts as written. ``positions``: their places in the caller's batch, which errors
        name (without, a single attempt's error names none)."""
        values = [{**attempt, **changes} for _, attempt, changes in located]
        merged = ([build_record(Attempt, values[0], "attempt")] if positions is None and len(values) == 1
                  else build_records(Attempt, values, "attempt", positions))
        written = self.change_rows(
            connection, [(attempt, {name: getattr(record, name) for name in changes})
                         for (_, attempt, changes), record in zip(located, merged)],
            reason, parents=[rollout for rollout, _, _ in located])
        for row, (_, _, changes) in zip(written, located):
            if changes.get("worker_id") and "status" not in changes:
                # A worker given an attempt takes it on, as a status change would have it (_after_status_change).
                self._store.workers.follow_attempt(connection, row, row["updated_at"])
        return [self.to_record(row) for row in written]

    def _after_status_change(self, connection, changed, reason, now, parents) -> None:
        # The rollout follows its latest attempt; the worker follows the attempt it runs. Rollouts the caller
        # holds are used as given, once: an attempt of a rollout already followed reads it again.
        held = {row["id"]: row for row in parents}
        for wave in by_distinct_rollouts(changed, lambda entry: entry[0]["rollout_id"]):
            follows: dict[str, list[tuple[Mapping[str, Any], str]]] = {}
            for attempt, _ in wave:
                rollout = held.pop(attempt["rollout_id"], None) or self._store.rollouts.fetch_row(
                    connection, attempt["rollout_id"], for_update=True)
                if attempt["sequence"] == rollout["attempt_count"]:
                    target = rollout_status_for(attempt["status"], attempt["sequence"], rollout["config"])
                    follows.setdefault(reason or f"attempt {attempt['status']}", []).append((rollout, target))
            for why, rows in follows.items():
                self._store.rollouts.follow_latest_attempts(connection, rows, now, why)
            for attempt, _ in wave:
                if attempt["worker_id"]:
                    self._store.workers.follow_attempt(connection, attempt, now)

    def _heartbeat(self, connection: Connection, rollout: Mapping[str, Any], attempt: Mapping[str, Any],
                   now: datetime) -> None:
        """An explicit sign of life: a preparing or unresponsive attempt runs again (spans do this as they
        reserve their sequence ids, see Spans._number)."""
        self.change_rows(connection, [(attempt, sign_of_life(attempt, now))], "heartbeat", now, parents=[rollout])

    def heartbeat(self, rollout_id: str, attempt_id: str = LATEST) -> Attempt:
        """Record that the attempt is alive (spans do this too)."""
        with self._store.writing() as connection:
            rollout, attempt = self.locate(connection, rollout_id, attempt_id, for_update=True)
            self._heartbeat(connection, rollout, attempt, self._store.now())
            return self.to_record(self._resolve(connection, rollout, attempt["id"]))

    def insert_next(self, connection: Connection, claimed: list[tuple[Mapping[str, Any], int]],
                    worker_id: str | None, now: datetime) -> list[Attempt]:
        """Create the next attempt (preparing) of each (rollout row, sequence)."""
        records = [
            Attempt(id=self._store.new_id("attempt"), project_id=self._store.project_id, rollout_id=rollout["id"],
                    sequence=sequence,
                    worker_id=worker_id, created_at=now, updated_at=now, started_at=now)
            for rollout, sequence in claimed
        ]
        if records:
            self.insert_rows(connection, [record.__dict__ for record in records], now)
        return records


__all__ = ["LATEST", "Attempts", "no_such_attempt", "rollout_status_for", "sign_of_life"]
