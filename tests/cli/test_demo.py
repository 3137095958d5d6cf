"""`rolloutdb demo`, on a fresh SQLite file and a fresh PostgreSQL database."""

import logging
import time

import rolloutdb
from rolloutdb import demo as demo_module
from rolloutdb.demo import TARGETS
from cli.clitools import fails, line_with, succeeds

DEMO_STEPS = 5


def test_demo_trains_and_records_the_whole_hierarchy(fresh_database_url):
    succeeds(fresh_database_url, "demo", "--name", "demo", "--steps", str(DEMO_STEPS))
    with rolloutdb.connect(fresh_database_url) as store:
        run = store.runs.get("demo")
        steps = store.steps.query(run_id=run.id)
        tasks = store.tasks.count()
        assert run.status == "completed" and run.progress == 100.0 and run.config["group_size"] == 4
        assert [(step.number, step.status) for step in steps] == [(n, "completed") for n in range(DEMO_STEPS)]
        assert all(0.0 <= step.metrics["reward_mean"] <= 1.0 for step in steps)
        assert store.groups.count(run_id=run.id, status="completed") == DEMO_STEPS * tasks
        assert store.rollouts.count(run_id=run.id) == DEMO_STEPS * tasks * 4
        assert {r.name for r in store.runs.query(parent_run_id=run.id)} == {"demo/baseline", "demo/eval@4"}
        # A second demo loads the same task set back instead of saving it twice.
    succeeds(fresh_database_url, "demo", "--name", "second-demo", "--steps", "1")
    with rolloutdb.connect(fresh_database_url) as store:
        assert store.tasks.count() == tasks and store.validators.count() == 1


def test_demo_prints_the_run_and_the_eval_against_the_baseline(fresh_database_url):
    demo_output = succeeds(fresh_database_url, "demo", "--name", "shown", "--steps", "2")
    assert demo_output.startswith(succeeds(fresh_database_url, "runs", "show", "shown"))
    assert demo_output.endswith(succeeds(fresh_database_url, "runs", "compare", "shown/baseline", "shown/eval@1"))


# -- demo run names ---------------------------------------------------------------------------------------------


def test_demo_twice_without_a_name_records_two_runs(fresh_database_url, monkeypatch):
    monkeypatch.setattr(demo_module, "default_name", lambda: "demo-same-second")
    first = succeeds(fresh_database_url, "demo", "--steps", "1")
    second = succeeds(fresh_database_url, "demo", "--steps", "1")
    assert line_with(first, "run").split() == ["run", "demo-same-second"]
    assert line_with(second, "run").split() == ["run", "demo-same-second-2"]
    with rolloutdb.connect(fresh_database_url) as store:
        runs = store.runs.query(kind="train", limit=None)
        assert sorted((run.name, run.status) for run in runs) == [("demo-same-second", "completed"),
                                                                 ("demo-same-second-2", "completed")]


def test_demo_without_a_name_takes_the_next_one_when_another_demo_took_it_meanwhile(tmp_path, monkeypatch, caplog):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    monkeypatch.setattr(demo_module, "default_name", lambda: "demo-race")
    with rolloutdb.connect(url) as store:
        store.runs.create(name="demo-race")  # started by the other demo after this one looked
        monkeypatch.setattr(store.runs, "count", lambda **filters: 0)
        with caplog.at_level(logging.WARNING, logger="rolloutdb.recorder"):
            recorder = demo_module.start_recorder(store, None, total_steps=1)
        recorder.close()
        assert recorder.run.name == "demo-race-2"
        assert store.runs.get("demo-race").status == "pending"  # the other demo's run, untouched


def test_demo_with_the_name_of_a_finished_run_fails_in_one_line(fresh_database_url, caplog):
    succeeds(fresh_database_url, "demo", "--name", "mine", "--steps", "1")
    caplog.clear()  # the first demo may say it is writing its last records, when closing takes over a second
    with caplog.at_level(logging.WARNING, logger="rolloutdb.recorder"):
        error = fails(fresh_database_url, "demo", "--name", "mine", "--steps", "2")
    assert error.splitlines() == ["Error: job 'mine' has already ended as completed: start it under a new name, or "
                                  "delete it first (`rolloutdb jobs delete mine` is not undoable)"]
    assert not caplog.records  # said once, by the command, not also by the recorder's log
    with rolloutdb.connect(fresh_database_url) as store:
        run = store.runs.get("mine")
        assert run.status == "completed" and store.steps.count(run_id=run.id) == 1


def test_demo_at_3000_steps_completes(tmp_path):
    """The main job at 100 times its default scale, on SQLite: training records far faster than the database
    writes, and the demo waits for all of it."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    started = time.monotonic()
    output = succeeds(url, "demo", "--name", "big", "--steps", "3000")
    elapsed = time.monotonic() - started
    print(f"rolloutdb demo --steps 3000 on SQLite: {elapsed:.1f} s")
    assert line_with(output, "status").split() == ["status", "completed"]
    with rolloutdb.connect(url) as store:
        run = store.runs.get("big")
        assert (run.status, run.progress) == ("completed", 100.0)
        assert store.steps.count(run_id=run.id, status="completed") == 3000
        assert store.groups.count(run_id=run.id) == 3000 * len(TARGETS)
        assert store.runs.get("big/eval@2999").status == "completed"
