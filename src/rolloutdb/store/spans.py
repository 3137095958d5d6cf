"""Spans: the telemetry an attempt emits, ordered by a per-attempt sequence id. A span is a heartbeat."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, and_, bindparam, case, func, select, update

from ..errors import InvalidInputError
from ..ids import new_ids
from ..records import Span, python_scalar
from ..schema import attempts, rollouts, spans
from .attempts import ATTEMPTS_PER_LOOKUP, LATEST, REVIVED_BY_HEARTBEAT, rows_in_chunks, sign_of_life
from .base import DEFAULT_LIMIT, Area, Write, build_records, check_key, mappings
from ._bulk import bulk_insert
from ._statements import Prepared



def _attempt_ids(count: int) -> list[Any]:
    """The parameters ``b_id_0`` ... naming ``count`` attempts of a statement that changes each its own way."""
    return [bindparam(f"b_id_{n}") for n in range(count)]


def _each_attempt(count: int, name: str) -> Any:
    """Attempt ``b_id_n``'s own integer parameter ``{name}_n``, in a statement over ``count`` attempts."""
    return case(*((attempts.c.id == bindparam(f"b_id_{n}"), bindparam(f"{name}_{n}", type_=Integer))
                  for n in range(count)))


@functools.lru_cache(maxsize=4 * ATTEMPTS_PER_LOOKUP)
def _reserve_statement(count: int, dialect: str) -> Prepared:
    """Move the span counters of ``count`` attempts (``b_id_0`` ...) each up to at least its ``b_at_least_n``,
    then take its ``b_count_n`` ids; returns each attempt's id and new counter. Prepared once per count."""
    counter, larger_of = attempts.c.next_span_sequence, func.max if dialect == "sqlite" else func.greatest
    return Prepared(update(attempts).where(attempts.c.id.in_(_attempt_ids(count)))
                    .values(next_span_sequence=larger_of(counter, _each_attempt(count, "b_at_least"))
                            + _each_attempt(count, "b_count"))
                    .returning(attempts.c.id, counter))


_sibling = attempts.alias("sibling")


@functools.lru_cache(maxsize=ATTEMPTS_PER_LOOKUP)
def _reserve_across_rollouts(count: int) -> Prepared:
    """Take ``b_count_n`` ids from the count of the rollout of attempt ``b_id_n`` (for ``count`` attempts of
    distinct rollouts): the highest counter among the rollout's attempts, stored back on that attempt; returns
    each attempt's id and new counter. Prepared once per count."""
    highest = (select(func.max(_sibling.c.next_span_sequence))
               .where(_sibling.c.rollout_id == attempts.c.rollout_id, _sibling.c.project_id == attempts.c.project_id)
               .scalar_subquery())
    return Prepared(update(attempts).where(attempts.c.id.in_(_attempt_ids(count)))
                    .values(next_span_sequence=highest + _each_attempt(count, "b_count"))
                    .returning(attempts.c.id, attempts.c.next_span_sequence))


# A range, not an IN list: one short statement however large the batch.
TAKEN_IN_RANGE = Prepared(select(spans.c.sequence_id).where(
    spans.c.attempt_id == bindparam("b_attempt"), spans.c.sequence_id.between(bindparam("b_low"), bindparam("b_high"))))


SPAN_IDS_PER_LOOKUP = 64


def _handed_out(next_free: dict[str, int], keys: Sequence[str]) -> list[int]:
    """One reserved id for each key in turn, from its first free one on (``next_free`` moves on)."""
    handed = []
    for key in keys:
        handed.append(next_free[key])
        next_free[key] += 1
    return handed


