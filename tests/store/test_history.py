"""Status history: one row per change, in order, written with the change itself."""

import pytest

from rolloutdb.errors import InvalidInputError, InvalidTransitionError, NotFoundError


def transitions(store, entity_type, entity_id):
    return [(c.old_status, c.new_status, c.reason) for c in store.history(entity_type, entity_id)]


def test_run_history_lists_every_change_in_order(store):
    run = store.runs.create(name="r")
    for status, reason in [("running", "start"), ("paused", "free the GPU"), ("running", "resume"),
                           ("completed", None)]:
        store.runs.update(run.id, status=status, reason=reason)
    expected = [(None, "pending", "created"), ("pending", "running", "start"), ("running", "paused", "free the GPU"),
                ("paused", "running", "resume"), ("running", "completed", None)]
    assert transitions(store, "run", "r") == expected
    assert transitions(store, "run", run.id) == expected
    times = [c.changed_at for c in store.history("run", run.id)]
    assert times == sorted(times)


@pytest.mark.parametrize(
    ("entity_type", "create", "statuses"),
    [
        ("step", lambda s, run: s.steps.create(run_id=run.id, number=0), ["running", "completed"]),
        ("group", lambda s, run: s.groups.create(run_id=run.id, step=0), ["running", "completed"]),
        ("rollout", lambda s, run: s.rollouts.create(run_id=run.id),
         ["preparing", "running", "requeuing", "preparing", "running", "failed"]),
    ],
)
def test_every_entity_with_a_status_keeps_history(store, entity_type, create, statuses):
    entity = create(store, store.runs.create(name="r"))
    for status in statuses:
        getattr(store, f"{entity_type}s").update(entity.id, status=status)
    initial = entity.status
    assert [new for _, new, _ in transitions(store, entity_type, entity.id)] == [initial, *statuses]


def test_updates_without_a_status_change_write_no_history(store):
    run = store.runs.create(name="r")
    store.runs.update(run.id, progress=10.0, message="loading")
    store.runs.update(run.id, status="pending")  # same status: not a change
    assert len(store.history("run", run.id)) == 1


def test_rejected_change_leaves_no_history_row(store):
    rollout = store.rollouts.create()
    with pytest.raises(InvalidTransitionError):
        store.rollouts.update(rollout.id, status="requeuing")
    assert transitions(store, "rollout", rollout.id) == [(None, "queuing", "created")]


def test_history_of_unknown_entity_type_or_run_is_an_error(store):
    with pytest.raises(InvalidInputError, match="unknown entity type 'worker'"):
        store.history("worker", "w1")
    with pytest.raises(NotFoundError):
        store.history("run", "nope")


def test_every_change_the_store_makes_itself_is_one_its_state_machines_allow(store):
    """Claims, spans reviving an attempt, retries and a new attempt by hand change statuses through the
    same rule as an update: the history holds only transitions that ``states.TRANSITIONS`` allows."""
    from rolloutdb import states

    rollout = store.rollouts.enqueue("x", config={"max_attempts": 2, "retry_condition": ["failed"]})
    claim = store.rollouts.dequeue("w1")
    store.spans.add(rollout_id=rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s", name="n")
    store.attempts.update(rollout.id, status="failed")  # requeued: an attempt remains
    second = store.rollouts.dequeue("w1")
    store.attempts.heartbeat(rollout.id)
    third = store.attempts.start(rollout.id, worker_id="w2")  # by hand, while the second one runs
    store.attempts.update(rollout.id, status="succeeded")
    changes = [(kind, change) for kind, ids in (("rollout", [rollout.id]),
                                                ("attempt", [claim.attempt.id, second.attempt.id, third.attempt.id]))
               for entity_id in ids for change in store.history(kind, entity_id)]
    illegal = [(kind, c.old_status, c.new_status) for kind, c in changes
               if c.old_status is not None and not states.allowed(kind, c.old_status, c.new_status)]
    assert illegal == []
    assert [c.new_status for kind, c in changes if kind == "rollout"] == [
        "queuing", "preparing", "running", "requeuing", "preparing", "running", "preparing", "succeeded"]
    finished = store.rollouts.get(rollout.id)
    assert finished.started_at is not None and finished.ended_at is not None and finished.queued_at is None


def test_a_row_created_in_a_started_or_final_status_has_its_lifetime_stamps(store):
    """Creating a row enters its first status by the same rule as a change: started_at for a running one,
    ended_at for a finished one, as of its creation (values given win)."""
    run = store.runs.create(name="r", status="running")
    assert run.started_at == run.created_at and run.ended_at is None
    step = store.steps.create(run_id=run.id, number=0, status="completed")
    assert step.ended_at == step.created_at and store.steps.get(step.id).ended_at == step.created_at
    given = store.steps.create(run_id=run.id, number=1, status="running", started_at=run.created_at)
    assert given.started_at == run.created_at
    assert store.rollouts.create().queued_at is not None and store.rollouts.create(status="running").queued_at is None


def test_a_rollout_started_at_once_is_stored_as_claimed_with_the_history_of_a_claim(store):
    """``rollouts.start`` writes the rollout once, already claimed: what it returns is what is stored, and
    its history is that of a rollout queued and then claimed."""
    claim = store.rollouts.start("x", worker_id="w1")
    stored = store.rollouts.get(claim.rollout.id)
    assert stored == claim.rollout
    assert stored.status == "preparing" and stored.attempt_count == 1 and stored.queued_at is None
    assert stored.started_at is not None
    assert [(c.old_status, c.new_status, c.reason) for c in store.history("rollout", stored.id)] == [
        (None, "queuing", "created"), ("queuing", "preparing", "claimed by w1")]
    assert store.attempts.latest(stored.id) == claim.attempt
