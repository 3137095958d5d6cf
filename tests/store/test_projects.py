"""Projects do not leak: given another project's ids, every public operation reads nothing, changes nothing
and learns nothing — its answer is the one it gives for an id that exists nowhere. On both backends."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import rolloutdb
from rolloutdb.errors import RolloutDBError
from rolloutdb.ids import new_id


SHORT = 12  # how much of an id a short id gives


@dataclass
class Rows:
    """Project a's rows, one of each kind, with a's store and b's."""

    a: rolloutdb.Store
    b: rolloutdb.Store
    run: Any
    step: Any
    validator: Any
    task: Any
    group: Any
    resources: Any
    queued: Any  # a rollout waiting in a's queue
    rollout: Any  # a claimed rollout, with its attempt, a span and a turn
    attempt: Any
    span: Any
    turn: Any
    worker: str
    job: Any

    def snapshot(self) -> dict[str, Any]:
        """Everything of a's as a reads it: nothing b does may change it."""
        a = self.a
        return {name: [row.model_dump() for row in getattr(a, name).query(limit=None)]
                for name in ("runs", "steps", "validators", "tasks", "groups", "resources", "rollouts", "attempts",
                             "turns", "workers")} | {
            "spans": [span.model_dump() for span in a.spans.query(attempt_id=None, limit=None)],
            "history": [change.model_dump() for change in a.history("rollout", self.rollout.id)],
            "logs": [event.model_dump() for event in a.jobs.logs(self.job.name)]}


@pytest.fixture
def rows(session_database_url) -> Iterator[Rows]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    with rolloutdb.connect(session_database_url, project=f"{name}-a") as a, \
            rolloutdb.connect(session_database_url, project=f"{name}-b") as b:
        run = a.runs.create(name="train", status="running")
        step = a.steps.create(run_id=run.id, number=0)
        validator = a.validators.save("exact", "equals")
        [task] = a.tasks.save([{"external_id": "secret-task", "validator_id": validator.id}])
        group = a.groups.create(run_id=run.id, step=0, task_id=task.id)
        resources = a.resources.add({"prompt": "team a's"})
        queued = a.rollouts.enqueue({"q": 1})
        claim = a.rollouts.start({"q": 2}, worker_id="worker-a", group_id=group.id, task_id=task.id,
                                 run_id=run.id, step=0)
        span = a.spans.add(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s",
                           name="llm.call")
        turn = a.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=0)
        with a.jobs.start("job-a", stages=[("only", 100)]) as job:
            job.checkpoint(message="halfway")
        yield Rows(a, b, run, step, validator, task, group, resources, queued, claim.rollout, claim.attempt, span,
                   turn, "worker-a", a.jobs.get("job-a").run)


def outcome(call: Callable[[str], Any], id: str) -> tuple[str, str]:
    """What ``call(id)`` answers, with ``id`` written as ID: the error's type and message, or the result."""
    try:
        result = call(id)
    except RolloutDBError as exc:
        return type(exc).__name__, str(exc).replace(id, "ID")
    return "result", repr(result).replace(id, "ID")


def as_if_unknown(call: Callable[[str], Any], id: str, unknown: str | None = None) -> tuple[str, str]:
    """Assert that ``call`` answers for ``id`` exactly what it answers for ``unknown``, an id that exists
    nowhere."""
    answer = outcome(call, id)
    assert answer == outcome(call, unknown or new_id()), f"{id} is answered differently from an unknown id: {answer}"
    return answer


