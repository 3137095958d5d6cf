"""Resources (versioned, latest = newest update) and workers (heartbeats, status from attempts)."""

import pytest

from rolloutdb.errors import InvalidInputError, NotFoundError


def test_resources_versions_and_latest(store):
    assert store.resources.latest() is None
    first = store.resources.add({"prompt": {"template": "v1"}})
    second = store.resources.add({"prompt": {"template": "v2"}}, id="named-snapshot")
    assert store.resources.latest() == second and second.id == "named-snapshot"
    updated = store.resources.update(first.id, {"prompt": {"template": "v1.1"}})
    assert (updated.version, updated.resources) == (2, {"prompt": {"template": "v1.1"}})
    assert store.resources.latest() == updated == store.resources.get(first.id)
    assert [r.id for r in store.resources.query(sort="created_at")] == [first.id, second.id]
    with pytest.raises(NotFoundError):
        store.resources.update("missing", {})


def test_worker_heartbeat_registers_and_keeps_stats(store):
    worker = store.workers.heartbeat("gpu-0", {"gpu_util": 0.9})
    assert (worker.status, worker.heartbeat_stats) == ("unknown", {"gpu_util": 0.9})
    again = store.workers.heartbeat("gpu-0")
    assert again.heartbeat_stats == {"gpu_util": 0.9} and again.last_heartbeat_at >= worker.last_heartbeat_at
    assert [w.id for w in store.workers.query(id__contains="gpu")] == ["gpu-0"]
    with pytest.raises(InvalidInputError):
        store.workers.heartbeat("gpu-0", {"bad": object()})


def test_worker_status_follows_its_attempts(store):
    assert store.rollouts.dequeue(worker_id="w") is None
    assert store.workers.get("w").status == "idle"
    rollout = store.rollouts.enqueue("x", config={"max_attempts": 2, "retry_condition": ["failed"]})
    store.rollouts.dequeue(worker_id="w")
    assert store.workers.get("w").status == "busy"
    store.attempts.update(rollout.id, status="failed")
    assert (store.workers.get("w").status, store.workers.get("w").current_rollout_id) == ("idle", None)
    store.rollouts.dequeue(worker_id="w")
    store.attempts.update(rollout.id, status="running")
    assert store.workers.get("w").status == "busy"
    assert store.workers.query(status="busy")[0].current_rollout_id == rollout.id


def test_one_span_batch_for_several_attempts_leaves_the_worker_on_the_last(store):
    first, second = store.rollouts.enqueue_many([{"input": "a"}, {"input": "b"}])
    claims = store.rollouts.dequeue_many(2, worker_id="w")
    before = store.workers.get("w")
    store.attempts.update(first.id, status="succeeded")  # the worker is idle between its attempts
    assert store.workers.get("w").status == "idle"
    span = {"rollout_id": second.id, "attempt_id": claims[1].attempt.id, "trace_id": "t", "span_id": "s"}
    with pytest.raises(InvalidInputError, match="span #1: name"):  # a bad batch changes nothing, the worker neither
        store.spans.add_many([{**span, "name": "ok"}, {**span, "name": 7}])
    third = store.rollouts.enqueue("c")  # the next transaction writes nothing left over from the bad one
    assert store.workers.get("w").status == "idle"
    claims.append(store.rollouts.dequeue(worker_id="w"))
    store.spans.add_many([{"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "trace_id": "t",
                           "span_id": "s", "name": "step"} for claim in claims[1:]])
    worker = store.workers.get("w")
    assert (worker.status, worker.current_rollout_id, worker.current_attempt_id) == (
        "busy", third.id, claims[2].attempt.id)
    assert worker.last_busy_at > before.last_busy_at and worker.last_idle_at is not None
    assert [store.attempts.latest(r.id).status for r in (second, third)] == ["running", "running"]
    assert [change.new_status for change in store.history("attempt", claims[1].attempt.id)] == [
        "preparing", "running"]
