"""The demo's training loop: the whole hierarchy recorded, tasks saved once, and it really learns."""

import pytest

import rolloutdb
from rolloutdb.demo import TARGETS, train_demo


def success_rate(store, run_name):
    """From the stored rollouts themselves, independently of compare_runs."""
    rollouts = store.rollouts.query(run_id=store.runs.get(run_name).id, limit=None)
    return sum(bool(r.success) for r in rollouts) / len(rollouts)


def test_the_loop_learns_and_records_everything(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        result = train_demo(store, "learn", steps=15, seed=1)
        train = store.runs.get("learn")
        runs = {run.name: run for run in store.runs.query(limit=None)}
        assert {name for name, run in runs.items() if run.parent_run_id == train.id} == {
            "learn/baseline", "learn/eval@4", "learn/eval@9", "learn/eval@14"}
        assert runs["learn/eval@9"].kind == "eval" and runs["learn/eval@9"].parent_step == 9
        assert store.steps.count(run_id=train.id, status="completed") == 15
        assert store.groups.count(run_id=train.id) == 15 * len(TARGETS)
        rollout = store.rollouts.query(run_id=train.id, limit=1)[0]
        turns = store.turns.query(rollout_id=rollout.id)
        assert [t.turn_index for t in turns] == list(range(len(turns))) and turns[-1].done
        assert rollout.validation["passed"] == rollout.success

        baseline, final = success_rate(store, result.baseline), success_rate(store, result.final_eval)
        assert final >= baseline + 0.4  # it learned
        comparison = store.compare_runs(result.baseline, result.final_eval)
        assert comparison.overall.a.success_rate == pytest.approx(baseline)
        assert comparison.overall.b.success_rate == pytest.approx(final)


def test_running_again_reuses_the_task_set(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        train_demo(store, "first", steps=1)
        train_demo(store, "second", steps=1)
        assert store.tasks.count() == len(TARGETS) and store.validators.count() == 1
        assert len(store.tasks.load(dataset="arith-reach", split="train", tags=["arithmetic"])) == len(TARGETS)
