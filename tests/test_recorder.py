"""The recorder: the whole hierarchy recorded and read back, statistics by the store, eval/baseline
runs and their comparison, and training that goes on while the database is away."""

import logging
import threading
import time
import uuid
from datetime import datetime, timezone

import numpy as np
import pytest

import rolloutdb


@pytest.fixture
def project():
    return f"rec-{uuid.uuid4().hex[:8]}"


def record_training(recorder, steps=2, tasks=("t1", "t2"), size=4):
    """A small training run: rewards k/size for rollout k, success for the upper half, two turns each."""
    for number in range(steps):
        with recorder.step(number) as step:
            for task in tasks:
                group = step.group(task=task, size=size)
                for k in range(size):
                    with group.rollout(input={"task": task, "k": k}) as rollout:
                        rollout.turn(observation={"obs": 0}, action={"move": "left"}, reward=0.0)
                        rollout.turn(observation={"obs": 1}, action={"move": "right"}, reward=k / size, done=True,
                                     tokens={"prompt": 10 + k, "completion": 3})
                        rollout.finish(reward=k / size, success=k >= size // 2, validation={"passed": k >= size // 2})
            step.log(loss=1.0 / (number + 1), lr=0.1)


def test_the_hierarchy_is_recorded_and_read_back_exactly(session_database_url, project):
    with rolloutdb.Recorder(session_database_url, run="train", config={"lr": 0.1}, total_steps=2, project=project,
                            flush_interval=0.05) as recorder:
        record_training(recorder)
    store = rolloutdb.connect(session_database_url, project=project)
    run = store.runs.get("train")
    assert (run.kind, run.status, run.config, run.progress) == ("train", "completed", {"lr": 0.1}, 100.0)
    steps = store.steps.query(run_id=run.id)
    assert [(s.number, s.status, s.metrics["loss"]) for s in steps] == [(0, "completed", 1.0), (1, "completed", 0.5)]
    groups = store.groups.query(run_id=run.id, sort="created_at")
    assert len(groups) == 4 and all(g.size == 4 and g.status == "completed" for g in groups)
    rollouts = store.rollouts.query(group_id=groups[0].id, sort="created_at")
    assert [r.input["k"] for r in rollouts] == [0, 1, 2, 3]
    assert [(r.status, r.reward, r.success) for r in rollouts] == [
        ("succeeded", 0.0, False), ("succeeded", 0.25, False), ("succeeded", 0.5, True), ("succeeded", 0.75, True)]
    turns = store.turns.query(rollout_id=rollouts[3].id)
    assert [(t.turn_index, t.action, t.reward, t.done) for t in turns] == [
        (0, {"move": "left"}, 0.0, None), (1, {"move": "right"}, 0.75, True)]
    assert turns[1].tokens == {"prompt": 13, "completion": 3}
    task = store.tasks.query(external_id="t1")[0]
    assert rollouts[0].task_id == groups[0].task_id == task.id
    assert [c.new_status for c in store.history("rollout", rollouts[0].id)] == ["running", "succeeded"]


def test_statistics_are_computed_by_the_store(session_database_url, project):
    with rolloutdb.Recorder(session_database_url, run="train", total_steps=1, project=project,
                            flush_interval=0.05) as recorder:
        record_training(recorder, steps=1, tasks=("t1",))
    store = rolloutdb.connect(session_database_url, project=project)
    rewards = [0.0, 0.25, 0.5, 0.75]
    mean = sum(rewards) / 4
    std = (sum((r - mean) ** 2 for r in rewards) / 4) ** 0.5
    group = store.groups.query()[0]
    assert (group.rollout_count, group.completed_count, group.success_count) == (4, 4, 2)
    assert group.reward_mean == pytest.approx(mean) and group.reward_std == pytest.approx(std)
    metrics = store.steps.query()[0].metrics
    assert metrics["success_rate"] == 0.5 and metrics["reward_mean"] == pytest.approx(mean)


def test_eval_and_baseline_runs_link_to_training_and_compare(session_database_url, project):
    with rolloutdb.Recorder(session_database_url, run="train", total_steps=1, project=project,
                            flush_interval=0.05) as recorder:
        with recorder.baseline() as baseline:
            for task, successes in (("t1", 1), ("t2", 0)):
                group = baseline.group(task=task, size=2)
                for k in range(2):
                    rollout = group.rollout()
                    rollout.turn(action="a")
                    rollout.finish(reward=float(k < successes), success=k < successes)
        record_training(recorder, steps=1)
        with recorder.eval(step=0) as evaluation:
            for task in ("t1", "t2"):
                group = evaluation.group(task=task, size=2)
                for _ in range(2):
                    rollout = group.rollout()
                    rollout.turn(action="a")
                    rollout.turn(action="b")
                    rollout.finish(reward=1.0, success=True)
    store = rolloutdb.connect(session_database_url, project=project)
    train = store.runs.get("train")
    baseline_run, eval_run = store.runs.get("train/baseline"), store.runs.get("train/eval@0")
    assert (baseline_run.kind, baseline_run.parent_run_id) == ("baseline", train.id)
    assert (eval_run.kind, eval_run.parent_run_id, eval_run.parent_step) == ("eval", train.id, 0)
    comparison = store.compare_runs("train/baseline", "train/eval@0")
    # Baseline: t1 1 of 2 solved, t2 0 of 2, one turn each; eval: all solved in two turns.
    assert comparison.overall.a.success_rate == pytest.approx(0.25)
    assert comparison.overall.b.success_rate == pytest.approx(1.0)
    assert comparison.overall.success_rate_delta == pytest.approx(0.75)
    assert comparison.overall.turns_mean_delta == pytest.approx(1.0)
    by_task = {row.task: row for row in comparison.tasks}
    assert by_task["t1"].success_rate_delta == pytest.approx(0.5)
    assert by_task["t2"].reward_mean_delta == pytest.approx(1.0)


def test_a_value_that_cannot_be_stored_is_refused_at_the_call_and_the_rest_is_written(session_database_url, project):
    with rolloutdb.Recorder(session_database_url, run="train", project=project, flush_interval=0.05) as recorder:
        with recorder.step(0) as step:
            rollout = step.group(task="t", size=1).rollout()
            rollout.turn(action="fine")
            with pytest.raises(rolloutdb.InvalidInputError, match="action.not json: object is not JSON"):
                rollout.turn(action={"not json": object()})
            with pytest.raises(rolloutdb.InvalidInputError, match="NUL"):
                rollout.turn(observation={"text": "a\x00b"})
            with pytest.raises(rolloutdb.InvalidInputError, match=r"observation\.v: nan is not a JSON number"):
                rollout.turn(observation={"v": float("nan")})  # the store's rule, not null
            with pytest.raises(rolloutdb.InvalidInputError, match=r"reward: inf is not a JSON number"):
                rollout.turn(action="x", reward=float("inf"))
            rollout.turn(action="also fine")
            rollout.finish(reward=1.0)
        assert recorder.flush()
    store = rolloutdb.connect(session_database_url, project=project)
    assert [t.action for t in store.turns.query()] == ["fine", "also fine"]
    assert [t.turn_index for t in store.turns.query()] == [0, 1]


def test_a_value_of_the_wrong_type_is_refused_at_the_call_as_the_store_refuses_it(session_database_url, project):
    with pytest.raises(rolloutdb.InvalidInputError, match=r"total_steps: .* got str"):
        rolloutdb.Recorder(session_database_url, run="train", project=project, total_steps="10")
    with rolloutdb.Recorder(session_database_url, run="train", project=project, flush_interval=0.05) as recorder:
        with pytest.raises(rolloutdb.InvalidInputError, match=r"number: Input should be a valid integer, got str"):
            recorder.step("0")
        with recorder.step(0) as step:
            with pytest.raises(rolloutdb.InvalidInputError, match=r"size: .* got float"):
                step.group(task="t", size=1.0)
            group = step.group(task="t", size=np.int64(1))  # NumPy scalars are the numbers they hold
            with pytest.raises(rolloutdb.InvalidInputError, match=r"mode: Input should be 'train', 'val' or 'test'"):
                group.rollout(mode="training")
            rollout = group.rollout()
            for wrong in ({"reward": "1.5"}, {"done": "yes"}, {"success": 1}, {"thinking": b"hm"},
                          {"duration_seconds": -1.0}):
                with pytest.raises(rolloutdb.InvalidInputError, match=rf"cannot record this turn: {next(iter(wrong))}:"):
                    rollout.turn(action="x", **wrong)
            rollout.turn(action="kept", reward=1, done=np.bool_(True), metrics={"loss": np.float32(0.5)})
            with pytest.raises(rolloutdb.InvalidInputError, match=r"cannot record this rollout.end: success:"):
                rollout.finish(reward=1.0, success="yes")
            rollout.finish(reward=np.float64(1.0), success=True)
        assert recorder.flush()
    store = rolloutdb.connect(session_database_url, project=project)
    assert [(t.action, t.reward, t.done, t.metrics) for t in store.turns.query()] == [("kept", 1.0, True, {"loss": 0.5})]
    assert [(r.reward, r.success) for r in store.rollouts.query()] == [(1.0, True)]
    assert store.steps.count() == 1 and store.groups.get(group.id).size == 1


def test_a_record_the_database_refuses_is_reported_with_what_it_was_and_changes_nothing(
        session_database_url, project, caplog):
    store = rolloutdb.connect(session_database_url, project=project)
    with rolloutdb.Recorder(session_database_url, run="train", project=project, flush_interval=0.05) as recorder:
        with recorder.step(0) as step:
            group = step.group(task="t", size=2)
            cancelled, good = group.rollout(), group.rollout()
            assert recorder.flush()
            store.rollouts.cancel(cancelled.id, reason="operator")
            with caplog.at_level(logging.ERROR, logger="rolloutdb.recorder"):
                cancelled.finish(reward=1.0, success=True)
                good.finish(reward=1.0, success=True)
                result = recorder.flush()
        health = recorder.health()
    assert not result and result.complete
    assert len(result.rejected) == 1 and cancelled.id in result.rejected[0]
    assert "cannot go from 'cancelled' to 'succeeded'" in result.rejected[0]
    assert health.failed == 1 and cancelled.id in health.last_error
    assert f"rollout {cancelled.id}" in caplog.text
    assert store.rollouts.get(cancelled.id).status == "cancelled"
    assert [c.new_status for c in store.history("rollout", cancelled.id)] == ["running", "cancelled"]
    assert store.rollouts.get(good.id).status == "succeeded"
    assert store.groups.get(group.id).status == "completed"


def test_a_finished_run_is_not_recorded_into_again_unless_asked(session_database_url, project):
    with rolloutdb.Recorder(session_database_url, run="train", total_steps=2, project=project,
                            flush_interval=0.05) as recorder:
        record_training(recorder, steps=1)
        recorder.finish("failed", "preempted")
    with pytest.raises(rolloutdb.ConflictError, match="already ended as failed: start it under a new name"):
        rolloutdb.Recorder(session_database_url, run="train", project=project)
    with pytest.raises(rolloutdb.ConflictError, match="already exists"):
        rolloutdb.Recorder(session_database_url, run="train", project=project, resume=False)
    with pytest.raises(rolloutdb.NotFoundError, match="to resume"):
        rolloutdb.Recorder(session_database_url, run="other", project=project, resume=True)
    store = rolloutdb.connect(session_database_url, project=project)
    assert store.runs.count() == 1 and store.rollouts.count() == 8
    assert store.runs.get("train").status == "failed"


def test_a_group_smaller_than_declared_is_completed_with_its_run(session_database_url, project):
    """The README's example: a group declared with size=4 and one rollout recorded."""
    with rolloutdb.Recorder(session_database_url, run="readme", project=project, total_steps=2,
                            flush_interval=0.05) as recorder:
        for i in range(2):
            with recorder.step(i) as step:
                group = step.group(task="add-7", size=4)
                with group.rollout(input={"target": 7}) as rollout:
                    rollout.turn(observation={"value": 0}, action="+2", reward=0.0)
                    rollout.finish(reward=1.0, success=True)
    store = rolloutdb.connect(session_database_url, project=project)
    assert [(g.status, g.rollout_count, g.success_count) for g in store.groups.query()] == [("completed", 1, 1)] * 2
    run = store.runs.get("readme")
    assert (run.status, run.progress) == ("completed", 100.0)


@pytest.mark.postgresql
def test_training_goes_on_while_the_database_is_away_and_nothing_is_lost_or_doubled(
        proxied_postgres, tmp_path, caplog):
    direct, proxied, proxy = proxied_postgres
    with caplog.at_level(logging.WARNING, logger="rolloutdb.recorder"):
        recorder = rolloutdb.Recorder(proxied, run="train", total_steps=3, flush_interval=0.05,
                                      max_pending=50, journal_dir=tmp_path)
        record_training(recorder, steps=1)
        assert recorder.flush(timeout=30)
        proxy.cut()
        started = time.monotonic()
        for number in (1, 2):  # the loop never raises and never waits for the database
            record_training_step(recorder, number)
        assert time.monotonic() - started < 5
        assert not recorder.flush(timeout=1)
        health = recorder.health()
        assert not health.connected and health.spilled > 0  # over max_pending: part went to the journal
        proxy.restore()
        assert recorder.flush(timeout=60)
        recorder.close()
    warnings = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(warnings) == 1  # one warning for the outage, not one per record
    store = rolloutdb.connect(direct)
    run = store.runs.get("train")
    assert store.rollouts.count(run_id=run.id) == 3 * 2 * 4
    assert store.turns.count() == 8 * 2 + 16 * 1  # step 0: two turns each; steps 1-2: one each
    assert [s.status for s in store.steps.query(run_id=run.id)] == ["completed"] * 3
    assert recorder.health().failed == 0 and not list(tmp_path.iterdir())


def train_in_process(url: str, project: str, steps: int) -> None:
    """A recorded training loop with no job code in it: each recorder.step() is the checkpoint."""
    with rolloutdb.Recorder(url, run="train", total_steps=steps, project=project, flush_interval=0.05,
                            control_interval=0.0) as recorder:
        start = (recorder.saved_state or {}).get("next_step", 0)
        for number in range(start, steps):
            with recorder.step(number, state={"next_step": number}) as step:
                group = step.group(task="t", size=1)
                with group.rollout() as rollout:
                    rollout.finish(reward=1.0, success=True)
            time.sleep(0.05)


def test_a_recorded_training_loop_is_paused_and_resumed_from_outside(session_database_url, project):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    first = context.Process(target=train_in_process, args=(session_database_url, project, 400))
    first.start()
    store = rolloutdb.connect(session_database_url, project=project)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and store.steps.count() < 3:
        time.sleep(0.05)
    store.jobs.request_pause("train")
    first.join(timeout=60)
    assert first.exitcode == 0
    paused = store.runs.get("train")
    recorded = store.steps.count()
    assert paused.status == "paused" and 3 <= recorded < 400
    assert store.rollouts.count() == recorded  # everything recorded before the pause was written

    second = context.Process(target=train_in_process, args=(session_database_url, project, recorded + 5))
    second.start()
    second.join(timeout=60)
    run = store.runs.get("train")
    assert run.status == "completed" and store.steps.count() == recorded + 5
    assert sorted(s.number for s in store.steps.query(limit=None)) == list(range(recorded + 5))
    assert [c.new_status for c in store.history("run", "train")] == ["running", "paused", "running", "completed"]


@pytest.mark.postgresql
def test_a_database_that_hangs_never_blocks_the_loop_and_is_treated_like_one_that_refuses(
        proxied_postgres, tmp_path, caplog):
    direct, proxied, proxy = proxied_postgres
    with caplog.at_level(logging.WARNING, logger="rolloutdb.recorder"):
        recorder = rolloutdb.Recorder(proxied, run="train", total_steps=3, flush_interval=0.05, timeout=2,
                                      control_interval=0.1, journal_dir=tmp_path)
        record_training(recorder, steps=1)
        assert recorder.flush(timeout=30)
        proxy.hang()
        started = time.monotonic()
        for number in (1, 2):  # step() checks for a pause: it must not ask the silent database
            record_training_step(recorder, number)
            time.sleep(0.5)
        assert time.monotonic() - started < 3  # 1 s of sleeping; the old recorder waited for the outage
        deadline = time.monotonic() + 30
        while recorder.health().connected and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not recorder.health().connected and "did not answer" in recorder.health().last_error
        proxy.restore()
        assert recorder.flush(timeout=60)
        recorder.close()
    assert len([r for r in caplog.records if "cannot write" in r.getMessage()]) == 1
    store = rolloutdb.connect(direct)
    run = store.runs.get("train")
    assert run.status == "completed" and store.rollouts.count(run_id=run.id) == 3 * 2 * 4
    assert [s.status for s in store.steps.query(run_id=run.id)] == ["completed"] * 3


def record_training_step(recorder, number, tasks=("t1", "t2"), size=4):
    with recorder.step(number) as step:
        for task in tasks:
            group = step.group(task=task, size=size)
            for k in range(size):
                with group.rollout(input={"k": k}) as rollout:
                    rollout.turn(action="x", reward=1.0)
                    rollout.finish(reward=1.0, success=True)


def test_the_journal_replays_only_into_the_database_and_project_it_was_recorded_for(tmp_path):
    journal = tmp_path / "journal"
    away = f"sqlite:///{tmp_path / 'not-yet' / 'a.db'}"  # its folder does not exist: the database is away
    with rolloutdb.Recorder(away, run="nightly", project="team-a", journal_dir=journal, timeout=2,
                            start_timeout=1) as recorder:
        record_training(recorder, steps=1, tasks=("secret-task",))
    assert recorder.health().spilled > 0
    [kept] = rolloutdb.recorder.list_journals(journal)
    assert (kept.project, kept.run, kept.live) == ("team-a", "nightly", False)
    other = f"sqlite:///{tmp_path / 'b.db'}"
    rolloutdb.Recorder(other, run="nightly", project="team-b", journal_dir=journal).close()
    with rolloutdb.connect(other, project="team-b") as store:
        assert store.rollouts.count() == 0 and store.tasks.count() == 0
    assert kept.path.exists()
    (tmp_path / "not-yet").mkdir()
    with rolloutdb.Recorder(away, run="later", project="team-a", journal_dir=journal) as recorder:
        pass
    assert recorder.health().replayed == kept.records and not kept.path.exists()
    with rolloutdb.connect(away, project="team-a") as store:
        assert store.rollouts.count() == 4 and store.tasks.query()[0].external_id == "secret-task"
        assert store.runs.get("nightly").status == "completed"


def test_with_no_database_and_no_journal_close_returns_and_says_what_was_lost(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    away = f"sqlite:///{tmp_path / 'not-yet' / 'a.db'}"
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="rolloutdb.recorder"):
        with rolloutdb.Recorder(away, run="r", journal_dir=blocker / "journal", timeout=2, start_timeout=1,
                                max_pending=10) as recorder:
            record_training(recorder, steps=1)
        health = recorder.health()
    assert time.monotonic() - started < 20
    assert health.written == 0 and health.dropped == health.recorded > 0
    assert "cannot write the journal" in health.last_error
    assert "records lost" in caplog.text


TRAINING_SCRIPT = """
import sys, time, rolloutdb
url, steps = sys.argv[1], int(sys.argv[2])
with rolloutdb.Recorder(url, run="train", total_steps=steps, flush_interval=0.05, control_interval=0.1) as recorder:
    start = (recorder.saved_state or {}).get("next_step", 0)
    for number in range(start, steps):
        with recorder.step(number, state={"next_step": number}) as step:
            with step.group(task="t", size=1).rollout() as rollout:
                rollout.turn(action="a")
                print("step", number, flush=True)
                time.sleep(0.1)
                rollout.finish(reward=1.0, success=True)
"""


def run_script(tmp_path, *args, **popen):
    import subprocess
    import sys

    script = tmp_path / "train.py"
    script.write_text(TRAINING_SCRIPT)
    return subprocess.Popen([sys.executable, str(script), *args], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def wait_for_steps(process, count):
    for _ in range(count):
        line = process.stdout.readline()
        assert line.startswith("step"), process.stderr.read()


def test_ctrl_c_pauses_the_run_and_says_how_to_resume(tmp_path):
    import signal

    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = run_script(tmp_path, url, "100")
    wait_for_steps(first, 3)
    first.send_signal(signal.SIGINT)
    _, errors = first.communicate(timeout=60)
    assert first.returncode != 0 and "KeyboardInterrupt" in errors
    assert "paused" in errors and "Run the same code again to resume" in errors
    with rolloutdb.connect(url) as store:
        run = store.runs.get("train")
        assert run.status == "paused" and run.error is None
        interrupted = store.rollouts.query(status="cancelled")
        assert len(interrupted) == 1 and "interrupted" in interrupted[0].error
        done = store.steps.count(status="completed")
    second = run_script(tmp_path, url, str(done + 2))
    assert second.wait(timeout=60) == 0, second.stderr.read()
    with rolloutdb.connect(url) as store:
        assert store.runs.get("train").status == "completed"
        assert store.steps.count(status="completed") == done + 2


def test_ctrl_c_while_the_recorder_starts_pauses_the_run_too(tmp_path, caplog):
    """Starting waits (up to ``start_timeout``) for the database to take the run, about a second while the writer
    process comes up: the moment a user presses Ctrl-C on a script that seems stuck. The run then stays paused, as
    after a Ctrl-C in the loop, not running forever with nobody recording it."""
    import os
    import signal

    url = f"sqlite:///{tmp_path / 'r.db'}"
    rolloutdb.connect(url).close()
    interrupt = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    try:
        with pytest.raises(KeyboardInterrupt), rolloutdb.Recorder(url, run="interrupted"):
            time.sleep(10)  # reached only if starting took longer than the interrupt
    finally:
        interrupt.join()
    with rolloutdb.connect(url) as store:
        runs = store.runs.query(name="interrupted")
    assert [run.status for run in runs] in ([], ["paused"])  # [] when it came before the run was recorded
    if runs:
        assert "paused: interrupted by Ctrl-C" in caplog.text


def test_a_run_whose_process_was_killed_is_taken_over_and_counts_only_real_steps(tmp_path):
    import signal

    url = f"sqlite:///{tmp_path / 'r.db'}"
    killed = run_script(tmp_path, url, "500")
    wait_for_steps(killed, 3)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=10)
    with pytest.raises(rolloutdb.ConflictError, match="already running"):
        rolloutdb.Recorder(url, run="train", total_steps=5)  # its heartbeat is still fresh
    time.sleep(1.5)
    with rolloutdb.Recorder(url, run="train", total_steps=5, stale_after=1.0, flush_interval=0.05) as recorder:
        with recorder.step(4) as step:
            with step.group(task="t", size=1).rollout() as rollout:
                rollout.finish(reward=1.0, success=True)
    with rolloutdb.connect(url) as store:
        run = store.runs.get("train")
        completed = store.steps.count(status="completed")
        assert run.status == "completed" and run.total_steps == 5
        assert run.progress == pytest.approx(100.0 * completed / 5) and completed < 5
        assert store.rollouts.count(status="running") == 0 and store.groups.count(status="running") == 0
        assert any("went quiet" in (event.message or "") for event in store.jobs.logs("train"))


def test_records_kept_in_memory_and_journal_while_the_database_is_away_all_arrive_exactly_once(tmp_path):
    away = tmp_path / "not-yet"
    recorder = rolloutdb.Recorder(f"sqlite:///{away / 'r.db'}", run="r", total_steps=6, journal_dir=tmp_path / "j",
                                  timeout=2, start_timeout=0.5, max_pending=30, max_lag=0.2, flush_interval=0.05)
    for number in range(3):
        record_training_step(recorder, number)
        time.sleep(0.3)
    health = recorder.health()
    assert not health.connected and health.spilled > 0 and health.written == 0
    away.mkdir()
    for number in range(3, 6):
        record_training_step(recorder, number)
    assert recorder.flush(timeout=60)
    recorder.close()
    health = recorder.health()
    per_step = 1 + 2 + 8 * 3 + 1  # step start, groups, rollouts (start, turn, end), step end
    assert health.recorded == health.written == 2 + 6 * per_step
    assert (health.failed, health.dropped, health.spilled, health.pending) == (0, 0, 0, 0)
    with rolloutdb.connect(f"sqlite:///{away / 'r.db'}") as store:
        assert store.runs.get("r").status == "completed"
        assert (store.rollouts.count(status="succeeded"), store.turns.count()) == (48, 48)
        assert all([c.new_status for c in store.history("rollout", rollout.id)] == ["running", "succeeded"]
                   for rollout in store.rollouts.query(limit=None))
    assert not list((tmp_path / "j").rglob("*.jsonl"))


def test_a_task_of_another_project_is_refused_not_linked(session_database_url, project):
    with rolloutdb.connect(session_database_url, project=f"{project}-a") as store_a:
        [task_a] = store_a.tasks.save([{"external_id": "secret", "instruction": "team a's"}])
    with rolloutdb.Recorder(session_database_url, run="train", project=f"{project}-b",
                            flush_interval=0.05) as recorder:
        with recorder.step(0) as step:
            group = step.group(task=task_a, size=1)
            with group.rollout() as rollout:
                rollout.finish(reward=1.0)
        result = recorder.flush()
    assert not result and f"task {task_a.id!r} not found in project '{project}-b'" in result.rejected[0]
    with rolloutdb.connect(session_database_url, project=f"{project}-b") as store_b:
        assert store_b.groups.count() == 0 and store_b.tasks.count() == 0


def test_ends_are_the_loops_times_not_the_writers(store):
    """A rollout, its group, its step and the run end when the training loop ends them: the writer, batching, may
    write them seconds later on a long run, and durations (summaries, `runs show`, the dashboard) must not count
    how far it lagged."""
    recorder = rolloutdb.Recorder(store, run="stamped", flush_interval=30)  # the writer waits: nothing to fill a batch
    started = datetime.now(timezone.utc)
    with recorder.step(0) as step, step.group(task="t", size=1).rollout() as rollout:
        rollout.turn(action="a")
        rollout.finish(reward=1.0)
    ended = datetime.now(timezone.utc)
    time.sleep(1.0)
    recorder.finish()
    finished = datetime.now(timezone.utc)
    time.sleep(1.0)
    recorder.close()
    run = store.runs.get("stamped")
    [step_row], [group], [rollout_row] = store.steps.query(run_id=run.id), store.groups.query(run_id=run.id), \
        store.rollouts.query(run_id=run.id)
    for part in (rollout_row, group, step_row):
        assert started <= part.created_at <= part.started_at <= part.ended_at <= ended, part
    assert run.created_at <= run.started_at <= started and ended < run.ended_at <= finished
