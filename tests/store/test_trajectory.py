"""store.trajectory: a rollout read whole — its turns in order with their artifacts, and one attempt's spans — on
every backend, through a server too, in a fixed number of queries."""

import pytest
from sqlalchemy import event

from rolloutdb import Trajectory
from rolloutdb.errors import InvalidInputError, NotFoundError


def spans_of(claim, *names):
    return [{"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "trace_id": "t", "span_id": name,
             "name": name} for name in names]


def test_a_trajectory_holds_the_rollout_its_turns_in_order_their_artifacts_and_the_spans(store):
    claim = store.rollouts.start({"task": "open settings"})
    rollout, attempt = claim.rollout, claim.attempt
    # Written out of order: the trajectory orders turns by index, links by when they were made.
    later = store.turns.create(rollout_id=rollout.id, attempt_id=attempt.id, turn_index=1, action={"type": "tap", "x": 3, "y": 4})
    first = store.turns.create(rollout_id=rollout.id, attempt_id=attempt.id, turn_index=0, thinking="look first")
    before = store.artifacts.put(b"before pixels", "image/png", turn_id=later.id, role="before")
    after = store.artifacts.put(b"after pixels" * 10, "image/png", turn_id=later.id, role="after")
    store.artifacts.link(before, turn_id=first.id, role="screenshot")
    store.artifacts.put(b"the rollout's own", rollout_id=rollout.id)  # not a turn's: not in a turn's list
    store.spans.add_many(spans_of(claim, "llm", "tool", "llm-2"))
    other = store.rollouts.start()  # another rollout's rows stay out
    store.turns.create(rollout_id=other.rollout.id, turn_index=0)
    store.spans.add_many(spans_of(other, "elsewhere"))

    trajectory = store.trajectory(rollout.id)
    assert isinstance(trajectory, Trajectory)
    assert (trajectory.rollout.id, trajectory.attempt.id) == (rollout.id, attempt.id)
    assert [(turn.id, turn.turn_index) for turn in trajectory.turns] == [(first.id, 0), (later.id, 1)]
    assert trajectory.turns[0].thinking == "look first" and trajectory.turns[1].action == {"type": "tap", "x": 3, "y": 4}
    assert [(a.sha256, a.role, a.media_type, a.size) for a in trajectory.turns[1].artifacts] == [
        (before.sha256, "before", "image/png", 13), (after.sha256, "after", "image/png", 120)]
    assert [(a.sha256, a.role) for a in trajectory.turns[0].artifacts] == [(before.sha256, "screenshot")]
    assert [span.name for span in trajectory.spans] == ["llm", "tool", "llm-2"]
    assert [span.sequence_id for span in trajectory.spans] == [1, 2, 3]
    assert store.trajectory(rollout.id, attempt="latest") == trajectory


def test_the_trajectory_of_an_attempt_has_its_turns_and_spans_and_those_of_no_attempt(store):
    claim = store.rollouts.start()
    rollout = claim.rollout
    store.turns.create(rollout_id=rollout.id, turn_index=0, thinking="the rollout's, of no attempt")
    store.turns.create(rollout_id=rollout.id, attempt_id=claim.attempt.id, turn_index=1, thinking="first try")
    store.spans.add_many(spans_of(claim, "first-try"))
    retry = store.attempts.start(rollout.id)  # by hand: the first is left behind
    store.turns.create(rollout_id=rollout.id, attempt_id=retry.attempt.id, turn_index=1, thinking="second try")
    store.spans.add_many(spans_of(retry, "second-try"))

    latest = store.trajectory(rollout.id)
    assert latest.attempt.id == retry.attempt.id and latest.attempt.sequence == 2
    assert [turn.thinking for turn in latest.turns] == ["the rollout's, of no attempt", "second try"]
    assert [span.name for span in latest.spans] == ["second-try"]
    earlier = store.trajectory(rollout.id, attempt=claim.attempt.id)
    assert earlier.attempt.id == claim.attempt.id and earlier.rollout == latest.rollout
    assert [turn.thinking for turn in earlier.turns] == ["the rollout's, of no attempt", "first try"]
    assert [span.name for span in earlier.spans] == ["first-try"]