def test_reads_of_another_projects_ids_find_nothing(rows):
    b, before = rows.b, rows.snapshot()
    for area, id in [("runs", rows.run.id), ("steps", rows.step.id), ("validators", rows.validator.id),
                     ("tasks", rows.task.id), ("groups", rows.group.id), ("resources", rows.resources.id),
                     ("rollouts", rows.rollout.id), ("attempts", rows.attempt.id), ("turns", rows.turn.id),
                     ("spans", rows.span.id), ("workers", rows.worker)]:
        store_area = getattr(b, area)
        assert as_if_unknown(store_area.get, id)[0] == "NotFoundError", area
        assert as_if_unknown(store_area.find, id)[0] == "NotFoundError", area
        assert as_if_unknown(store_area.find, id[:SHORT], uuid.uuid4().hex[:SHORT])[0] == "NotFoundError", area
        assert as_if_unknown(lambda id: store_area.query(id=[id], limit=None), id) == ("result", "[]"), area
        assert as_if_unknown(lambda id: store_area.count(id=id), id) == ("result", "0"), area
    for area, field, id in [("steps", "run_id", rows.run.id), ("groups", "task_id", rows.task.id),
                            ("rollouts", "group_id", rows.group.id), ("rollouts", "resources_id", rows.resources.id),
                            ("attempts", "rollout_id", rows.rollout.id), ("turns", "rollout_id", rows.rollout.id),
                            ("tasks", "validator_id", rows.validator.id), ("workers", "current_rollout_id",
                                                                           rows.rollout.id)]:
        assert as_if_unknown(lambda id: getattr(b, area).count(**{field: id}), id) == ("result", "0"), area
    assert as_if_unknown(lambda id: b.spans.query(id, None), rows.rollout.id) == ("result", "[]")
    assert as_if_unknown(lambda id: b.spans.count(id), rows.rollout.id) == ("result", "0")
    assert as_if_unknown(lambda id: b.spans.query(attempt_id=id), rows.attempt.id) == ("result", "[]")
    assert as_if_unknown(b.attempts.latest, rows.rollout.id)[0] == "NotFoundError"
    assert as_if_unknown(lambda id: b.history("rollout", id), rows.rollout.id) == ("result", "[]")
    assert as_if_unknown(lambda id: b.history("attempt", id), rows.attempt.id) == ("result", "[]")
    assert as_if_unknown(lambda id: b.history("run", id), rows.run.id)[0] == "NotFoundError"
    assert outcome(lambda name: b.history("run", name), "train")[0] == "NotFoundError"
    for read in (b.jobs.get, b.jobs.logs):
        assert as_if_unknown(read, rows.job.id)[0] == "NotFoundError"
        assert outcome(read, rows.job.name)[0] == "NotFoundError"
    assert as_if_unknown(lambda id: b.compare_runs(id, id), rows.run.id)[0] == "NotFoundError"
    assert as_if_unknown(lambda id: b.rollouts.wait([id], timeout=0), rows.rollout.id)[0] == "NotFoundError"
    assert b.queue_summary().workers == [] and b.rollouts.dequeue("worker-b") is None
    assert b.resources.latest() is None and b.tasks.load() == [] and b.jobs.query() == []
    assert rows.snapshot() == before


def test_writes_to_another_projects_ids_change_nothing(rows):
    b, before = rows.b, rows.snapshot()
    my_rollout = b.rollouts.start({"q": 3}).rollout
    [my_task] = b.tasks.save([{"external_id": "b-task"}])
    writes: list[tuple[Callable[[str], Any], str]] = [
        (lambda id: b.runs.update(id, status="paused"), rows.run.id),
        (lambda id: b.steps.update(id, metrics={"loss": 1.0}), rows.step.id),
        (lambda id: b.validators.update(id, kind="regex"), rows.validator.id),
        (lambda id: b.tasks.update(id, instruction="b's now"), rows.task.id),
        (lambda id: b.groups.update(id, status="cancelled"), rows.group.id),
        (lambda id: b.resources.update(id, {"prompt": "b's"}), rows.resources.id),
        (lambda id: b.rollouts.update(id, reward=0.0), rows.rollout.id),
        (lambda id: b.rollouts.cancel(id), rows.queued.id),
        (lambda id: b.turns.update(id, reward=5.0), rows.turn.id),
        (lambda id: b.workers.update(id, metadata={"b": 1}), rows.worker),
        (lambda id: b.attempts.update(id, status="failed"), rows.rollout.id),
        (lambda id: b.attempts.update(my_rollout.id, id, status="failed"), rows.attempt.id),
        (lambda id: b.attempts.update(id, rows.attempt.id, status="failed"), rows.rollout.id),
        (lambda id: b.attempts.heartbeat(id), rows.rollout.id),
        (lambda id: b.attempts.start(id), rows.queued.id),
        (lambda id: b.spans.add(rollout_id=id, attempt_id="latest", trace_id="t", span_id="x", name="n"),
         rows.rollout.id),
        (lambda id: b.spans.add(rollout_id=my_rollout.id, attempt_id=id, trace_id="t", span_id="x", name="n"),
         rows.attempt.id),
        (lambda id: b.spans.next_sequence_id(id, rows.attempt.id), rows.rollout.id),
        (lambda id: b.jobs.request_pause(id), rows.run.id),
        (lambda id: b.jobs.request_resume(id), rows.job.id),
        (lambda id: b.jobs.request_cancel(id), rows.run.id),
        (lambda id: b.jobs.delete(id), rows.job.id),
        # Rows of b that would refer to a's
        (lambda id: b.runs.create(name="child", parent_run_id=id), rows.run.id),
        (lambda id: b.steps.create(run_id=id, number=7), rows.run.id),
        (lambda id: b.tasks.create(external_id="t", validator_id=id), rows.validator.id),
        (lambda id: b.tasks.save([{"external_id": "t", "validator_id": id}]), rows.validator.id),
        (lambda id: b.tasks.update(my_task.id, validator_id=id), rows.validator.id),
        (lambda id: b.groups.create(run_id=id), rows.run.id),
        (lambda id: b.groups.create(task_id=id), rows.task.id),
        (lambda id: b.rollouts.create(group_id=id), rows.group.id),
        (lambda id: b.rollouts.create(task_id=id), rows.task.id),
        (lambda id: b.rollouts.enqueue(resources_id=id), rows.resources.id),
        (lambda id: b.rollouts.enqueue_many([{"run_id": id}]), rows.run.id),
        (lambda id: b.rollouts.start(run_id=id), rows.run.id),
        (lambda id: b.rollouts.update(my_rollout.id, resources_id=id), rows.resources.id),
        (lambda id: b.turns.create(rollout_id=id, turn_index=0), rows.rollout.id),
        (lambda id: b.turns.create(rollout_id=my_rollout.id, attempt_id=id, turn_index=0), rows.attempt.id),
    ]
    for write, id in writes:
        assert as_if_unknown(write, id)[0] == "NotFoundError", (writes.index((write, id)), outcome(write, id))
    b.workers.heartbeat(rows.worker, {"b's": True})  # registers a worker of b's own by that name
    assert b.rollouts.dequeue_many(10, worker_id=rows.worker) == []
    assert rows.snapshot() == before


