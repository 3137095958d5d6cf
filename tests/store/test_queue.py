"""The rollout queue: enqueue, FIFO claims, attempts, retries, status propagation, cancel."""

import pytest

from rolloutdb.errors import InvalidInputError, InvalidTransitionError, NotFoundError

RETRY_ON_FAILURE = {"max_attempts": 3, "retry_condition": ["failed", "timeout", "unresponsive"]}


def statuses(store, rollout_id):
    return [change.new_status for change in store.history("rollout", rollout_id)]


def test_dequeue_is_fifo_and_returns_none_when_empty(store):
    first = store.rollouts.enqueue({"n": 1})
    second, third = store.rollouts.enqueue_many([{"input": {"n": 2}}, {"input": {"n": 3}, "mode": "val"}])
    claims = [store.rollouts.dequeue() for _ in range(3)]
    assert [c.rollout.id for c in claims] == [first.id, second.id, third.id]
    assert all(c.rollout.status == "preparing" and c.attempt.sequence == 1 for c in claims)
    assert store.rollouts.dequeue() is None
    assert store.rollouts.get(third.id).mode == "val"


def test_batch_claim_takes_the_oldest_in_order(store):
    enqueued = store.rollouts.enqueue_many([{"input": i} for i in range(5)])
    batch = store.rollouts.dequeue_many(3, worker_id="w")
    assert [c.rollout.id for c in batch] == [r.id for r in enqueued[:3]]
    assert [c.rollout.id for c in store.rollouts.dequeue_many(10)] == [r.id for r in enqueued[3:]]
    assert store.rollouts.dequeue_many(0) == []


def test_claim_creates_the_attempt_and_stamps_worker(store):
    rollout = store.rollouts.enqueue("task")
    claim = store.rollouts.dequeue(worker_id="worker-7")
    assert claim.attempt.worker_id == "worker-7" and claim.attempt.status == "preparing"
    assert store.attempts.latest(rollout.id) == claim.attempt
    assert store.rollouts.get(rollout.id) == claim.rollout
    worker = store.workers.get("worker-7")
    assert (worker.status, worker.current_rollout_id, worker.current_attempt_id) == (
        "busy", rollout.id, claim.attempt.id)


def test_enqueue_uses_latest_resources_and_rejects_unknown_ones(store):
    assert store.rollouts.enqueue(1).resources_id is None
    store.resources.add({"prompt": "v1"})
    latest = store.resources.add({"prompt": "v2"})
    assert store.rollouts.enqueue(2).resources_id == latest.id
    with pytest.raises(NotFoundError, match="resources 'nope' not found"):
        store.rollouts.enqueue(3, resources_id="nope")


def test_rollouts_may_name_resources_not_stored_when_the_store_allows_it(session_database_url):
    import uuid

    import rolloutdb

    with rolloutdb.connect(session_database_url, project=f"loose-{uuid.uuid4().hex[:8]}",
                           resources_must_exist=False) as store:
        rollout = store.rollouts.enqueue(1, resources_id="not-yet")
        assert store.rollouts.update(rollout.id, resources_id="nor-this").resources_id == "nor-this"


def test_ids_of_new_rollouts_and_attempts_take_the_stores_prefixes(session_database_url):
    import uuid

    import rolloutdb

    with rolloutdb.connect(session_database_url, project=f"ids-{uuid.uuid4().hex[:8]}",
                           id_prefixes={"rollout": "ro-", "attempt": "at-"}) as store:
        claim = store.rollouts.start("a")
        assert claim.rollout.id.startswith("ro-") and claim.attempt.id.startswith("at-")
        assert store.rollouts.enqueue("b").id.startswith("ro-")
    with pytest.raises(InvalidInputError, match="no ids of kind 'span'"):
        rolloutdb.connect(session_database_url, id_prefixes={"span": "sp-"})


def test_a_worker_starting_a_rollout_or_attempt_by_hand_is_busy_with_it(store):
    claim = store.rollouts.start("now", worker_id="w-start")
    assert (store.workers.get("w-start").status, store.workers.get("w-start").current_attempt_id) == (
        "busy", claim.attempt.id)
    retry = store.attempts.start(claim.rollout.id, worker_id="w-retry")
    assert store.workers.get("w-retry").current_attempt_id == retry.attempt.id


def test_start_bypasses_the_queue(store):
    queued = store.rollouts.enqueue("waiting")
    claim = store.rollouts.start("now", worker_id="w")
    assert claim.rollout.status == "preparing" and claim.attempt.sequence == 1
    assert store.rollouts.dequeue().rollout.id == queued.id  # the started one never sat in the queue
    assert store.rollouts.dequeue() is None


