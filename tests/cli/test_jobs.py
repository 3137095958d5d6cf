"""The jobs commands and `runs compare`, on real databases."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import rolloutdb
from cli.clitools import RUN, fails, line_with, refused, rolloutdb_cli, succeeds

STAGES = [("load", 50), ("index", 50)]


@pytest.fixture
def paused_job(fresh_database_url):
    """A job paused half-way through its second stage, with its state saved."""
    with rolloutdb.connect(fresh_database_url) as store:
        with store.jobs.start("build", stages=STAGES, key="ds", write_interval=0.0) as job:
            job.stage("index")
            job.progress(0.5)
            job.checkpoint(state={"done": 5}, message="five done")
            store.jobs.request_pause("build")
            job.checkpoint(state={"done": 6}, message="six done")
    return fresh_database_url


def run_job_in_background(url: str, name: str, checkpoints: int) -> threading.Thread:
    def work():
        with rolloutdb.connect(url) as store, store.jobs.start(name, stages=[("only", 100)], write_interval=0.0) as job:
            job.stage("only")
            for i in range(checkpoints):
                time.sleep(0.1)
                job.progress((i + 1) / checkpoints)
                job.checkpoint(message=f"step {i}")

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def wait_until_running(url: str, name: str, timeout: float = 30.0) -> None:
    """Wait for the job to exist and run, polling; fail saying so if it does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with rolloutdb.connect(url) as store:
        while True:
            status = store.jobs.get(name).run.status if store.runs.count(name=name) else "not created"
            if status == "running":
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"job {name!r} was not running {timeout:g} s after it was started: {status}")
            time.sleep(0.02)


def test_ls_and_show_tell_where_a_paused_job_stands(paused_job):
    listing = succeeds(paused_job, "jobs", "ls")
    assert line_with(listing, "build").split()[:5] == ["build", "job", "paused", "index", "75%"]
    shown = succeeds(paused_job, "jobs", "show", "build")
    assert line_with(shown, "stage").split() == ["stage", "index", "(50-100%)"]
    assert line_with(shown, "saved state") == 'saved state      {"done": 6}'
    assert "six done" in shown and "paused at checkpoint" in shown


def test_pause_resume_cancel_follow_the_job_state(paused_job):
    assert "cannot pause job 'build': it is paused" in fails(paused_job, "jobs", "pause", "build")
    out = succeeds(paused_job, "jobs", "resume", "build")
    assert "continues from stage index at 75%" in out
    with rolloutdb.connect(paused_job) as store:
        assert store.jobs.get("build").run.control == "resume"
    assert "build cancelled." in succeeds(paused_job, "jobs", "cancel", "build")
    assert "it has already ended" in fails(paused_job, "jobs", "cancel", "build")
    with rolloutdb.connect(paused_job) as store:
        assert store.jobs.get("build").run.status == "cancelled"


