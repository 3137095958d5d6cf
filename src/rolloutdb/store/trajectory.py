"""A rollout read whole, as a viewer or a replay needs it: its turns in order, the artifacts each links (their
description, not their content), and one attempt's spans — in four indexed queries, whatever the number of turns
(the rollout and its attempt; the turns; their links with the artifacts; the spans), none of which waits for
another's answer: PostgreSQL gets them together and answers them in one round trip.

Turns that name an attempt belong to that attempt: a retried rollout's second attempt starts again at turn 0, so
a trajectory shows the turns of its attempt and those that name none."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, bindparam, or_, select

from ..records import Span, Trajectory, TrajectoryTurn, Turn, TurnArtifact
from ..schema import artifact_links, artifacts, attempts, rollouts, spans, turns
from ._statements import Prepared, rows_of_each
from .attempts import LATEST, no_such_attempt, rollout_and_attempt_read
from .base import collector_paused, stored_records

if TYPE_CHECKING:
    from . import Store

# The rollout's latest attempt, looked up inside each statement rather than before them, so that none needs
# another's answer.
_LATEST_ATTEMPT = (select(attempts.c.id)
                   .select_from(rollouts.join(attempts, and_(attempts.c.rollout_id == rollouts.c.id,
                                                             attempts.c.sequence == rollouts.c.attempt_count)))
                   .where(rollouts.c.id == bindparam("b_rollout"), rollouts.c.project_id == bindparam("b_project"))
                   .scalar_subquery())


@dataclass(frozen=True)
class _Reads:
    """A trajectory's statements after the rollout's, for the latest attempt or the one named (b_attempt)."""

    turns: Prepared
    linked: Prepared
    spans: Prepared


def _reads(attempt: ColumnElement) -> _Reads:
    # The turns of the rollout that are the attempt's (NULL matches none) or no attempt's.
    of_attempt = and_(turns.c.rollout_id == bindparam("b_rollout"), turns.c.project_id == bindparam("b_project"),
                      or_(turns.c.attempt_id.is_(None), turns.c.attempt_id == attempt))
    # The columns of each query in the order of its record's fields: the records are built from the rows as they
    # are (stored_records).
    return _Reads(
        turns=Prepared(select(*(turns.c[name] for name in Turn.model_fields)).where(of_attempt)
                       .order_by(turns.c.turn_index, turns.c.id)),
        # The links of those turns: the turns found first (by rollout), then their links by owner — written as IN,
        # since as a join SQLite may start from the links of every turn.
        linked=Prepared(
            select(artifact_links.c.owner_id.label("turn_id"), artifacts.c.sha256, artifact_links.c.role,
                   artifacts.c.media_type, artifacts.c.size, artifacts.c.compression)
            .select_from(artifact_links.join(artifacts, and_(artifacts.c.sha256 == artifact_links.c.sha256,
                                                             artifacts.c.project_id == artifact_links.c.project_id)))
            .where(artifact_links.c.owner_type == "turn", artifact_links.c.project_id == bindparam("b_project"),
                   artifact_links.c.owner_id.in_(select(turns.c.id).where(of_attempt)))
            .order_by(artifact_links.c.created_at, artifact_links.c.id)),
        spans=Prepared(select(*(spans.c[name] for name in Span.model_fields))
                       .where(spans.c.rollout_id == bindparam("b_rollout"), spans.c.attempt_id == attempt,
                              spans.c.project_id == bindparam("b_project"))
                       .order_by(spans.c.sequence_id)))


READS = {LATEST: _reads(_LATEST_ATTEMPT), "named": _reads(bindparam("b_attempt"))}


def trajectory(store: Store, rollout_id: str, attempt: str | None = None) -> Trajectory:
    """See ``Store.trajectory``."""
    read_rollout, params = rollout_and_attempt_read(store.project_id, rollout_id, LATEST if attempt is None else attempt)
    reads = READS[LATEST if "b_attempt" not in params else "named"]
    # A trajectory is thousands of new objects that stay alive and hold no cycles: the collector's runs among
    # them (a full one now and then, over the caller's whole heap) found nothing and made its slowest reads.
    with collector_paused():
        with store.reading(autocommit=True) as connection:
            found, turn_rows, linked, span_rows = rows_of_each(connection, [
                (read_rollout, params), (reads.turns, params), (reads.linked, params), (reads.spans, params)])
        rollout, chosen = store.attempts.rollout_and_attempt_found(rollout_id, found)
        if chosen is None and attempt is not None:
            raise no_such_attempt(rollout_id, attempt)
        # The turns, their artifacts and the spans as stored, not validated again (they were when written; again,
        # it took half the time of the whole); the rollout and its attempt in one validation.
        turn_of_link = [row.pop("turn_id") for row in linked]
        artifacts_of = defaultdict(list)
        for turn_id, artifact in zip(turn_of_link, stored_records(TurnArtifact, linked)):
            artifacts_of[turn_id].append(artifact)
        for row in turn_rows:
            row["artifacts"] = artifacts_of[row["id"]]
        return Trajectory.model_validate({
            "rollout": rollout, "attempt": chosen, "spans": stored_records(Span, span_rows),
            "turns": stored_records(TrajectoryTurn, turn_rows)})