def test_start_many_starts_each_in_order_with_its_own_fields(store):
    claims = store.rollouts.start_many([{"input": "a", "mode": "train"}, {"input": "b", "metadata": {"k": 1}}],
                                       worker_id="w-many")
    assert [(c.rollout.input, c.rollout.mode, c.rollout.metadata) for c in claims] == [
        ("a", "train", {}), ("b", None, {"k": 1})]
    assert all(c.rollout.status == "preparing" and c.attempt.worker_id == "w-many" for c in claims)
    assert store.rollouts.dequeue() is None
    assert [change.new_status for change in store.history("rollout", claims[1].rollout.id)] == ["queuing",
                                                                                                "preparing"]
    assert store.rollouts.start_many([]) == []


def test_update_many_changes_attempts_as_one_after_another(store):
    """Several attempts updated at once: each rollout follows its attempt, a worker follows the attempt it runs,
    and an attempt named twice (by its id, then as latest) sees the change before, as it would one by one."""
    first, second = store.rollouts.enqueue("a"), store.rollouts.enqueue("b")
    claims = [store.rollouts.dequeue(worker_id=worker) for worker in ("w-1", "w-2")]
    updated = store.attempts.update_many([
        {"rollout_id": first.id, "attempt_id": claims[0].attempt.id, "status": "running"},
        {"rollout_id": second.id, "attempt_id": claims[1].attempt.id, "status": "running", "metadata": {"k": 2}},
        {"rollout_id": first.id, "status": "succeeded"}], reason="batch")
    assert [(a.id, a.status) for a in updated] == [(claims[0].attempt.id, "running"),
                                                   (claims[1].attempt.id, "running"),
                                                   (claims[0].attempt.id, "succeeded")]
    assert updated[1].metadata == {"k": 2} and updated[2].ended_at is not None
    assert updated[2] == store.attempts.get(claims[0].attempt.id)
    assert statuses(store, first.id) == ["queuing", "preparing", "running", "succeeded"]
    assert store.rollouts.get(second.id).status == "running"
    assert store.workers.get("w-1").status == "idle" and store.workers.get("w-2").status == "busy"
    assert [c.reason for c in store.history("attempt", claims[0].attempt.id)][-2:] == ["batch", "batch"]
    assert store.attempts.update_many([]) == []


def test_update_many_changes_nothing_when_one_update_fails(store):
    rollout = store.rollouts.enqueue("a")
    claim = store.rollouts.dequeue(worker_id="w")
    bad = [{"rollout_id": rollout.id, "status": "running"}, {"rollout_id": rollout.id, "status": "preparing"}]
    with pytest.raises(InvalidTransitionError, match="cannot go from 'running' to 'preparing'"):
        store.attempts.update_many(bad)
    other = store.rollouts.start("b")
    with pytest.raises(InvalidInputError, match=r"attempt #1: status"):
        store.attempts.update_many([{"rollout_id": rollout.id, "status": "running"},
                                    {"rollout_id": other.rollout.id, "status": "bogus"}])
    with pytest.raises(NotFoundError):
        store.attempts.update_many([{"rollout_id": rollout.id, "status": "running"},
                                    {"rollout_id": rollout.id, "attempt_id": "ghost", "status": "failed"}])
    with pytest.raises(InvalidInputError, match="cannot update"):
        store.attempts.update_many([{"rollout_id": rollout.id, "sequence": 9}])
    assert store.attempts.get(claim.attempt.id) == claim.attempt
    assert statuses(store, rollout.id) == ["queuing", "preparing"]


def test_success_of_the_attempt_finishes_the_rollout_and_frees_the_worker(store):
    rollout = store.rollouts.enqueue("x")
    claim = store.rollouts.dequeue(worker_id="w")
    store.attempts.update(rollout.id, claim.attempt.id, status="running")
    attempt = store.attempts.update(rollout.id, "latest", status="succeeded")
    assert attempt.ended_at is not None
    assert store.rollouts.get(rollout.id).status == "succeeded"
    assert statuses(store, rollout.id) == ["queuing", "preparing", "running", "succeeded"]
    assert store.workers.get("w").status == "idle"


@pytest.mark.parametrize("failure", ["failed", "timeout", "unresponsive"])
def test_failure_in_retry_condition_requeues_until_attempts_run_out(store, failure):
    rollout = store.rollouts.enqueue("x", config=RETRY_ON_FAILURE)
    for sequence in (1, 2, 3):
        claim = store.rollouts.dequeue()
        assert (claim.rollout.id, claim.attempt.sequence) == (rollout.id, sequence)
        store.attempts.update(rollout.id, "latest", status=failure)
        expected = "requeuing" if sequence < 3 else "failed"
        assert store.rollouts.get(rollout.id).status == expected
    assert store.rollouts.dequeue() is None
    assert [a.status for a in store.attempts.query(rollout_id=rollout.id)] == [failure] * 3