def test_purge_and_the_health_check_leave_other_projects_alone(rows):
    rows.a.attempts.update(rows.rollout.id, status="succeeded")
    before = rows.snapshot()
    rows.b.check_health()
    assert rows.b.purge(keep_last=0).rollouts == rows.b.purge(older_than=timedelta(0)).rollouts == 0
    assert rows.snapshot() == before


def test_an_id_taken_in_another_project_is_a_conflict_that_says_no_more_than_one_taken_here(rows):
    """A new row given an id that another project's row has: the same ConflictError as for an id taken in the
    project itself, naming neither the other project nor the database's own words, on both backends."""
    b = rows.b
    run = b.runs.create(name="b-run")
    group = b.groups.create(run_id=run.id)
    creates: list[tuple[Callable[[str], Any], str]] = [
        (lambda id: b.runs.create(id=id, name=f"new-{uuid.uuid4().hex}"), rows.run.id),
        (lambda id: b.steps.create(id=id, run_id=run.id, number=len(b.steps.query(limit=None))), rows.step.id),
        (lambda id: b.validators.create(id=id, name=f"v-{uuid.uuid4().hex}", kind="equals"), rows.validator.id),
        (lambda id: b.tasks.create(id=id, external_id=f"t-{uuid.uuid4().hex}"), rows.task.id),
        (lambda id: b.tasks.save([{"id": id, "external_id": f"t-{uuid.uuid4().hex}"}]), rows.task.id),
        (lambda id: b.groups.create(id=id, run_id=run.id), rows.group.id),
        (lambda id: b.rollouts.create(id=id, group_id=group.id), rows.rollout.id),
        (lambda id: b.rollouts.enqueue(id=id), rows.queued.id),
        (lambda id: b.rollouts.start(id=id).rollout, rows.queued.id),
        (lambda id: b.turns.create(id=id, rollout_id=b.rollouts.create().id, turn_index=0), rows.turn.id),
    ]
    for create, theirs in creates:
        taken_here = outcome(create, _id_of(create(new_id())))
        taken_there = outcome(create, theirs)
        assert taken_there == taken_here, (taken_there, taken_here)
        assert taken_there[0] == "ConflictError" and "is taken" in taken_there[1]
        for leak in (rows.a.project, "UNIQUE", "unique", "constraint", "duplicate", "pk_", "Key ("):
            assert leak not in taken_there[1], taken_there
    several = outcome(lambda id: b.rollouts.enqueue_many([{"id": new_id()}, {"id": id}]), rows.queued.id)
    assert several[0] == "ConflictError" and "is taken" in several[1] and rows.a.project not in several[1]
    assert "UNIQUE" not in several[1] and "duplicate" not in several[1]


