"""A rollout read whole, as a viewer or a replay needs it: its turns in order, the artifacts each links (their
description, not their content), and one attempt's spans — in four indexed queries, whatever the number of turns
(the rollout and its attempt; the turns; their links with the artifacts; the spans).

Turns that name an attempt belong to that attempt: a retried rollout's second attempt starts again at turn 0, so
a trajectory shows the turns of its attempt and those that name none."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import and_, bindparam, or_, select

from ..records import Span, Trajectory, TrajectoryTurn, Turn, TurnArtifact
from ..schema import artifact_links, artifacts, spans, turns
from ._statements import Prepared
from .attempts import LATEST, no_such_attempt
from .base import collector_paused, stored_records

if TYPE_CHECKING:
    from . import Store

# The turns of the rollout that are its attempt's (b_attempt; NULL matches none) or no attempt's.
_OF_ATTEMPT = and_(turns.c.rollout_id == bindparam("b_rollout"), turns.c.project_id == bindparam("b_project"),
                   or_(turns.c.attempt_id.is_(None), turns.c.attempt_id == bindparam("b_attempt")))
# The columns of each query in the order of its record's fields: the records are built from the rows as they are
# (stored_records).
TURNS = Prepared(select(*(turns.c[name] for name in Turn.model_fields)).where(_OF_ATTEMPT)
                 .order_by(turns.c.turn_index, turns.c.id))
# The links of those turns: the turns found first (by rollout), then their links by owner — written as IN, since
# as a join SQLite may start from the links of every turn.
LINKED = Prepared(
    select(artifact_links.c.owner_id.label("turn_id"), artifacts.c.sha256, artifact_links.c.role,
           artifacts.c.media_type, artifacts.c.size, artifacts.c.compression)
    .select_from(artifact_links.join(artifacts, and_(artifacts.c.sha256 == artifact_links.c.sha256,
                                                     artifacts.c.project_id == artifact_links.c.project_id)))
    .where(artifact_links.c.owner_type == "turn", artifact_links.c.project_id == bindparam("b_project"),
           artifact_links.c.owner_id.in_(select(turns.c.id).where(_OF_ATTEMPT)))
    .order_by(artifact_links.c.created_at, artifact_links.c.id))
SPANS = Prepared(select(*(spans.c[name] for name in Span.model_fields))
                 .where(spans.c.rollout_id == bindparam("b_rollout"), spans.c.attempt_id == bindparam("b_attempt"),
                        spans.c.project_id == bindparam("b_project"))
                 .order_by(spans.c.sequence_id))


def trajectory(store: Store, rollout_id: str, attempt: str | None = None) -> Trajectory:
    """See ``Store.trajectory``."""
    # A trajectory is thousands of new objects that stay alive and hold no cycles: the collector's runs among
    # them (a full one now and then, over the caller's whole heap) found nothing and made its slowest reads.
    with collector_paused():
        with store.reading(autocommit=True) as connection:
            rollout, chosen = store.attempts.rollout_and_attempt(connection, rollout_id,
                                                                  LATEST if attempt is None else attempt)
            if chosen is None and attempt is not None:
                raise no_such_attempt(rollout_id, attempt)
            params = {"b_rollout": rollout_id, "b_project": store.project_id,
                      "b_attempt": None if chosen is None else chosen["id"]}
            turn_rows = TURNS.rows(connection, params)
            linked = LINKED.rows(connection, params) if turn_rows else []
            span_rows = [] if chosen is None else SPANS.rows(connection, params)
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