@pytest.mark.parametrize("failure", ["failed", "timeout", "unresponsive"])
def test_failure_outside_retry_condition_fails_the_rollout(store, failure):
    other = [s for s in ("failed", "timeout", "unresponsive") if s != failure]
    rollout = store.rollouts.enqueue("x", config={"max_attempts": 5, "retry_condition": other})
    store.rollouts.dequeue()
    store.attempts.update(rollout.id, "latest", status=failure)
    assert store.rollouts.get(rollout.id).status == "failed"


def test_requeued_rollout_goes_to_the_back_of_the_queue(store):
    retried = store.rollouts.enqueue("first", config=RETRY_ON_FAILURE)
    store.rollouts.dequeue()
    waiting = store.rollouts.enqueue("second")
    store.attempts.update(retried.id, "latest", status="failed")
    assert [store.rollouts.dequeue().rollout.id for _ in range(2)] == [waiting.id, retried.id]


def test_manual_attempt_restarts_an_unfinished_rollout(store):
    rollout = store.rollouts.enqueue("x")
    store.rollouts.dequeue()
    claim = store.attempts.start(rollout.id, worker_id="w2")
    assert claim.attempt.sequence == 2 and claim.rollout.status == "preparing"
    assert [a.sequence for a in store.attempts.query(rollout_id=rollout.id)] == [1, 2]
    # Only the latest attempt moves the rollout: the first one's late failure changes just itself.
    first = store.attempts.query(rollout_id=rollout.id, sequence=1)[0]
    store.attempts.update(rollout.id, first.id, status="failed")
    assert store.rollouts.get(rollout.id).status == "preparing"


def test_finished_rollout_gets_no_new_attempt(store):
    rollout = store.rollouts.start("x").rollout
    store.attempts.update(rollout.id, status="succeeded")
    with pytest.raises(InvalidTransitionError, match="finished rollout gets no new attempt"):
        store.attempts.start(rollout.id)


def test_cancel_finishes_the_rollout_and_a_late_result_changes_only_the_attempt(store):
    rollout = store.rollouts.enqueue("x")
    store.rollouts.dequeue()
    assert store.rollouts.cancel(rollout.id).status == "cancelled"
    assert store.rollouts.dequeue() is None
    store.attempts.update(rollout.id, status="succeeded")
    assert store.rollouts.get(rollout.id).status == "cancelled"
    assert store.attempts.latest(rollout.id).status == "succeeded"


def test_illegal_attempt_transition_is_rejected_and_changes_nothing(store):
    rollout = store.rollouts.start("x").rollout
    store.attempts.update(rollout.id, status="succeeded")
    before = store.attempts.latest(rollout.id)
    with pytest.raises(InvalidTransitionError, match="'succeeded' is final"):
        store.attempts.update(rollout.id, status="running")
    assert store.attempts.latest(rollout.id) == before
    assert store.rollouts.get(rollout.id).status == "succeeded"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s, r: s.attempts.update(r, "no-such-attempt", status="running"), NotFoundError,
         "attempt 'no-such-attempt' not found"),
        (lambda s, r: s.attempts.update("no-such-rollout", status="running"), NotFoundError, "rollout"),
        (lambda s, r: s.attempts.update(r, status="exploded"), InvalidInputError, "status"),
        (lambda s, r: s.attempts.update(r, sequence=9), InvalidInputError, "cannot update attempt field"),
        (lambda s, r: s.rollouts.dequeue_many(100_000), InvalidInputError, "from 0 to 1,000"),
    ],
)
def test_bad_queue_calls_are_rejected(store, call, error, message):
    rollout = store.rollouts.start("x").rollout
    with pytest.raises(error, match=message):
        call(store, rollout.id)
    assert store.attempts.latest(rollout.id).status == "preparing"


def test_no_attempt_yet_is_reported_clearly(store):
    rollout = store.rollouts.enqueue("x")
    assert store.attempts.latest(rollout.id) is None
    with pytest.raises(NotFoundError, match="has no attempt yet"):
        store.attempts.update(rollout.id, status="running")


def test_a_rollout_created_in_the_queue_keeps_its_place(store):
    first = store.rollouts.create(input="made with create()")
    second = store.rollouts.enqueue("enqueued after it")
    assert first.queued_at is not None
    assert [store.rollouts.dequeue().rollout.id for _ in range(2)] == [first.id, second.id]


def test_attempts_are_started_not_created(store):
    """An attempt comes only from a claim or attempts.start, which number it and move its rollout: no
    inherited create leaves a rollout with an attempt it does not count."""
    rollout = store.rollouts.enqueue("x")
    assert not hasattr(store.attempts, "create")
    claim = store.attempts.start(rollout.id)
    assert claim.attempt.sequence == 1 and store.rollouts.get(rollout.id).attempt_count == 1
    assert store.attempts.latest(rollout.id) == claim.attempt