def test_resources_of_the_same_name_in_two_projects_are_each_their_own(rows):
    """Resource ids are named by users ("default" in Agent Lightning's trainers): each project keeps its own
    under the same name, and neither sees nor changes the other's."""
    name = f"default-{uuid.uuid4().hex[:8]}"
    theirs = rows.a.resources.add({"prompt": "a's"}, id=name)
    mine = rows.b.resources.add({"prompt": "b's"}, id=name)
    assert rows.b.resources.update(name, {"prompt": "b's, changed"}).version == 2
    assert rows.a.resources.get(name) == theirs
    assert rows.b.resources.get(name).resources == {"prompt": "b's, changed"} != mine.resources
    assert [r.id for r in rows.b.resources.query(id=name)] == [name]
    again = outcome(lambda id: rows.b.resources.add({"p": 1}, id=id), name)
    assert again[0] == "ConflictError" and "is taken" in again[1]


def _id_of(created: Any) -> str:
    return created[0].id if isinstance(created, list) else created.id


def test_the_recorders_operations_do_not_reach_another_projects_rows(rows):
    """store.recording (what recorders and journal replays write through) checks every id it is given."""
    b, before = rows.b, rows.snapshot()
    session = new_id()
    started = b.recording.apply([{"op": "run.start", "session": session, "id": new_id(), "name": "rec",
                                  "started_at": b.now()}])
    assert started.rejected == []

    def rejection(operation: Callable[[str], dict[str, Any]]) -> Callable[[str], Any]:
        def apply(id: str) -> Any:
            result = b.recording.apply([operation(id)])
            return [(r.error, r.message) for r in result.rejected]
        return apply

    def group(**fields: Any) -> dict[str, Any]:
        return {"op": "group.start", "session": session, "id": new_id(), "run": "rec", "created_at": b.now(),
                **fields}

    def rollout(**fields: Any) -> dict[str, Any]:
        return {"op": "rollout.start", "session": session, "id": new_id(), "run": "rec", "started_at": b.now(),
                **fields}

    refused = {
        "group with a's task": (rejection(lambda id: group(task_id=id)), rows.task.id),
        "rollout in a's group": (rejection(lambda id: rollout(group_id=id)), rows.group.id),
        "rollout of a's task": (rejection(lambda id: rollout(task_id=id)), rows.task.id),
        "turn of a's rollout": (rejection(lambda id: {"op": "turn", "id": new_id(), "rollout_id": id,
                                                      "turn_index": 9, "created_at": b.now()}), rows.rollout.id),
        "end of a's rollout": (rejection(lambda id: {"op": "rollout.end", "id": id, "status": "failed"}),
                               rows.rollout.id),
    }
    for what, (apply, id) in refused.items():
        answer = as_if_unknown(apply, id)
        assert answer[0] == "result" and "NotFoundError" in answer[1], (what, answer)
    # A recorded row whose id is stored in the project was applied before; one taken elsewhere is refused as
    # the store refuses any new row with a taken id.
    mine = b.groups.create()
    taken_here = outcome(lambda id: b.groups.create(id=id), mine.id)
    assert taken_here == ("ConflictError", "group id 'ID' is taken: leave the id out and the store picks a new one")
    assert outcome(rejection(lambda id: group(id=id)), rows.group.id) == ("result", repr([taken_here]))
    assert rows.snapshot() == before


def test_compare_runs_labels_only_the_projects_own_tasks(rows):
    b = rows.b
    [task] = b.tasks.save([{"external_id": "b-task"}])
    base, candidate = b.runs.create(name="base"), b.runs.create(name="candidate")
    for run in (base, candidate):
        claim = b.rollouts.start(run_id=run.id, task_id=task.id)
        b.attempts.update(claim.rollout.id, status="succeeded")
    labels = [row.task for row in b.compare_runs("base", "candidate").tasks]
    assert labels == ["b-task"] and "secret-task" not in labels


@pytest.mark.postgresql
def test_finished_rollouts_are_announced_only_to_their_own_project(postgres_databases):
    """On PostgreSQL a finish is announced on its project's channel: another project's process never gets
    the id (a waiter listens to its own project's channel only)."""
    import psycopg

    from rolloutdb.store.waiting import channel

    url = postgres_databases.new()
    with rolloutdb.connect(url, project="a") as a, rolloutdb.connect(url, project="b") as b:
        assert channel(a.project_id) != channel(b.project_id)
        theirs, mine = a.rollouts.start("x").rollout, b.rollouts.start("y").rollout
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as listener:
            listener.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel(b.project_id))))
            a.attempts.update(theirs.id, status="succeeded")
            b.attempts.update(mine.id, status="succeeded")
            heard = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
        assert heard == [mine.id]  # waiters on that channel are woken (test_waiting), b's only
