"""Steps, validators, tasks, groups and rollouts: the training hierarchy, read back as written."""

import pytest

from rolloutdb.errors import ConflictError, InvalidInputError, InvalidTransitionError, NotFoundError


@pytest.fixture
def run(store):
    return store.runs.create(name="train", total_steps=2)


def test_steps_belong_to_a_run_and_are_numbered_once(store, run):
    steps = [store.steps.create(run_id=run.id, number=n) for n in (1, 0)]
    assert store.steps.query(run_id=run.id) == [steps[1], steps[0]]  # sorted by number
    with pytest.raises(ConflictError, match="already has a step 1"):
        store.steps.create(run_id=run.id, number=1)
    done = store.steps.update(steps[0].id, status="completed", metrics={"loss": 0.5, "reward_mean": 0.25})
    assert store.steps.get(steps[0].id) == done and done.ended_at is not None


def test_tasks_with_validators_are_found_by_dataset_split_and_external_id(store):
    validator = store.validators.create(name="exact-match", kind="string", config={"case": False})
    tasks = [
        store.tasks.create(external_id=f"t{i}", instruction=f"do {i}", input={"n": i}, dataset="arith",
                           split="train" if i < 2 else "test", tags=["easy"], validator_id=validator.id)
        for i in range(3)
    ]
    assert store.tasks.query(dataset="arith", split="train") == tasks[:2]
    assert store.tasks.query(external_id="t2") == [tasks[2]]
    with pytest.raises(ConflictError, match="external id 't0' already exists"):
        store.tasks.create(external_id="t0")
    with pytest.raises(ConflictError, match="validator named 'exact-match' already exists"):
        store.validators.create(name="exact-match", kind="string")
    with pytest.raises(NotFoundError, match="validator 'nope' not found"):
        store.tasks.create(external_id="t9", validator_id="nope")
    assert store.tasks.count() == 3


def test_groups_and_rollouts_hang_under_a_step_and_a_task(store, run):
    task = store.tasks.create(external_id="t")
    group = store.groups.create(run_id=run.id, step=0, task_id=task.id, size=4)
    rollouts = [
        store.rollouts.create(run_id=run.id, step=0, group_id=group.id, task_id=task.id, input={"seed": i},
                              mode="train", config={"max_attempts": 2, "retry_condition": ["failed"]})
        for i in range(4)
    ]
    [found] = store.groups.query(run_id=run.id, step=0)
    assert (found.id, found.status, found.rollout_count) == (group.id, "running", 4)  # counted by the store
    assert store.rollouts.query(group_id=group.id) == rollouts
    assert store.rollouts.query(run_id=run.id, step=0, status="queuing") == rollouts
    assert store.rollouts.get(rollouts[0].id).config.max_attempts == 2
    with pytest.raises(NotFoundError, match="group 'missing' not found"):
        store.rollouts.create(group_id="missing")


def test_a_rollout_goes_through_its_life_and_records_its_result(store):
    rollout = store.rollouts.create(input={"q": "2+2"})
    for status in ("preparing", "running"):
        store.rollouts.update(rollout.id, status=status)
    done = store.rollouts.update(rollout.id, status="succeeded", reward=1.0, success=True,
                                 validation={"passed": True}, metrics={"turns": 3})
    assert store.rollouts.get(rollout.id) == done
    assert done.started_at is not None and done.ended_at is not None
    with pytest.raises(InvalidTransitionError, match="'succeeded' is final"):
        store.rollouts.update(rollout.id, status="running")


def test_bad_rollout_config_is_rejected(store):
    with pytest.raises(InvalidInputError, match="config.max_attempts"):
        store.rollouts.create(config={"max_attempts": 0})
    with pytest.raises(InvalidInputError, match="config.retry_condition"):
        store.rollouts.create(config={"retry_condition": ["bored"]})
    assert store.rollouts.count() == 0


def test_a_turn_names_an_attempt_of_its_own_rollout(store):
    mine, other = store.rollouts.start("mine"), store.rollouts.start("other")
    with pytest.raises(InvalidInputError, match="is an attempt of rollout"):
        store.turns.create(rollout_id=mine.rollout.id, attempt_id=other.attempt.id, turn_index=0)
    assert store.turns.count() == 0
    turn = store.turns.create(rollout_id=mine.rollout.id, attempt_id=mine.attempt.id, turn_index=0)
    assert store.turns.query(attempt_id=mine.attempt.id) == [turn]


def test_jobs_count_takes_the_filters_of_jobs_query(store):
    store.runs.create(name="a", kind="job", status="running")
    store.runs.create(name="b", kind="job")
    assert store.jobs.count(status="running") == len(store.jobs.query(status="running")) == 1
    assert store.jobs.count() == 2
