"""The store's batch API for recorded operations (``store.recording``), and statistics that follow the
rollouts whoever writes them."""

import uuid
from datetime import datetime, timezone

import pytest



def now():
    return datetime.now(timezone.utc)


def training_batch(run="train", session="s1", rollouts=2):
    """A training run with one step and one group; ids end in the run's name (make it unique per test)."""
    ops = [{"op": "run.start", "session": session, "id": f"{run}-{session}", "name": run, "total_steps": 1,
            "started_at": now()},
           {"op": "step.start", "session": session, "run": run, "number": 0, "started_at": now()},
           {"op": "group.start", "session": session, "id": f"g-{run}", "run": run, "step": 0, "task": "t", "size": rollouts,
            "created_at": now()}]
    for k in range(rollouts):
        ops += [{"op": "rollout.start", "session": session, "id": f"r{k}-{run}", "run": run, "group_id": f"g-{run}", "step": 0,
                 "task": "t", "started_at": now()},
                {"op": "turn", "id": f"t{k}-{run}", "rollout_id": f"r{k}-{run}", "turn_index": 0, "action": "a",
                 "created_at": now()},
                {"op": "rollout.end", "id": f"r{k}-{run}", "status": "succeeded", "reward": float(k),
                 "success": k > 0}]
    return ops + [{"op": "step.update", "session": session, "run": run, "number": 0, "metrics": {"loss": 0.5},
                   "status": "completed"},
                  {"op": "run.end", "session": session, "run": run, "status": "completed"}]


def test_group_and_step_figures_follow_rollouts_finished_through_the_store_api(store):
    run = store.runs.create(name="r", total_steps=1, status="running")
    store.steps.create(run_id=run.id, number=0, status="running")
    group = store.groups.create(run_id=run.id, step=0, size=2)
    first = store.rollouts.create(run_id=run.id, step=0, group_id=group.id, status="running")
    second = store.rollouts.create(run_id=run.id, step=0, group_id=group.id, status="running")
    assert (store.groups.get(group.id).status, store.groups.get(group.id).rollout_count) == ("running", 2)
    store.rollouts.update(first.id, status="succeeded", reward=1.0, success=True)
    store.rollouts.update(second.id, status="failed", reward=0.0, success=False)
    refreshed = store.groups.get(group.id)
    assert (refreshed.status, refreshed.completed_count, refreshed.success_count) == ("completed", 2, 1)
    assert refreshed.reward_mean == pytest.approx(0.5)
    store.rollouts.update(second.id, reward=0.5)  # a reward set after the result counts too
    assert store.groups.get(group.id).reward_mean == pytest.approx(0.75)
    metrics = store.steps.query(run_id=run.id)[0].metrics
    assert (metrics["rollouts"], metrics["success_rate"]) == (2, 0.5)


@pytest.fixture
def run():
    return f"train-{uuid.uuid4().hex[:8]}"


def test_a_batch_applied_twice_changes_nothing_the_second_time(store, run):
    batch = training_batch(run)
    assert store.recording.apply(batch).rejected == []
    counts = (store.rollouts.count(), store.turns.count(), store.groups.count(), store.steps.count())
    history = [c.new_status for c in store.history("rollout", f"r0-{run}")]
    result = store.recording.apply(batch)  # a resent batch, or a journal replayed
    assert result.rejected == [] and result.applied == len(batch)
    assert (store.rollouts.count(), store.turns.count(), store.groups.count(), store.steps.count()) == counts
    assert [c.new_status for c in store.history("rollout", f"r0-{run}")] == history == ["running", "succeeded"]
    stored = store.runs.get(run)
    assert (stored.status, stored.progress) == ("completed", 100.0)
    group = store.groups.get(f"g-{run}")
    assert (group.status, group.rollout_count, group.success_count) == ("completed", 2, 1)


def test_refused_operations_are_reported_one_by_one_and_leave_no_trace(store, run):
    batch = training_batch(run)
    batch.insert(5, {"op": "turn", "id": "orphan", "rollout_id": "no-such-rollout", "turn_index": 0,
                     "created_at": now()})
    batch.insert(6, {"op": "turn", "id": "bad", "rollout_id": f"r0-{run}", "turn_index": -1, "created_at": now()})
    result = store.recording.apply(batch)
    assert [(r.index, r.op, r.error) for r in result.rejected] == [
        (5, "turn", "NotFoundError"), (6, "turn", "InvalidInputError")]
    assert "no-such-rollout" in result.rejected[0].message and "turn_index" in result.rejected[1].message
    assert result.applied == len(batch) - 2
    assert store.turns.count() == 2 and store.rollouts.count(status="succeeded") == 2
    assert [c.new_status for c in store.history("rollout", f"r1-{run}")] == ["running", "succeeded"]