def test_a_rollout_not_started_yet_has_no_attempt_and_no_spans(store):
    queued = store.rollouts.enqueue({"task": "later"})
    store.turns.create(rollout_id=queued.id, turn_index=0)
    trajectory = store.trajectory(queued.id)
    assert trajectory.rollout.id == queued.id and trajectory.attempt is None and trajectory.spans == []
    assert [turn.turn_index for turn in trajectory.turns] == [0] and trajectory.turns[0].artifacts == []
    with pytest.raises(NotFoundError, match="has no attempt yet"):
        store.trajectory(queued.id, attempt="latest")


def test_unknown_rollouts_and_attempts_are_not_found_and_bad_ids_refused(store):
    claim = store.rollouts.start()
    with pytest.raises(NotFoundError, match="rollout 'no-such-rollout' not found in project"):
        store.trajectory("no-such-rollout")
    with pytest.raises(NotFoundError, match="attempt 'no-such-attempt' not found for rollout"):
        store.trajectory(claim.rollout.id, attempt="no-such-attempt")
    other = store.rollouts.start()
    with pytest.raises(NotFoundError, match="not found for rollout"):  # an attempt, but another rollout's
        store.trajectory(claim.rollout.id, attempt=other.attempt.id)
    for bad in (None, 7, "nul\x00"):
        with pytest.raises(InvalidInputError):
            store.trajectory(bad)
    with pytest.raises(InvalidInputError):
        store.trajectory(claim.rollout.id, attempt=3)


def test_a_trajectory_takes_four_statements_however_many_turns_and_artifacts(tmp_path):
    """No query per turn: the statements SQLite runs for a trajectory of 3 turns and of 60, counted."""
    import rolloutdb

    with rolloutdb.connect(f"sqlite:///{tmp_path / 'count.db'}") as store:
        statements: list[str] = []
        event.listen(store.engine, "checkout",
                     lambda connection, *_: connection.set_trace_callback(statements.append))
        counts = []
        for turns in (3, 60):
            claim = store.rollouts.start()
            for index in range(turns):
                turn = store.turns.create(rollout_id=claim.rollout.id, turn_index=index)
                store.artifacts.put(f"shot {index}".encode(), "image/png", turn_id=turn.id, role="screenshot")
            store.spans.add_many(spans_of(claim, *(f"span-{n}" for n in range(turns))))
            statements.clear()
            trajectory = store.trajectory(claim.rollout.id)
            assert len(trajectory.turns) == len(trajectory.spans) == turns
            assert all(len(turn.artifacts) == 1 for turn in trajectory.turns)
            counts.append(len([sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]))
        assert counts == [4, 4]


def test_a_trajectorys_spans_are_the_records_spans_query_returns(store):
    """The spans a trajectory holds are built from their rows without a second validation: they must be the very
    records spans.query validates, every field (and its set of given fields) alike, and behave as records."""
    from datetime import datetime, timezone

    claim = store.rollouts.start()
    started = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    store.spans.add_many([
        {"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "trace_id": "t", "span_id": "full",
         "parent_id": "p", "name": "llm.call", "status": {"status_code": "ERROR", "description": "timeout"},
         "attributes": {"model": "policy-7b", "tokens": 512, "ratio": 0.5, "nested": {"a": [1, None, True]}},
         "events": [{"name": "retry", "attributes": {}}], "links": [{"trace_id": "u"}], "context": {"k": "v"},
         "parent": {"span_id": "p"}, "resource": {"service": "phone"}, "start_time": started,
         "end_time": started},
        *spans_of(claim, "bare")])

    spans = store.trajectory(claim.rollout.id).spans
    expected = store.spans.query(claim.rollout.id)
    assert spans == expected
    for span, record in zip(spans, expected):
        assert repr(span) == repr(record)  # the fields in order, the times in the same zone
        assert span.model_dump() == record.model_dump() and span.model_dump_json() == record.model_dump_json()
        assert span.model_fields_set == record.model_fields_set
    spans[0].name = "renamed"  # assignment is validated as on any record
    with pytest.raises(ValueError):
        spans[0].sequence_id = "one"