@dataclass
class _Numbering:
    """How the spans a batch sends one attempt are numbered (see ``Spans._plan``)."""
    rollout: Mapping[str, Any]
    attempt: Mapping[str, Any]
    group: list[tuple[int, Mapping[str, Any]]]  # (place in the batch, fields)
    stored: set[int]  # given sequence ids the attempt has stored already
    missing: int  # spans without a sequence id: ids to reserve
    at_least: int  # past every given id
    alive: bool  # a sign of life: a span new to the attempt


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
            located = self._store.attempts.locate_many(connection, list(by_attempt), for_update=True)
            plans = [self._plan(connection, *located[pair], group) for pair, group in by_attempt.items()]
            numbered = [span for plan, next_free in zip(plans, self._reserve_for(connection, plans, now))
                        for span in self._number(plan, next_free, now, pending[plan.attempt["id"]])]
            if unique_span_ids:
                numbered = self._without_seen_span_ids(connection, numbered)
            return self._validate_and_insert(connection, numbered)

    def next_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        """Reserve the attempt's next span sequence id (1, 2, 3, ...)."""
        return self.next_sequence_ids([(rollout_id, attempt_id)])[0]

    def next_sequence_ids(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """Reserve one sequence id for each (rollout id, attempt id) pair, in one transaction."""
        with self._store.writing() as connection:
            located = self._store.attempts.locate_many(connection, pairs)
            attempt_ids = [located[pair][1]["id"] for pair in pairs]
            next_free = self._reserve_many(connection, [(attempt_id, count, 1) for attempt_id, count
                                                        in Counter(attempt_ids).items()])
        return _handed_out(next_free, attempt_ids)

    def next_sequence_ids_across_attempts(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """``next_sequence_ids`` counting per rollout across all its attempts (Agent Lightning's numbering):
        only the rollout of each pair matters, and it must have an attempt. Spans added with given ids move
        their rollout's count past them."""
        wanted = Counter(rollout_id for rollout_id, _ in pairs)
        next_free: dict[str, int] = {}
        with self._store.writing() as connection:
            located = self._store.attempts.locate_many(connection, [(rollout_id, LATEST) for rollout_id in wanted],
                                                       for_update=True)
            latest = {rollout_id: located[(rollout_id, LATEST)][1]["id"] for rollout_id in wanted}
            rollout_of = {attempt_id: rollout_id for rollout_id, attempt_id in latest.items()}
            for row in rows_in_chunks(connection, _reserve_across_rollouts, list(wanted.items()),
                                       lambda n, item: {f"b_id_{n}": latest[item[0]], f"b_count_{n}": item[1]}):
                rollout_id = rollout_of[row["id"]]
                next_free[rollout_id] = row["next_span_sequence"] - wanted[rollout_id]
        return _handed_out(next_free, [rollout_id for rollout_id, _ in pairs])

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

    def _plan(self, connection: Connection, rollout: Mapping[str, Any], attempt: Mapping[str, Any],
              group: list[tuple[int, Mapping[str, Any]]]) -> _Numbering:
        """What numbering the spans of one attempt takes: how many ids to reserve, past which of the given ones,
        and whether they are a sign of life (a span new to the attempt)."""
        given = [fields["sequence_id"] for _, fields in group if fields.get("sequence_id") is not None]
        stored = self._stored(connection, attempt, given)
        alive = len(given) < len(group) or any(sequence_id not in stored for sequence_id in given)
        return _Numbering(rollout, attempt, group, stored, len(group) - len(given), max(given, default=0) + 1, alive)

    def _reserve_for(self, connection: Connection, plans: list[_Numbering], now: datetime) -> list[int]:
        """Reserve the plans' sequence ids; returns the first id each plan takes. New spans count as their
        attempt's heartbeat, written with the reservation: one statement for all the attempts it merely keeps
        alive, one for all those it does not (only spans they have), and one each for those it revives (a
        status change). Plans of one attempt ("latest" and its id) share one reservation."""
        merged: dict[str, _Numbering] = {}
        for plan in plans:
            known = merged.get(plan.attempt["id"])
            merged[plan.attempt["id"]] = plan if known is None else replace(
                known, missing=known.missing + plan.missing, at_least=max(known.at_least, plan.at_least),
                alive=known.alive or plan.alive)
        first_free: dict[str, int] = {}

        def reserve(group: list[_Numbering], also: Mapping[str, Any]) -> None:
            first_free.update(self._reserve_many(connection, [(plan.attempt["id"], plan.missing, plan.at_least)
                                                              for plan in group], also))

        def reserve_with(group: list[_Numbering]) -> Write:
            return lambda connection, writes: reserve(group, writes[0][1] if writes else {})

        beating, quiet = [], []
        for plan in merged.values():
            if not plan.alive:
                quiet.append(plan)
            elif plan.attempt["status"] in REVIVED_BY_HEARTBEAT:
                self._store.attempts.change_rows(connection, [(plan.attempt, sign_of_life(plan.attempt, now))],
                                                 "heartbeat", now, write=reserve_with([plan]), parents=[plan.rollout])
            else:
                beating.append(plan)
        if beating:
            self._store.attempts.change_rows(connection, [(plan.attempt, sign_of_life(plan.attempt, now))
                                                          for plan in beating], "heartbeat", now,
                                             write=reserve_with(beating))
        if quiet:
            reserve(quiet, {})
        firsts = []
        for plan in plans:  # plans sharing an attempt take its ids one after another
            firsts.append(first_free[plan.attempt["id"]])
            first_free[plan.attempt["id"]] += plan.missing
        return firsts

    def _number(self, plan: _Numbering, next_free: int, now: datetime,
                pending: set[int]) -> list[tuple[int, dict[str, Any], bool]]:
        """Give the spans of one attempt their ids and sequence ids (from ``next_free`` on, where they have none):
        (place in the batch, values, whether the attempt has neither stored its sequence id nor has it
        ``pending``, which it joins)."""
        # The attempt's id ("latest" resolved) and the project are the store's, whatever the caller sent.
        fixed = {"attempt_id": plan.attempt["id"], "project_id": self._store.project_id}
        numbered = []
        row_ids = iter(new_ids(sum(1 for _, fields in plan.group if "id" not in fields)))  # a remote client makes its own
        for position, fields in plan.group:
            values = {"created_at": now, **fields, **fixed} if "id" in fields else {
                "id": next(row_ids), "created_at": now, **fields, **fixed}
            if values.get("sequence_id") is None:
                values["sequence_id"], next_free = next_free, next_free + 1
            sequence_id = values["sequence_id"]
            numbered.append((position, values, sequence_id not in plan.stored and sequence_id not in pending))
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

    def _reserve_many(self, connection: Connection, wanted: Sequence[tuple[str, int, int]],
                      also: Mapping[str, Any] | None = None) -> dict[str, int]:
        """For each (attempt id, count, at least): move the attempt's span counter up to ``at least``, then take
        ``count`` ids; returns the first id taken by each, by attempt id. ``also``: other columns of the
        attempts to set in the same statement (a heartbeat, written as their change: see ``_reserve_for``)."""
        taken = {attempt_id: count for attempt_id, count, _ in wanted}
        rows = rows_in_chunks(connection, functools.partial(_reserve_statement, dialect=connection.dialect.name),
                               wanted, lambda n, item: {f"b_id_{n}": item[0], f"b_count_{n}": item[1],
                                                        f"b_at_least_{n}": item[2]}, also)
        return {row["id"]: row["next_span_sequence"] - taken[row["id"]] for row in rows}

    def _stored(self, connection: Connection, attempt: Mapping[str, Any], sequence_ids: list[int]) -> set[int]:
        """Which of these sequence ids the attempt has stored already.

        Callers hold the rollout's row lock, so no other writer adds spans to this attempt meanwhile.
        Stored ids are all below the attempt's counter as it was read, so only ids below it can clash."""
        below = [sequence_id for sequence_id in sequence_ids if sequence_id < attempt["next_span_sequence"]]
        if not below:
            return set()
        return {row["sequence_id"] for row in TAKEN_IN_RANGE.rows(
            connection, {"b_attempt": attempt["id"], "b_low": min(below), "b_high": max(below)})}
