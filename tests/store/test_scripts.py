"""Scripts: recorded from a successful rollout's actions, versioned per (task, name) with one active version,
replays counted exactly however many processes report them at once."""

import concurrent.futures
import hashlib
import json
import multiprocessing
import uuid

import pytest
import sqlalchemy

import rolloutdb
from conftest import skip_on_http
from rolloutdb.errors import InvalidInputError, NotFoundError, NotReplayableError

TAP = {"type": "tap", "x": 120, "y": 480}
TYPE = {"type": "type", "text": "hello"}
DONE = {"type": "done"}


def successful_rollout(store, task, actions, *, status="succeeded", success=True):
    """A rollout of ``task`` that took ``actions`` (None: a turn without an action) and ended with ``status``."""
    claim = store.rollouts.start({"task": task.external_id}, task_id=task.id)
    for index, action in enumerate(actions):
        store.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=index,
                           thinking=f"step {index}", action=action)
    store.attempts.update(claim.rollout.id, status=status)
    if success is not True:
        store.rollouts.update(claim.rollout.id, success=success)
    return claim.rollout


@pytest.fixture
def task(store):
    return store.tasks.save([{"external_id": f"wifi-on-{uuid.uuid4().hex[:6]}", "instruction": "turn wifi on"}])[0]


def test_a_script_holds_the_actions_of_a_successful_rollout_in_order(store, task):
    rollout = successful_rollout(store, task, [TAP, None, TYPE, DONE])
    script = store.scripts.record(rollout.id, name="main", description="from the first success", device="pixel-7",
                                  model="agent-v3")
    assert script.actions == [TAP, TYPE, DONE] and script.total_steps == 3
    assert (script.task_id, script.source_rollout_id, script.version, script.active) == (task.id, rollout.id, 1, True)
    assert (script.description, script.device, script.model) == ("from the first success", "pixel-7", "agent-v3")
    canonical = json.dumps([TAP, TYPE, DONE], sort_keys=True, separators=(",", ":")).encode()
    assert script.checksum == hashlib.sha256(canonical).hexdigest()
    assert (script.replay_count, script.success_count, script.mean_execution_seconds) == (0, 0, None)
    assert store.scripts.get(script.id) == script


def test_versions_count_up_per_task_and_name_and_the_same_actions_are_one_version(store, task):
    first = store.scripts.record(successful_rollout(store, task, [TAP, DONE]).id, name="main")
    again = store.scripts.record(successful_rollout(store, task, [TAP, DONE]).id, name="main")
    assert again == first  # the same actions, recorded again: the existing version, unchanged
    second = store.scripts.record(successful_rollout(store, task, [TAP, TYPE, DONE]).id, name="main")
    other = store.scripts.record(successful_rollout(store, task, [TAP, DONE]).id, name="fast")
    assert (second.version, second.active, other.version, other.active) == (2, True, 1, True)
    assert store.scripts.get(first.id).active is False  # the newest on record is the active one
    assert [s.version for s in store.scripts.list(task.external_id, name="main")] == [2, 1]
    assert {s.id for s in store.scripts.list(task.id, active=True)} == {second.id, other.id}
    assert store.scripts.count(task_id=task.id) == 3


def test_activate_switches_the_active_version(store, task):
    first = store.scripts.record(successful_rollout(store, task, [TAP]).id, name="main")
    second = store.scripts.record(successful_rollout(store, task, [TYPE]).id, name="main")
    assert store.scripts.activate(first.id).active is True
    assert [(s.version, s.active) for s in store.scripts.list(task.id, name="main")] == [(2, False), (1, True)]
    assert store.scripts.activate(first.id).active is True  # already active: stays so
    assert store.scripts.activate(second.id).active is True and not store.scripts.get(first.id).active
    with pytest.raises(NotFoundError, match="script 'nope' not found"):
        store.scripts.activate("nope")


def test_switches_at_once_leave_one_active_version(store, task):
    versions = [store.scripts.record(successful_rollout(store, task, [{"n": n}]).id, name="main") for n in range(3)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: store.scripts.activate(versions[n % 3].id), range(24)))
    assert sum(script.active for script in store.scripts.list(task.id)) == 1


def test_the_database_holds_one_active_version_per_task_and_name(store, task):
    skip_on_http(store, "writes to the database directly")
    script = store.scripts.record(successful_rollout(store, task, [TAP]).id, name="main")
    row = {**script.model_dump(), "id": str(uuid.uuid4()), "version": 2, "checksum": "0" * 64}
    with pytest.raises(sqlalchemy.exc.IntegrityError), store.engine.begin() as connection:
        connection.execute(rolloutdb.schema.scripts.insert(), row)


@pytest.mark.parametrize("outcome", [{"status": "failed"}, {"status": "succeeded", "success": False}])
def test_a_rollout_that_did_not_succeed_is_refused_and_nothing_is_written(store, task, outcome):
    rollout = successful_rollout(store, task, [TAP], **outcome)
    with pytest.raises(NotReplayableError, match=f"rollout '{rollout.id}' .*a script is recorded from a successful"):
        store.scripts.record(rollout.id, name="main")
    unfinished = store.rollouts.start(1, task_id=task.id).rollout
    with pytest.raises(NotReplayableError, match="preparing"):
        store.scripts.record(unfinished.id, name="main")
    assert store.scripts.count() == 0


