"""`rolloutdb runs`, `steps`, `groups`, `tasks` and `history`, on a fresh SQLite file and a fresh PostgreSQL database."""

import os
import subprocess
import sys
from pathlib import Path

import rolloutdb
from cli.clitools import RUN, fails, line_with, refused, succeeds


# -- runs and history ----------------------------------------------------------------------------------------


def test_runs_show_gives_fields_steps_and_counts_by_status(demo_url):
    output = succeeds(demo_url, "runs", "show", RUN)
    with rolloutdb.connect(demo_url) as store:
        run = store.runs.get(RUN)
        steps = store.steps.query(run_id=run.id)
        succeeded = store.rollouts.count(run_id=run.id, status="succeeded")
    assert line_with(output, "id").split() == ["id", run.id]
    assert line_with(output, "status").split() == ["status", "completed"]
    header = line_with(output, "step ").split()
    assert header[:2] == ["step", "status"] and "reward_mean" in header
    for step in steps:
        row = line_with(output, f"{step.number} ").split()
        assert row[:2] == [str(step.number), "completed"]
        assert row[header.index("reward_mean")] == f"{step.metrics['reward_mean']:.4g}"
    assert line_with(output, "groups").split() == ["groups", "6:", "6", "completed"]
    assert line_with(output, "rollouts").startswith("rollouts  24:")
    assert f"{succeeded} succeeded" in line_with(output, "rollouts")
    assert succeeds(demo_url, "runs", "show", run.id) == output  # by id as well as by name


def test_runs_ls_lists_runs_and_filters_them(demo_url):
    with rolloutdb.connect(demo_url) as store:
        store.runs.create(name="queued-eval", kind="eval")
    output = succeeds(demo_url, "runs", "ls")
    assert line_with(output, RUN).split()[:4] == [RUN, "train", "completed", "100%"]
    assert line_with(output, "queued-eval").split()[:4] == ["queued-eval", "eval", "pending", "0%"]
    assert output.index("queued-eval") < output.index(RUN)  # newest first
    oldest_first = succeeds(demo_url, "runs", "ls", "--asc")
    assert oldest_first.index(RUN) < oldest_first.index("queued-eval")

    only_pending = succeeds(demo_url, "runs", "ls", "--status", "pending")
    assert "queued-eval" in only_pending and RUN not in only_pending
    only_train = succeeds(demo_url, "runs", "ls", "--kind", "train")
    assert RUN in only_train and "queued-eval" not in only_train
    assert "1 of 2 runs shown" in succeeds(demo_url, "runs", "ls", "--limit", "1")
    assert "No runs" in succeeds(demo_url, "runs", "ls", "--status", "failed")
    # statuses and kinds are choices: a wrong one is refused before the database is opened, naming the right ones
    assert "'finished' is not one of 'pending', 'running'" in refused(demo_url, "runs", "ls", "--status", "finished")
    assert "'training' is not one of 'train', 'eval'" in refused(demo_url, "runs", "ls", "--kind", "training")
    assert "cannot sort runs by 'colour'" in fails(demo_url, "runs", "ls", "--sort", "colour")


def test_an_unknown_run_is_a_clear_error(demo_url):
    error = fails(demo_url, "runs", "show", "no-such-run")
    assert error.startswith("Error: no run with id or name 'no-such-run'")
    assert "no run with id or name 'no-such-run'" in fails(demo_url, "history", "run", "no-such-run")


def test_history_of_a_run_shows_its_status_changes_in_order(demo_url):
    output = succeeds(demo_url, "history", "run", RUN)
    changes = ["(new) → pending", "pending → running", "running → completed"]
    positions = [output.index(change) for change in changes]
    assert positions == sorted(positions)
    completed = next(line for line in output.splitlines() if "running → completed" in line)
    assert "all steps completed" in completed  # the reason given with the change


def test_history_of_a_rollout_and_of_an_unknown_id(demo_url):
    with rolloutdb.connect(demo_url) as store:
        rollout = store.rollouts.query(status="succeeded", limit=1)[0]
    output = succeeds(demo_url, "history", "rollout", rollout.id)
    changes = ["(new) → queuing", "queuing → preparing", "preparing → running", "running → succeeded"]
    positions = [output.index(change) for change in changes]
    assert positions == sorted(positions)
    assert "step 'nope' not found in project 'default'" in fails(demo_url, "history", "step", "nope")




# -- steps, groups and tasks ------------------------------------------------------------------------------------


