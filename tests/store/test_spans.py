"""Spans: per-attempt sequence ids, duplicates skipped, heartbeats, queries."""

import gc
import threading

import numpy
import pytest

from rolloutdb.errors import InvalidInputError, NotFoundError


def span(claim, name="llm", **fields):
    return {"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "trace_id": "trace-1",
            "span_id": f"span-{name}", "name": name, **fields}


def test_sequence_ids_count_up_per_attempt(store):
    first, second = store.rollouts.start("a"), store.rollouts.start("b")
    added = store.spans.add_many([span(first, "x"), span(first, "y"), span(second, "z")])
    assert [(s.attempt_id, s.sequence_id) for s in added] == [
        (first.attempt.id, 1), (first.attempt.id, 2), (second.attempt.id, 1)]
    assert store.spans.next_sequence_id(first.rollout.id, first.attempt.id) == 3
    assert store.spans.add(**span(first, "w")).sequence_id == 4


def test_caller_supplied_sequence_ids_keep_the_counter_ahead(store):
    claim = store.rollouts.start("a")
    store.spans.add(**span(claim, "explicit"), sequence_id=10)
    assert store.spans.add(**span(claim, "auto")).sequence_id == 11
    assert store.spans.next_sequence_ids([(claim.rollout.id, claim.attempt.id)] * 2) == [12, 13]


def test_duplicate_spans_are_skipped(store):
    claim = store.rollouts.start("a")
    assert store.spans.add(**span(claim, "one"), sequence_id=1) is not None
    assert store.spans.add(**span(claim, "again"), sequence_id=1) is None
    added = store.spans.add_many([span(claim, "dup", sequence_id=1), span(claim, "new", sequence_id=2)])
    assert [s.name for s in added] == ["new"]
    assert [s.name for s in store.spans.query(claim.rollout.id)] == ["one", "new"]


def test_a_batch_returns_its_new_spans_as_they_are_stored(store):
    """What add_many returns is the stored spans themselves, whatever the batch gave: times with an offset, an id
    of the caller's, JSON values of every kind, a duplicate left out (through a server too, where the answer
    carries only what the store made: see the remote client)."""
    import uuid
    from datetime import datetime, timedelta, timezone

    claim = store.rollouts.start("a")
    own_id = f"span-of-my-own-{uuid.uuid4().hex}"  # the backends share a database
    start = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    added = store.spans.add_many([
        span(claim, "first", sequence_id=1),
        span(claim, "duplicate", sequence_id=1),
        span(claim, "timed", start_time=start, end_time=start + timedelta(seconds=1.5), status={"code": "OK"},
             attributes={"list": [1, 2.5, None, True], "nested": {"text": "ü"}}, events=[{"name": "e"}]),
        span(claim, "own-id", id=own_id, attempt_id="latest")])
    assert [s.name for s in added] == ["first", "timed", "own-id"]
    assert added == store.spans.query(claim.rollout.id)
    assert added[2].id == own_id and added[2].attempt_id == claim.attempt.id


def test_sequence_ids_across_attempts_count_per_rollout(store):
    first, second = store.rollouts.start("a"), store.rollouts.start("b")
    retry = store.attempts.start(first.rollout.id)
    pairs = [(first.rollout.id, first.attempt.id), (second.rollout.id, second.attempt.id),
             (first.rollout.id, retry.attempt.id), (first.rollout.id, first.attempt.id)]
    assert store.spans.next_sequence_ids_across_attempts(pairs) == [1, 1, 2, 3]
    store.spans.add(**span(first, "explicit"), sequence_id=9)  # on the older attempt: still the rollout's count
    assert store.spans.next_sequence_ids_across_attempts([(first.rollout.id, retry.attempt.id)]) == [10]
    with pytest.raises(NotFoundError, match="has no attempt yet"):
        store.spans.next_sequence_ids_across_attempts([(store.rollouts.enqueue("c").id, "latest")])


def test_one_batch_across_attempts_numbers_and_keeps_alive_each_on_its_own(store):
    """A batch for several attempts: each counts its own sequence ids (given ones keep its counter ahead), a
    preparing attempt that sends a span runs, a running one gets a heartbeat, and an attempt that sent only
    spans it has already is neither kept alive nor moved on."""
    preparing, running, repeating = (store.rollouts.start(name) for name in ("a", "b", "c"))
    store.spans.add(**span(running, "earlier"))
    store.spans.add(**span(repeating, "earlier"), sequence_id=5)
    before = {claim.attempt.id: store.attempts.latest(claim.rollout.id) for claim in (running, repeating)}
    added = store.spans.add_many([span(preparing, "p1"), span(running, "r1"), span(repeating, "again", sequence_id=5),
                                  span(preparing, "p2", sequence_id=7), span(running, "r2"), span(preparing, "p3")])
    assert sorted((s.name, s.sequence_id) for s in added) == [("p1", 8), ("p2", 7), ("p3", 9), ("r1", 2), ("r2", 3)]
    assert store.attempts.latest(preparing.rollout.id).status == "running"
    assert store.rollouts.get(preparing.rollout.id).status == "running"
    beaten = store.attempts.latest(running.rollout.id)
    assert beaten.last_heartbeat_at > before[running.attempt.id].last_heartbeat_at
    assert store.attempts.latest(repeating.rollout.id) == before[repeating.attempt.id]
    assert store.spans.next_sequence_ids([(preparing.rollout.id, "latest"), (running.rollout.id, running.attempt.id),
                                          (repeating.rollout.id, repeating.attempt.id),
                                          (preparing.rollout.id, preparing.attempt.id)]) == [10, 4, 6, 11]