def test_pause_of_a_running_job_is_a_request(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store, store.jobs.start("live"):
        assert "stops at its next checkpoint" in succeeds(fresh_database_url, "jobs", "pause", "live")
        assert store.jobs.get("live").run.control == "pause"
        assert "running: cancel it first" in fails(fresh_database_url, "jobs", "delete", "live", "--yes")


def test_delete_needs_yes(paused_job):
    assert "pass --yes" in fails(paused_job, "jobs", "delete", "build")
    with rolloutdb.connect(paused_job) as store:
        assert store.runs.count(name="build") == 1
    succeeds(paused_job, "jobs", "delete", "build", "--yes")
    with rolloutdb.connect(paused_job) as store:
        assert store.runs.count(name="build") == 0


def test_logs_follow_prints_every_row_until_the_job_ends(fresh_database_url):
    rolloutdb.connect(fresh_database_url).close()
    thread = run_job_in_background(fresh_database_url, "follow-me", 5)
    wait_until_running(fresh_database_url, "follow-me")
    output = succeeds(fresh_database_url, "jobs", "logs", "follow-me", "--follow", "--interval", "0.1")
    thread.join()
    positions = [output.index(f"step {i}") for i in range(5)]
    assert positions == sorted(positions) and output.rstrip().endswith("completed")
    headers = [line for line in output.splitlines() if line.split()[:2] == ["time", "level"]]
    assert len(headers) == 1, output  # rows printed as they come line up under one header


def test_watch_follows_a_running_job_to_its_end(fresh_database_url):
    rolloutdb.connect(fresh_database_url).close()
    thread = run_job_in_background(fresh_database_url, "watched", 5)
    wait_until_running(fresh_database_url, "watched")
    output = succeeds(fresh_database_url, "jobs", "watch", "watched", "--interval", "0.1")
    thread.join()
    assert output.strip() == "watched: completed at 100% in stage only"


def test_watch_of_an_ended_job_says_how_it_ended(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        with pytest.raises(ValueError), store.jobs.start("broken") as job:
            job.log("about to fail")
            raise ValueError("no such table")
    result = rolloutdb_cli(fresh_database_url, "jobs", "watch", "broken")
    assert result.exit_code == 1  # scripts can tell a failed job from a finished one
    assert result.stdout.startswith("broken: failed at 0%") and "ValueError: no such table" in result.stdout


def test_runs_compare_prints_both_runs_per_task_and_overall(fresh_database_url):
    with rolloutdb.Recorder(fresh_database_url, run="train", flush_interval=0.05) as recorder:
        for handle, solved in ((recorder.baseline(), {"a": 1, "b": 0}), (recorder.eval(step=3), {"a": 2, "b": 2})):
            with handle:
                for task in ("a", "b"):
                    group = handle.group(task, size=2)
                    for k in range(2):
                        rollout = group.rollout()
                        rollout.turn(action="x")
                        rollout.finish(reward=float(k < solved[task]), success=k < solved[task])
    output = succeeds(fresh_database_url, "runs", "compare", "train/baseline", "train/eval@3")
    assert "train/baseline (baseline)" in output and "train/eval@3 (eval @ step 3)" in output
    assert line_with(output, "a ").split()[:6] == ["a", "2/2", "50%", "→", "100%", "+50%"]
    assert line_with(output, "b ").split()[:9] == ["b", "2/2", "0%", "→", "100%", "+100%", "0.00", "→", "1.00"]
    assert line_with(output, "overall").split()[:6] == ["overall", "4/4", "25%", "→", "100%", "+75%"]


def test_watch_and_ls_of_a_training_run_tell_the_step_it_is_at(demo_url):
    assert succeeds(demo_url, "jobs", "watch", RUN).strip() == (
        f"{RUN}: completed at 100% (step 3 of 3) in stage done")
    assert line_with(succeeds(demo_url, "jobs", "ls"), RUN).split()[:7] == [
        RUN, "train", "completed", "done", "step", "3", "of"]


def test_watch_keeps_watching_a_paused_job_until_it_resumes_and_ends(paused_job):
    source = str(Path(rolloutdb.__file__).parent.parent)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "rolloutdb.cli", "jobs", "watch", "build", "--url", paused_job, "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        said = watcher.stderr.readline()  # it says so once it has seen the job paused, and goes on watching
        assert "build is paused at 75%: watching until it resumes and ends (Ctrl-C stops watching)" in said, said
        assert watcher.poll() is None
        with rolloutdb.connect(paused_job) as store, store.jobs.start("build", stages=STAGES, key="ds") as job:
            assert job.state == {"done": 6}  # resumed where it paused
            job.stage("index")
            job.progress(1.0)
        output, _ = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0 and output.strip() == "build: completed at 100% in stage index"


@pytest.mark.parametrize("command", [["jobs", "watch", "j", "--interval", "-1"],
                                     ["jobs", "logs", "j", "-f", "--interval", "-1"]])
def test_a_negative_interval_is_a_usage_error_not_a_traceback(fresh_database_url, command):
    assert "--interval" in refused(fresh_database_url, *command)