def test_steps_ls_lists_the_steps_of_a_run_with_their_metrics(demo_url):
    with rolloutdb.connect(demo_url) as store:
        steps = store.steps.query(run_id=store.runs.get(RUN).id)
    output = succeeds(demo_url, "steps", "ls", RUN)
    header = line_with(output, "step ").split()
    assert header[:2] == ["step", "status"] and {"reward_mean", "success_rate", "rollouts"} <= set(header)
    for step in steps:
        row = line_with(output, f"{step.number} ").split()
        assert row[:2] == [str(step.number), "completed"]
        assert row[header.index("success_rate")] == f"{step.metrics['success_rate']:.4g}"
    last = succeeds(demo_url, "steps", "ls", RUN, "--limit", "1")
    assert line_with(last, "2 ").startswith("2 ") and "The last 1 of 3 steps shown" in last
    assert "No steps in run" in succeeds(demo_url, "steps", "ls", RUN, "--status", "failed")
    assert "no run with id or name 'nope'" in fails(demo_url, "steps", "ls", "nope")


def test_groups_ls_filters_by_run_step_and_task_and_shows_their_statistics(demo_url):
    with rolloutdb.connect(demo_url) as store:
        groups = store.groups.query(step=1, limit=None)
        task_names = {task.id: task.external_id for task in store.tasks.query(limit=None)}
        task = store.tasks.get(groups[0].task_id)
    output = succeeds(demo_url, "groups", "ls", "--run", RUN, "--step", "1", "--wide")
    rows = {line.split()[0]: line.split() for line in output.splitlines() if line.split()
            and line.split()[0] in {group.id for group in groups}}
    assert set(rows) == {group.id for group in groups}
    for group in groups:
        row = rows[group.id]
        assert row[1:4] == [f"{RUN}/1", task_names[group.task_id], "completed"]
        assert row[4:6] == [f"{group.completed_count}/4", f"{group.success_count}/{group.completed_count}"]
    of_task = succeeds(demo_url, "groups", "ls", "--task", task.external_id, "--limit", "100")
    assert "3 of" not in of_task and len([line for line in of_task.splitlines() if task.external_id in line]) == 3
    assert "task 'nope' not found" in fails(demo_url, "groups", "ls", "--task", "nope")


def test_tasks_ls_lists_the_catalogue_and_filters_it(demo_url):
    with rolloutdb.connect(demo_url) as store:
        store.tasks.save([{"external_id": "other/1", "dataset": "other", "split": "test", "tags": ["hard"],
                           "instruction": "something else"}])
    output = succeeds(demo_url, "tasks", "ls")
    assert line_with(output, "demo/arith-0001").split()[:6] == [
        "demo/arith-0001", "demo-arithmetic", "train", "demo,", "arithmetic", "demo-exact-match"]
    assert "What is 17 + 25?" in line_with(output, "demo/arith-0001")
    assert line_with(output, "other/1").split()[:4] == ["other/1", "other", "test", "hard"]
    only_demo = succeeds(demo_url, "tasks", "ls", "--dataset", "demo-arithmetic")
    assert "demo/arith-0002" in only_demo and "other/1" not in only_demo
    assert "other/1" in succeeds(demo_url, "tasks", "ls", "--tag", "hard")
    assert "No tasks in project 'default' match the filters." in succeeds(demo_url, "tasks", "ls", "--split", "x")


def test_runs_show_follow_prints_steps_as_they_end_until_the_run_ends(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        run = store.runs.create(name="live", status="running", total_steps=2)
        source = str(Path(rolloutdb.__file__).parent.parent)
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
                       "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
        follower = subprocess.Popen(
            [sys.executable, "-m", "rolloutdb.cli", "runs", "show", "live", "--follow", "--url", fresh_database_url],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment)
        try:
            shown = ""
            while not shown.rstrip().splitlines() or not shown.rstrip().splitlines()[-1].startswith("rollouts"):
                line = follower.stdout.readline()
                assert line, shown  # it printed the run, and follows it from there
                shown += line
            for number, reward in ((0, 0.25), (1, 0.75)):
                step = store.steps.create(run_id=run.id, number=number, status="running")
                store.steps.update(step.id, status="completed", metrics={"reward": reward})
            store.runs.update(run.id, status="completed", reason="trained")
            output, _ = follower.communicate(timeout=60)
        finally:
            follower.kill()
    assert follower.returncode == 0
    followed = output.strip().splitlines()
    assert [line.split("  ", 1)[1] for line in followed] == [  # after the time
        "step 0 completed: reward 0.25", "step 1 completed: reward 0.75",
        "run live: running → completed (trained)"]