def test_unique_span_ids_skip_a_span_id_the_attempt_has(store):
    claim = store.rollouts.start("a")
    store.spans.add(**span(claim, "one"), unique_span_ids=True)
    added = store.spans.add_many([span(claim, "one"), span(claim, "two"), span(claim, "two")], unique_span_ids=True)
    assert [s.span_id for s in added] == ["span-two"]
    assert len(store.spans.add_many([span(claim, "one")])) == 1  # without the option only sequence ids count


def test_a_span_is_a_heartbeat_that_starts_the_attempt_and_rollout(store):
    claim = store.rollouts.start("a")
    store.spans.add(**span(claim))
    attempt = store.attempts.latest(claim.rollout.id)
    assert attempt.status == "running" and attempt.last_heartbeat_at is not None
    assert store.rollouts.get(claim.rollout.id).status == "running"


def test_spans_for_an_unknown_rollout_or_attempt_are_rejected_and_nothing_is_written(store):
    claim = store.rollouts.start("a")
    with pytest.raises(NotFoundError):
        store.spans.add_many([span(claim, "ok"), {**span(claim, "bad"), "attempt_id": "ghost"}])
    with pytest.raises(NotFoundError):
        store.spans.add(**{**span(claim), "rollout_id": "ghost"})
    with pytest.raises(InvalidInputError, match="rollout_id and an attempt_id"):
        store.spans.add(name="orphan", trace_id="t", span_id="s")
    assert store.spans.query(claim.rollout.id) == []
    assert store.attempts.latest(claim.rollout.id).status == "preparing"


def test_query_by_attempt_latest_or_all_with_filters(store):
    rollout = store.rollouts.start("a").rollout
    old = store.attempts.latest(rollout.id)
    store.spans.add_many([
        {"rollout_id": rollout.id, "attempt_id": old.id, "trace_id": "t1", "span_id": "root", "name": "agent.run"},
        {"rollout_id": rollout.id, "attempt_id": old.id, "trace_id": "t1", "span_id": "c1", "parent_id": "root",
         "name": "llm.call"},
    ])
    new = store.attempts.start(rollout.id)
    store.spans.add(rollout_id=rollout.id, attempt_id=new.attempt.id, trace_id="t2", span_id="r2", name="agent.run")
    assert [s.span_id for s in store.spans.query(rollout.id)] == ["r2"]  # latest attempt by default
    assert [s.span_id for s in store.spans.query(rollout.id, old.id)] == ["root", "c1"]
    assert len(store.spans.query(rollout.id, None)) == 3
    assert [s.span_id for s in store.spans.query(rollout.id, None, parent_id="root")] == ["c1"]
    assert [s.span_id for s in store.spans.query(rollout.id, None, name__contains="llm")] == ["c1"]
    assert {s.span_id for s in store.spans.query(rollout.id, None, match="any", trace_id="t2", span_id="c1")} == {
        "r2", "c1"}
    assert [s.span_id for s in store.spans.query(rollout.id, None, order="desc", limit=1)] == ["c1"]
    with pytest.raises(InvalidInputError, match="cannot filter spans by .attributes."):
        store.spans.query(rollout.id, attributes="x")


def test_span_fields_round_trip(store):
    claim = store.rollouts.start("a")
    fields = span(claim, attributes={"gen_ai.usage.tokens": 12, "nested": {"k": [1, 2]}},
                  events=[{"name": "chunk", "attributes": {}}], status={"status_code": "OK"},
                  resource={"attributes": {"service.name": "agent"}})
    stored = store.spans.add(**fields)
    assert store.spans.query(claim.rollout.id) == [stored]
    assert stored.attributes == {"gen_ai.usage.tokens": 12, "nested": {"k": [1, 2]}}


def test_concurrent_writers_never_share_a_sequence_id(store):
    claim = store.rollouts.start("a")
    errors = []

    def write(n):
        try:
            for i in range(15):
                store.spans.add(**span(claim, f"t{n}-{i}"))
        except Exception as exc:  # surfaced below; a thread's exception would vanish
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = [s.sequence_id for s in store.spans.query(claim.rollout.id)]
    assert ids == list(range(1, 61))


