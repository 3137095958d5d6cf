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
