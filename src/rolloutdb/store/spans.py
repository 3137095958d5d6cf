"""Spans: the telemetry an attempt emits, ordered by a per-attempt sequence id. A span is a heartbeat."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select, update

from ..errors import InvalidInputError
from ..ids import new_ids
from ..records import Span, python_scalar
from ..schema import attempts, rollouts, spans
from .attempts import LATEST, sign_of_life
from .base import DEFAULT_LIMIT, Area, build_records, check_key, mappings
from ._bulk import bulk_insert
from ._statements import Prepared



def _reserve_statement(larger_of):
    """Move the attempt's span counter up to at least ``b_at_least``, then take ``b_count`` ids."""
    counter = attempts.c.next_span_sequence
    return Prepared(update(attempts).where(attempts.c.id == bindparam("b_id"))
            .values(next_span_sequence=larger_of(counter, bindparam("b_at_least")) + bindparam("b_count"))
            .returning(counter))


RESERVE_SQLITE = _reserve_statement(func.max)
RESERVE_POSTGRESQL = _reserve_statement(func.greatest)
_sibling = attempts.alias("sibling")
# Take ``b_count`` ids from the rollout's count: the highest counter among its attempts, stored back on one of them.
RESERVE_ACROSS_ROLLOUT = Prepared(
    update(attempts).where(attempts.c.id == bindparam("b_id"))
    .values(next_span_sequence=select(func.max(_sibling.c.next_span_sequence))
            .where(_sibling.c.rollout_id == bindparam("b_rollout"), _sibling.c.project_id == bindparam("b_project"))
            .scalar_subquery() + bindparam("b_count"))
    .returning(attempts.c.next_span_sequence))
# A range, not an IN list: one short statement however large the batch.
TAKEN_IN_RANGE = Prepared(select(spans.c.sequence_id).where(
    spans.c.attempt_id == bindparam("b_attempt"), spans.c.sequence_id.between(bindparam("b_low"), bindparam("b_high"))))


SPAN_IDS_PER_LOOKUP = 64


@functools.lru_cache(maxsize=SPAN_IDS_PER_LOOKUP)
def _stored_span_ids(count: int) -> Prepared:
    """Which of ``count`` (rollout, attempt, span id) triples (``b_rollout_0``, ``b_attempt_0``, ``b_span_0`` ...)
    are stored, or rather a superset: the rows of any of the rollouts and attempts with any of the span ids, which
    the caller matches to its triples (the (rollout, attempt, span id) index's terms, so that the lookup does not
    read every span of an attempt). Prepared once per count, since building the statement costs more than
    running it."""
    def any_of(column, name):
        return column.in_([bindparam(f"{name}_{n}") for n in range(count)])

    return Prepared(select(spans.c.attempt_id, spans.c.span_id).where(
        any_of(spans.c.rollout_id, "b_rollout"), any_of(spans.c.attempt_id, "b_attempt"),
        any_of(spans.c.span_id, "b_span")))