def test_a_span_json_cannot_hold_is_refused_and_nothing_is_written(store):
    claim = store.rollouts.start("a")
    # The store names the table too ("cannot store spans: ..."); a remote client, which cannot send the value,
    # names the field alone.
    with pytest.raises(InvalidInputError, match="cannot store (spans: )?attributes.handle: object is not JSON"):
        store.spans.add_many([span(claim, "ok"), span(claim, "bad", attributes={"handle": object()})])
    assert store.spans.query(claim.rollout.id) == []
    assert store.spans.next_sequence_id(claim.rollout.id, claim.attempt.id) == 1  # the counter did not move


def test_spans_for_latest_and_for_the_attempt_id_in_one_batch_are_one_attempt(store):
    claim = store.rollouts.start("x")
    fields = {"rollout_id": claim.rollout.id, "trace_id": "t", "span_id": "s", "name": "n"}
    added = store.spans.add_many([{**fields, "attempt_id": "latest", "sequence_id": 1},
                                  {**fields, "attempt_id": claim.attempt.id, "sequence_id": 1},
                                  {**fields, "attempt_id": claim.attempt.id},
                                  {**fields, "attempt_id": "latest"}])
    assert [span.sequence_id for span in added] == [1, 2, 3]
    assert [span.sequence_id for span in store.spans.query(claim.rollout.id)] == [1, 2, 3]


def test_a_bad_span_in_a_batch_is_named_by_its_place_and_nothing_is_stored(store):
    claim = store.rollouts.start("x")
    with pytest.raises(InvalidInputError, match=r"span #1: span_id: Input should be a valid string"):
        store.spans.add_many([span(claim, "ok"), {**span(claim, "bad"), "span_id": 3}])
    assert store.spans.query(claim.rollout.id) == []


def test_a_bad_span_late_in_a_large_batch_stops_it_all_and_the_store_goes_on(store):
    claim = store.rollouts.start("x")
    batch = [span(claim, f"s{n}") for n in range(250)]
    batch[180] = {**batch[180], "name": None}
    with pytest.raises(InvalidInputError, match=r"span #180: name: Input should be a valid string"):
        store.spans.add_many(batch)
    assert store.spans.query(claim.rollout.id) == []
    assert store.attempts.latest(claim.rollout.id).status == "preparing"
    assert [s.sequence_id for s in store.spans.add_many(batch[:2])] == [1, 2]


def test_bad_spans_are_named_by_their_place_in_the_callers_batch(store):
    first, second = store.rollouts.start("a"), store.rollouts.start("b")
    with pytest.raises(InvalidInputError, match=r"span #2: trace_id"):
        store.spans.add_many([span(first, "a"), span(second, "b"), {**span(second, "c"), "trace_id": None}])
    with pytest.raises(InvalidInputError, match=r"span #1: sequence_id: must be an integer, got '2'"):
        store.spans.add_many([span(first, "a"), span(first, "b", sequence_id="2")])
    assert store.spans.query(first.rollout.id) == store.spans.query(second.rollout.id) == []


def test_numpy_sequence_ids_are_taken_as_the_integers_they_hold(store):
    """A training loop's counters are often NumPy ints: spans take them as every record does."""
    claim = store.rollouts.start("x")
    added = store.spans.add_many([span(claim, "a", sequence_id=numpy.int64(7)), span(claim, "b")])
    assert [s.sequence_id for s in added] == [7, 8]
    with pytest.raises(InvalidInputError, match=r"span #0: sequence_id: must be an integer, got True"):
        store.spans.add_many([span(claim, "c", sequence_id=numpy.bool_(True))])


def test_a_batch_leaves_the_garbage_collector_as_it_found_it(store):
    """Building a batch holds the collector off; afterwards it runs again, unless the caller had stopped it."""
    claim = store.rollouts.start("x")
    store.spans.add_many([span(claim, "a")])
    assert gc.isenabled()
    with pytest.raises(InvalidInputError):
        store.spans.add_many([{**span(claim, "b"), "name": None}])
    assert gc.isenabled()
    gc.disable()
    try:
        store.spans.add_many([span(claim, "c")])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_spans_are_added_not_created_and_never_updated(store):
    """Spans only come in through add/add_many, which number them: no inherited create stores a span
    outside its attempt's sequence, and no update is offered that could only fail."""
    claim = store.rollouts.start("a")
    assert not hasattr(store.spans, "create") and not hasattr(store.spans, "update")
    store.spans.add(**span(claim, "first"))
    assert store.spans.next_sequence_id(claim.rollout.id, claim.attempt.id) == 2


def test_span_query_and_count_take_every_area_s_filters_and_default_limit(store):
    claim = store.rollouts.start("a")
    store.spans.add_many([span(claim, f"s{i}") for i in range(120)])
    rollout_id = claim.rollout.id
    assert len(store.spans.query(rollout_id)) == 100  # the default limit of every area
    assert store.spans.count(rollout_id) == 120
    assert [s.sequence_id for s in store.spans.query(rollout_id, sequence_id__gt=118)] == [119, 120]
    assert store.spans.count(rollout_id, sequence_id__gt=118) == 2
    assert store.spans.count(rollout_id, match="any", name="s0", span_id="span-s1") == 2
    assert store.spans.count() == 120 and len(store.spans.query(limit=None)) == 120