def test_a_batch_finishing_many_rollouts_refuses_only_a_result_for_a_rollout_that_does_not_exist(store, run):
    batch = training_batch(run, rollouts=4)  # the results of a batch are read and written together
    batch.insert(len(batch) - 2, {"op": "rollout.end", "id": "no-such-rollout", "status": "succeeded"})
    result = store.recording.apply(batch)
    assert [(r.op, r.error) for r in result.rejected] == [("rollout.end", "NotFoundError")]
    assert "no-such-rollout" in result.rejected[0].message
    assert {store.rollouts.get(f"r{k}-{run}").status for k in range(4)} == {"succeeded"}
    group = store.groups.get(f"g-{run}")
    assert (group.status, group.completed_count, group.success_count) == ("completed", 4, 3)


def test_a_rollout_finished_twice_in_one_batch_keeps_its_first_result(store, run):
    batch = training_batch(run)
    batch.insert(len(batch) - 2, {"op": "rollout.end", "id": f"r0-{run}", "status": "failed", "error": "late"})
    result = store.recording.apply(batch)
    assert [(r.op, r.error) for r in result.rejected] == [("rollout.end", "InvalidTransitionError")]
    assert store.rollouts.get(f"r0-{run}").status == "succeeded"
    assert [c.new_status for c in store.history("rollout", f"r0-{run}")] == ["running", "succeeded"]


def test_a_run_left_running_by_a_process_that_went_quiet_is_taken_over_and_its_leftovers_closed(store, run):
    batch = training_batch(run)[:-2]  # the first process dies before its step and run end
    batch = [op for op in batch if not (op["op"] == "rollout.end" and op["id"] == f"r1-{run}")]
    store.recording.apply(batch)
    again = {"op": "run.start", "session": "s2", "id": "x", "name": run, "total_steps": 1, "started_at": now()}
    refused = store.recording.apply([again]).rejected
    assert len(refused) == 1 and "already running" in refused[0].message
    assert store.recording.apply([{**again, "stale_after": 1e-6}]).rejected == []
    stored = store.runs.get(run)
    assert (stored.status, stored.owner, stored.id) == ("running", "s2", f"{run}-s1")
    assert store.rollouts.get(f"r1-{run}").status == "cancelled"
    assert store.rollouts.get(f"r0-{run}").status == "succeeded"
    group = store.groups.get(f"g-{run}")  # every rollout in it has ended now
    assert (group.status, group.completed_count, group.success_count) == ("completed", 2, 0)
    assert store.steps.query(run_id=stored.id)[0].status == "failed"
    late = store.recording.apply([{"op": "step.update", "session": "s1", "run": run, "number": 0,
                                   "status": "completed"}])  # the first process's last word, replayed late
    assert "not recorded by this recorder" in late.rejected[0].message
    assert store.recording.apply([
        {"op": "step.start", "session": "s2", "run": run, "number": 0, "started_at": now()},
        {"op": "step.update", "session": "s2", "run": run, "number": 0, "status": "completed"},
        {"op": "run.end", "session": "s2", "run": run, "status": "completed"}]).rejected == []
    assert [s.status for s in store.steps.query(run_id=stored.id)] == ["completed"]
    assert store.runs.get(run).progress == 100.0


def test_records_of_a_recorder_whose_start_was_refused_do_not_reach_the_run_of_that_name(store, run):
    store.recording.apply(training_batch(run, session="first"))
    again = training_batch(run, session="second")  # same name, the run has finished: all of it refused
    result = store.recording.apply([{**op, "id": op["id"] + "-2"} if op["op"] in ("group.start",) else op
                                    for op in again[:3]])
    assert [r.op for r in result.rejected] == ["run.start", "step.start", "group.start"]
    assert "already ended as completed" in result.rejected[0].message
    assert "not recorded by this recorder" in result.rejected[1].message
    assert store.groups.count() == 1 and store.runs.get(run).status == "completed"