def test_a_trajectorys_turns_are_the_records_turns_get_returns_with_their_artifacts(store):
    """The turns and their artifacts are built from their rows without a second validation, as the spans are: each
    turn must be the very record turns.get validates, every field (and its set of given fields) alike."""
    claim = store.rollouts.start()
    full = store.turns.create(
        rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=0, kind="action",
        observation={"screen": "home", "elements": [1, 2.5, None]}, thinking="tap settings",
        action={"type": "tap", "x": 540, "y": 80}, action_result={"ok": True}, model_response="tap(540, 80)",
        reward=0.5, done=False, duration_seconds=1.25, success=True, error="none", metrics={"latency": 0.2},
        tokens=[1, 2, 3], logprobs=[-0.1, -0.2])
    bare = store.turns.create(rollout_id=claim.rollout.id, turn_index=1)
    shot = store.artifacts.put(b"pixels", "image/png", turn_id=full.id, role="screenshot")

    trajectory = store.trajectory(claim.rollout.id)
    for turn, stored in zip(trajectory.turns, (store.turns.get(full.id), store.turns.get(bare.id))):
        as_turn = turn.model_dump(exclude={"artifacts"})
        assert as_turn == stored.model_dump() and list(as_turn) == list(stored.model_dump())
        assert {name: getattr(turn, name) for name in type(stored).model_fields} == dict(stored)
        assert turn.model_fields_set == stored.model_fields_set | {"artifacts"}
    assert [a.model_dump() for a in trajectory.turns[0].artifacts] == [
        {"sha256": shot.sha256, "role": "screenshot", "media_type": "image/png", "size": 6, "compression": None}]
    assert trajectory.turns[1].artifacts == [] and trajectory.turns[0].artifacts is not trajectory.turns[1].artifacts
    assert trajectory.turns[0].created_at.tzinfo is stored.created_at.tzinfo
    trajectory.turns[1].reward = 1.0  # records as validated ones: assignment is checked
    with pytest.raises(ValueError):
        trajectory.turns[1].turn_index = "one"


@pytest.mark.postgresql
def test_on_postgresql_a_trajectorys_statements_stay_prepared(postgres_databases):
    """A trajectory's statements run outside a transaction on PostgreSQL: psycopg prepares a statement run a few
    times on a connection, and drops all it prepared at each ROLLBACK, which ended every read transaction."""
    import rolloutdb

    with rolloutdb.connect(postgres_databases.new()) as store:
        claim = store.rollouts.start()
        store.turns.create(rollout_id=claim.rollout.id, turn_index=0)
        store.spans.add_many(spans_of(claim, "llm"))
        for _ in range(8):  # one thread: the pool's one connection each time
            store.trajectory(claim.rollout.id)
        with store.engine.connect() as connection:
            prepared = connection.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
    assert any("FROM spans" in statement for statement in prepared), prepared
    assert any("FROM turns" in statement for statement in prepared), prepared


@pytest.mark.postgresql
def test_on_postgresql_a_trajectory_takes_one_round_trip(postgres_databases, tmp_path):
    """Its statements wait for no answer of another's: sent together, answered together (psycopg's pipeline mode),
    for the latest attempt or a named one. Counted in libpq's trace of the connection: each time the client has
    sent and the server answers is one round trip."""
    import psycopg

    import rolloutdb

    trace = (tmp_path / "trace").open("w+")

    def traced(dbapi_connection, *_):
        dbapi_connection.pgconn.trace(trace.fileno())
        dbapi_connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

    def untraced(dbapi_connection, _):
        dbapi_connection.pgconn.untrace()

    def read_counting_round_trips(store, **attempt):
        trace.seek(0)
        trace.truncate()
        event.listen(store.engine, "checkout", traced)
        event.listen(store.engine, "checkin", untraced)
        try:
            trajectory = store.trajectory(claim.rollout.id, **attempt)
        finally:
            event.remove(store.engine, "checkout", traced)
            event.remove(store.engine, "checkin", untraced)
        trace.seek(0)
        senders = [line.split("\t")[0] for line in trace.read().splitlines() if line[:1] in ("F", "B")]
        return trajectory, sum(1 for pair in zip(senders, senders[1:]) if pair == ("F", "B"))

    with rolloutdb.connect(postgres_databases.new()) as store:
        claim = store.rollouts.start()
        turn = store.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=0)
        store.artifacts.put(b"pixels", "image/png", turn_id=turn.id, role="screenshot")
        store.spans.add_many(spans_of(claim, "llm", "tool"))
        store.trajectory(claim.rollout.id)  # the pool's connection opened, its session set up
        for attempt in ({}, {"attempt": claim.attempt.id}):
            trajectory, round_trips = read_counting_round_trips(store, **attempt)
            assert round_trips == 1
            assert [len(trajectory.turns), len(trajectory.turns[0].artifacts), len(trajectory.spans)] == [1, 1, 2]
