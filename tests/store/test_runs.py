"""Runs: create, get by id or name, update with legal status changes, projects kept apart."""

import uuid

import pytest

import rolloutdb
from rolloutdb.errors import ConflictError, InvalidInputError, InvalidTransitionError, NotFoundError


def test_create_then_get_by_id_and_by_name_returns_what_was_stored(store):
    created = store.runs.create(name="grpo-1", config={"lr": 3e-5, "group_size": 8}, total_steps=100,
                                metadata={"git": "abc"})
    for key in (created.id, "grpo-1"):
        fetched = store.runs.get(key)
        assert fetched == created
    assert created.status == "pending" and created.kind == "train" and created.progress == 0.0
    assert created.created_at.tzinfo is not None


def test_run_names_are_unique_within_a_project(store):
    store.runs.create(name="dup")
    with pytest.raises(ConflictError, match="a run named 'dup' already exists"):
        store.runs.create(name="dup")
    assert store.runs.count(name="dup") == 1


def test_projects_see_only_their_own_runs(session_database_url):
    first, second = (f"p-{uuid.uuid4().hex[:8]}" for _ in range(2))
    with rolloutdb.connect(session_database_url, project=first) as a, \
            rolloutdb.connect(session_database_url, project=second) as b:
        run = a.runs.create(name="shared-name")
        b.runs.create(name="shared-name")  # same name, other project: allowed
        assert b.runs.count() == 1
        with pytest.raises(NotFoundError):
            b.runs.get(run.id)
        with pytest.raises(NotFoundError):
            b.runs.update(run.id, status="running")
        with pytest.raises(NotFoundError):
            b.steps.create(run_id=run.id, number=0)  # cannot hang rows under another project's run
        assert a.runs.get(run.id).status == "pending"


def test_eval_run_links_to_its_training_run(store):
    train = store.runs.create(name="train")
    evaluation = store.runs.create(name="eval@10", kind="eval", parent_run_id=train.id, parent_step=10)
    assert store.runs.query(parent_run_id=train.id) == [evaluation]
    with pytest.raises(NotFoundError, match="no run with id or name 'ghost'"):
        store.runs.create(name="orphan", kind="eval", parent_run_id="ghost")


def test_status_changes_stamp_start_and_end_times(store):
    store.runs.create(name="r")
    running = store.runs.update("r", status="running")
    assert running.started_at is not None and running.ended_at is None
    paused = store.runs.update("r", status="paused")
    assert paused.started_at == running.started_at
    done = store.runs.update(store.runs.update("r", status="running").id, status="completed", progress=100.0)
    assert done.ended_at is not None and done.ended_at >= done.started_at and done.progress == 100.0
    assert store.runs.get("r") == done


@pytest.mark.parametrize(
    ("path", "illegal"),
    [([], "completed"), (["running", "completed"], "running"), (["cancelled"], "paused"), ([], "paused")],
)
def test_illegal_transition_raises_and_writes_nothing(store, path, illegal):
    run = store.runs.create(name="r")
    for status in path:
        store.runs.update(run.id, status=status)
    before, history_before = store.runs.get(run.id), store.history("run", run.id)
    with pytest.raises(InvalidTransitionError, match=f"cannot go from '{before.status}' to '{illegal}'"):
        store.runs.update(run.id, status=illegal, progress=50.0, message="should not stick")
    assert store.runs.get(run.id) == before
    assert store.history("run", run.id) == history_before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "renamed"}, "cannot update run field"),
        ({"progress": 150}, "progress"),
        ({"status": "finished"}, "status"),
        ({"kind": "x"}, "cannot update run field"),
    ],
)
def test_bad_updates_are_rejected_and_change_nothing(store, changes, message):
    run = store.runs.create(name="r")
    with pytest.raises(InvalidInputError, match=message):
        store.runs.update(run.id, **changes)
    assert store.runs.get(run.id) == run


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "name"),
        ({"name": "r", "kind": "tuning"}, "kind"),
        ({"name": "r", "unknown_field": 1}, "unknown_field"),
        ({"name": "r", "project_id": "other"}, "project_id is set by the store"),
        ({"name": "r", "config": {"not json": object()}}, "invalid run"),
    ],
)
def test_bad_creates_are_rejected_and_write_nothing(store, fields, message):
    with pytest.raises(InvalidInputError, match=message):
        store.runs.create(**fields)
    assert store.runs.count() == 0


def test_unknown_run_is_not_found_with_a_clear_message(store):
    with pytest.raises(NotFoundError, match="no run with id or name 'missing' in project"):
        store.runs.get("missing")