def test_a_rollout_without_a_task_or_an_action_is_refused(store, task):
    no_actions = successful_rollout(store, task, [None, None])
    with pytest.raises(NotReplayableError, match="no turn with an action"):
        store.scripts.record(no_actions.id, name="main")
    claim = store.rollouts.start(1)
    store.attempts.update(claim.rollout.id, status="succeeded")
    with pytest.raises(NotReplayableError, match="has no task"):
        store.scripts.record(claim.rollout.id, name="main")
    with pytest.raises(NotFoundError):
        store.scripts.record("no-such-rollout", name="main")
    for bad in ("", "x" * 201, 7):
        with pytest.raises(InvalidInputError):
            store.scripts.record(successful_rollout(store, task, [TAP]).id, name=bad)
    assert store.scripts.count() == 0


def test_report_counts_replays_and_keeps_the_running_mean_time(store, task):
    script = store.scripts.record(successful_rollout(store, task, [TAP]).id, name="main")
    for success, seconds in ((True, 2.0), (False, 4), (True, 9.0)):
        reported = store.scripts.report(script.id, success=success, seconds=seconds)
    assert (reported.replay_count, reported.success_count) == (3, 2)
    assert reported.mean_execution_seconds == pytest.approx(5.0) and reported.success_rate == pytest.approx(2 / 3)
    for bad in ({"success": 1, "seconds": 1.0}, {"success": True, "seconds": -1.0},
                {"success": True, "seconds": float("nan")}, {"success": True, "seconds": "1"}):
        with pytest.raises(InvalidInputError):
            store.scripts.report(script.id, **bad)
    with pytest.raises(NotFoundError):
        store.scripts.report("nope", success=True, seconds=1.0)
    assert store.scripts.get(script.id) == reported


def test_best_is_the_active_script_with_the_best_success_rate_then_the_faster(store, task):
    scripts = [store.scripts.record(successful_rollout(store, task, [TAP, {"n": n}]).id, name=f"s{n}")
               for n in range(4)]
    assert store.scripts.best(task.external_id) is not None  # none replayed yet: still a script to try
    for script, outcomes in zip(scripts, [[(True, 9.0), (True, 9.0)], [(True, 3.0), (True, 3.0)],
                                          [(True, 1.0), (False, 1.0)], []]):
        for success, seconds in outcomes:
            store.scripts.report(script.id, success=success, seconds=seconds)
    assert store.scripts.best(task.id).id == scripts[1].id  # 100% as s0, and faster
    newer = store.scripts.record(successful_rollout(store, task, [TYPE]).id, name="s1")  # s1's active version now
    assert store.scripts.best(task.external_id).id == scripts[0].id
    assert newer.replay_count == 0
    empty = store.tasks.save([{"external_id": f"empty-{uuid.uuid4().hex[:6]}"}])[0]
    assert store.scripts.best(empty.external_id) is None
    with pytest.raises(NotFoundError, match="no task with id or external id 'nope'"):
        store.scripts.best("nope")


def test_a_replay_is_a_rollout_that_names_its_script(store, task):
    script = store.scripts.record(successful_rollout(store, task, [TAP]).id, name="main")
    queued = store.rollouts.enqueue({"replay": True}, task_id=task.id, script_id=script.id)
    started = store.rollouts.start({"replay": True}, task_id=task.id, script_id=script.id).rollout
    assert queued.script_id == started.script_id == script.id
    assert {r.id for r in store.rollouts.query(script_id=script.id)} == {queued.id, started.id}
    assert store.rollouts.get(queued.id).script_id == script.id
    with pytest.raises(NotFoundError, match="script 'nope' not found"):
        store.rollouts.enqueue(1, script_id="nope")


def report_replays(url: str, project: str, script_id: str, worker: int, count: int, start, errors) -> None:
    start.wait()
    try:
        with rolloutdb.connect(url, project=project) as store:
            for n in range(count):
                store.scripts.report(script_id, success=n % 2 == 0, seconds=float(worker))
    except Exception as exc:  # reported to the parent: a child's traceback would be lost
        errors.put(f"worker {worker}: {type(exc).__name__}: {exc}")


PROCESSES, REPORTS = 8, 25


def test_replays_reported_by_8_processes_at_once_all_count(session_database_url):
    project = f"replays-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(session_database_url, project=project) as store:
        task = store.tasks.save([{"external_id": "t"}])[0]
        script = store.scripts.record(successful_rollout(store, task, [TAP]).id, name="main")
    # Processes forked from one that imported everything once: eight spawned ones would each import it all.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["rolloutdb.store", report_replays.__module__])
    start, errors = context.Event(), context.Queue()
    workers = [context.Process(target=report_replays, args=(session_database_url, project, script.id, n, REPORTS,
                                                            start, errors)) for n in range(PROCESSES)]
    for process in workers:
        process.start()
    start.set()
    for process in workers:
        process.join(timeout=120)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert failures == []
    assert [process.exitcode for process in workers] == [0] * PROCESSES
    with rolloutdb.connect(session_database_url, project=project) as store:
        counted = store.scripts.get(script.id)
    assert (counted.replay_count, counted.success_count) == (PROCESSES * REPORTS, PROCESSES * ((REPORTS + 1) // 2))
    assert counted.mean_execution_seconds == pytest.approx(sum(range(PROCESSES)) / PROCESSES)
