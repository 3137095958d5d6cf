"""Store.write_together: several callers' writes in one transaction, each getting what it would have got alone."""

import pytest
from sqlalchemy import event

from rolloutdb.errors import NotFoundError

from conftest import skip_on_http


def test_calls_see_what_the_calls_before_them_wrote_and_get_their_own_results(store):
    enqueued = {}

    def enqueue():
        enqueued["rollout"] = store.rollouts.enqueue({"task": 1})
        return enqueued["rollout"]

    def dequeue():
        return store.rollouts.dequeue("worker-1")

    def add_span():
        claim = store.attempts.latest(enqueued["rollout"].id)
        return store.spans.add_many([{"rollout_id": claim.rollout_id, "attempt_id": claim.id, "trace_id": "t",
                                      "span_id": "s", "name": "s"}])

    rollout, claim, spans = store.write_together([enqueue, dequeue, add_span])
    assert claim.rollout.id == rollout.id and claim.attempt.worker_id == "worker-1"
    assert [span.sequence_id for span in spans] == [1]
    assert store.spans.count(rollout.id) == 1
    assert store.rollouts.get(rollout.id).status == "running"


def test_a_failing_call_gets_its_error_and_the_others_what_they_would_have_got_alone(store):
    outcomes = store.write_together([lambda: store.rollouts.enqueue("a"),
                                     lambda: store.rollouts.update("ro-ghost", status="failed"),
                                     lambda: store.rollouts.enqueue("b")])
    assert isinstance(outcomes[1], NotFoundError)
    assert sorted(rollout.input for rollout in store.rollouts.query(limit=None)) == ["a", "b"]
    assert [outcomes[0].input, outcomes[2].input] == ["a", "b"]


def test_a_call_that_catches_its_failed_write_leaves_no_half_done_group(store):
    def update_or_enqueue():
        try:
            return store.rollouts.update("ro-ghost", status="failed")
        except NotFoundError:
            return store.rollouts.enqueue("instead")

    outcomes = store.write_together([lambda: store.rollouts.enqueue("first"), update_or_enqueue])
    assert [outcome.input for outcome in outcomes] == ["first", "instead"]
    assert sorted(rollout.input for rollout in store.rollouts.query(limit=None)) == ["first", "instead"]


def test_the_calls_share_one_commit(store):
    skip_on_http(store, "through a server each call is its own request, committed by the server")
    commits = []

    def committed(connection):
        commits.append(connection)

    event.listen(store.engine, "commit", committed)
    try:
        store.write_together([lambda n=n: store.rollouts.enqueue(n) for n in range(5)])
    finally:
        event.remove(store.engine, "commit", committed)
    assert len(commits) == 1
    assert store.rollouts.count() == 5


def test_inside_a_call_another_write_together_runs_in_the_same_transaction(store):
    inner = lambda: store.write_together([lambda: store.rollouts.enqueue("x"), lambda: store.rollouts.enqueue("y")])
    [results] = store.write_together([inner])
    assert [rollout.input for rollout in results] == ["x", "y"]
    with pytest.raises(NotFoundError):
        store.rollouts.update("ro-ghost", status="failed")
    assert store.rollouts.count() == 2