class Spans(Area[Span]):
    table = spans
    record = Span
    noun = "span"
    filterable = frozenset({"id", "rollout_id", "attempt_id", "sequence_id", "trace_id", "span_id", "parent_id", "name",
                            "start_time", "end_time", "created_at"})
    sortable = frozenset({"sequence_id", "start_time", "end_time", "name", "created_at", "rollout_id", "attempt_id",
                          "trace_id", "span_id", "parent_id"})
    default_sort = "sequence_id"

    def add(self, *, unique_span_ids: bool = False, **fields: Any) -> Span | None:
        """Store one span; returns None when a span with its (rollout, attempt, sequence id) exists already
        (with ``unique_span_ids``, or its (rollout, attempt, span_id): see ``add_many``)."""
        added = self.add_many([fields], unique_span_ids=unique_span_ids)
        return added[0] if added else None

    def add_many(self, new_spans: Iterable[Mapping[str, Any]], *, unique_span_ids: bool = False) -> list[Span]:
        """Store spans in one transaction and return those that were new (duplicates are skipped).

        Spans without a ``sequence_id`` get the attempt's next ones; given ids keep the counter ahead of
        them. Every attempt that sent spans counts as alive: preparing or unresponsive ones run again.
        With ``unique_span_ids``, a span whose ``span_id`` its attempt has stored (or that came earlier in
        the batch) is a duplicate too: Agent Lightning's rule."""
        by_attempt: dict[tuple[str, str], list[tuple[int, Mapping[str, Any]]]] = defaultdict(list)
        for position, fields in enumerate(mappings("span", new_spans)):
            if "rollout_id" not in fields or "attempt_id" not in fields:
                raise InvalidInputError(f"every span needs a rollout_id and an attempt_id (span #{position} lacks one)")
            check_key("rollout", fields["rollout_id"])
            check_key("attempt", fields["attempt_id"])
            given = fields.get("sequence_id")
            sequence_id = python_scalar(given)
            if sequence_id is not None and type(sequence_id) is not int:
                raise InvalidInputError(
                    f"invalid span: span #{position}: sequence_id: must be an integer, got {sequence_id!r}")
            if sequence_id is not given:  # a NumPy int: numbered as the int it holds
                fields = {**fields, "sequence_id": sequence_id}
            by_attempt[(fields["rollout_id"], fields["attempt_id"])].append((position, fields))
        # Sequence ids taken in this call, per attempt: "latest" and the attempt's id may name the same one.
        pending: dict[str, set[int]] = defaultdict(set)
        with self._store.writing() as connection:
            now = self._store.now()
            numbered: list[tuple[int, dict[str, Any], bool]] = []
            located = self._store.attempts.locate_many(connection, list(by_attempt), for_update=True)
            for pair, group in by_attempt.items():
                rollout, attempt = located[pair]
                numbered.extend(self._number(connection, rollout, attempt, group, now, pending[attempt["id"]]))
            if unique_span_ids:
                numbered = self._without_seen_span_ids(connection, numbered)
            return self._validate_and_insert(connection, numbered)

    def next_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        """Reserve the attempt's next span sequence id (1, 2, 3, ...)."""
        return self.next_sequence_ids([(rollout_id, attempt_id)])[0]

    def next_sequence_ids(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """Reserve one sequence id for each (rollout id, attempt id) pair, in one transaction."""
        with self._store.writing() as connection:
            result = []
            for rollout_id, attempt_id in pairs:
                _, attempt = self._store.attempts.locate(connection, rollout_id, attempt_id)
                result.append(self._reserve(connection, attempt["id"], 1))
            return result

    def next_sequence_ids_across_attempts(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """``next_sequence_ids`` counting per rollout across all its attempts (Agent Lightning's numbering):
        only the rollout of each pair matters, and it must have an attempt. Spans added with given ids move
        their rollout's count past them."""
        wanted = Counter(rollout_id for rollout_id, _ in pairs)
        next_free: dict[str, int] = {}
        with self._store.writing() as connection:
            for rollout_id, count in wanted.items():
                _, latest = self._store.attempts.locate(connection, rollout_id, LATEST, for_update=True)
                next_free[rollout_id] = RESERVE_ACROSS_ROLLOUT.scalar(connection, {
                    "b_id": latest["id"], "b_rollout": rollout_id, "b_project": self._store.project_id,
                    "b_count": count}) - count
        result = []
        for rollout_id, _ in pairs:
            result.append(next_free[rollout_id])
            next_free[rollout_id] += 1
        return result

    def query(self, rollout_id: str | None = None, attempt_id: str | None = LATEST, *, sort: str | None = None,
              order: str = "asc", limit: int | None = DEFAULT_LIMIT, offset: int = 0, match: str = "all",
              **filters: Any) -> list[Span]:
        """Spans of a rollout: of its ``"latest"`` attempt (the default), of one attempt, or of all
        (``attempt_id=None``); without a rollout, of every attempt (or of ``attempt_id``). ``filters``,
        ``match``, sorting and paging are those of every area's ``query``; sorted by sequence id unless
        ``sort`` says otherwise."""
        return self._query(self._of(rollout_id, attempt_id), filters, sort=sort, order=order, limit=limit,
                           offset=offset, match=match)

    def count(self, rollout_id: str | None = None, attempt_id: str | None = LATEST, *, match: str = "all",
              **filters: Any) -> int:
        """How many spans ``query`` finds with the same arguments, regardless of its limit."""
        return self._count(self._of(rollout_id, attempt_id), filters, match)

    def _of(self, rollout_id: str | None, attempt_id: str | None) -> list[Any]:
        """Conditions for the spans of a rollout's attempt (``"latest"``: the one its attempt count names)."""
        for noun, key in (("rollout", rollout_id), ("attempt", attempt_id)):
            if key is not None:
                check_key(noun, key)
        if rollout_id is None:
            return [] if attempt_id in (None, LATEST) else [spans.c.attempt_id == attempt_id]
        if attempt_id is None:
            return [spans.c.rollout_id == rollout_id]
        if attempt_id == LATEST:
            attempt_id = (select(attempts.c.id)
                          .join(rollouts, and_(rollouts.c.id == attempts.c.rollout_id,
                                               rollouts.c.attempt_count == attempts.c.sequence))
                          .where(rollouts.c.id == rollout_id, rollouts.c.project_id == self._store.project_id)
                          .scalar_subquery())
        return [spans.c.rollout_id == rollout_id, spans.c.attempt_id == attempt_id]

    # -- building blocks ------------------------------------------------------------------------------

    def _number(self, connection: Connection, rollout: Mapping[str, Any], attempt: Mapping[str, Any],
                group: list[tuple[int, Mapping[str, Any]]], now: datetime,
                pending: set[int]) -> list[tuple[int, dict[str, Any], bool]]:
        """Give the spans of one attempt their ids and sequence ids: (place in the batch, values, whether
        the attempt has neither stored its sequence id nor has it ``pending``, which it joins). New spans
        count as the attempt's heartbeat."""
        given = [fields["sequence_id"] for _, fields in group if fields.get("sequence_id") is not None]
        missing = len(group) - len(given)
        stored = self._stored(connection, attempt, given)
        alive = missing > 0 or any(sequence_id not in stored and sequence_id not in pending for sequence_id in given)
        at_least = max(given, default=0) + 1
        reserved: list[int] = []

        def reserve(connection: Connection, writes: list[tuple[Mapping[str, Any], dict[str, Any]]]) -> None:
            also = writes[0][1] if writes else {}
            reserved.append(self._reserve(connection, attempt["id"], missing, at_least=at_least, also=also))

        if alive:  # the heartbeat, and the status change when it revives the attempt, go with the reservation
            self._store.attempts.change_rows(connection, [(attempt, sign_of_life(attempt, now))], "heartbeat", now,
                                         write=reserve, parent=rollout)
        else:
            reserve(connection, [])
        next_free = reserved[0]
        # The attempt's id ("latest" resolved) and the project are the store's, whatever the caller sent.
        fixed = {"attempt_id": attempt["id"], "project_id": self._store.project_id}
        numbered = []
        row_ids = iter(new_ids(sum(1 for _, fields in group if "id" not in fields)))  # a remote client makes its own
        for position, fields in group:
            values = {"created_at": now, **fields, **fixed} if "id" in fields else {
                "id": next(row_ids), "created_at": now, **fields, **fixed}
            if values.get("sequence_id") is None:
                values["sequence_id"], next_free = next_free, next_free + 1
            sequence_id = values["sequence_id"]
            numbered.append((position, values, sequence_id not in stored and sequence_id not in pending))
            pending.add(sequence_id)  # a duplicate within the batch counts as well
        return numbered

    def _validate_and_insert(self, connection: Connection,
                             numbered: list[tuple[int, dict[str, Any], bool]]) -> list[Span]:
        """Validate every span (a bad one stops it all; the caller rolls back) and insert the new ones."""
        records = build_records(Span, [values for _, values, _ in numbered], "span",
                                positions=[position for position, _, _ in numbered])
        added = [record for record, (_, _, is_new) in zip(records, numbered) if is_new]
        bulk_insert(connection, spans, [record.__dict__ for record in added])
        return added

    def _without_seen_span_ids(self, connection: Connection,
                               numbered: list[tuple[int, dict[str, Any], bool]]) -> list[tuple[int, dict[str, Any], bool]]:
        """``numbered`` with each new span whose (attempt, span_id) is stored, or new earlier in it, not new."""
        wanted = sorted({(values["rollout_id"], values["attempt_id"], str(values.get("span_id")))
                         for _, values, is_new in numbered if is_new})
        seen: set[tuple[str, str]] = set()
        for start in range(0, len(wanted), SPAN_IDS_PER_LOOKUP):
            chunk = wanted[start:start + SPAN_IDS_PER_LOOKUP]
            params = {}
            for n, (rollout_id, attempt_id, span_id) in enumerate(chunk):
                params |= {f"b_rollout_{n}": rollout_id, f"b_attempt_{n}": attempt_id, f"b_span_{n}": span_id}
            asked = {(attempt_id, span_id) for _, attempt_id, span_id in chunk}
            seen.update(key for key in ((row["attempt_id"], row["span_id"])
                                        for row in _stored_span_ids(len(chunk)).rows(connection, params))
                        if key in asked)
        result = []
        for position, values, is_new in numbered:
            key = (values["attempt_id"], str(values.get("span_id")))
            result.append((position, values, is_new and key not in seen))
            if is_new:
                seen.add(key)
        return result

    def _reserve(self, connection: Connection, attempt_id: str, count: int, at_least: int = 1,
                 also: Mapping[str, Any] | None = None) -> int:
        """Take ``count`` sequence ids from the attempt's counter, first moving it up to ``at_least``;
        returns the first id taken. ``also``: other columns of the attempt to set in the same statement
        (a heartbeat, written as the attempt's change: see Spans._number)."""
        reserve = RESERVE_SQLITE if connection.dialect.name == "sqlite" else RESERVE_POSTGRESQL
        return reserve.scalar(connection, {"b_id": attempt_id, "b_at_least": at_least, "b_count": count,
                                           **(also or {})}) - count

    def _stored(self, connection: Connection, attempt: Mapping[str, Any], sequence_ids: list[int]) -> set[int]:
        """Which of these sequence ids the attempt has stored already.

        Callers hold the rollout's row lock, so no other writer adds spans to this attempt meanwhile.
        Stored ids are all below the attempt's counter as it was read, so only ids below it can clash."""
        below = [sequence_id for sequence_id in sequence_ids if sequence_id < attempt["next_span_sequence"]]
        if not below:
            return set()
        return {row["sequence_id"] for row in TAKEN_IN_RANGE.rows(
            connection, {"b_attempt": attempt["id"], "b_low": min(below), "b_high": max(below)})}
