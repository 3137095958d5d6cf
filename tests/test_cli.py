"""The `rolloutdb` command line, run against a fresh SQLite file and a fresh PostgreSQL database."""

import logging
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

import rolloutdb
from sample_run import record_sample_run
from rolloutdb import demo as demo_module
from rolloutdb.cli import app
from rolloutdb.cli.output import format_time
from rolloutdb.config import display_url
from rolloutdb.demo import TARGETS
from rolloutdb.errors import NotFoundError
from rolloutdb.schema import metadata
from rolloutdb.store import engine as engine_module
from conftest import _admin_connection as admin_connection
from conftest import revision_of

RUN = "demo-under-test"
DEMO_STEPS = 5
# Wide enough that no table wraps; Rich reads COLUMNS when it prints.
runner = CliRunner(env={"COLUMNS": "200"})


def rolloutdb_cli(url: str, *args: str):
    return runner.invoke(app, ["--url", url, *args])


def succeeds(url: str, *args: str) -> str:
    result = rolloutdb_cli(url, *args)
    assert result.exit_code == 0, f"rolloutdb {' '.join(args)} failed:\n{result.output}"
    return result.stdout


def fails(url: str, *args: str) -> str:
    """Run a command that must fail cleanly: exit code 1, a one-line error on stderr, no traceback."""
    result = rolloutdb_cli(url, *args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    return result.stderr


def refused(url: str, *args: str) -> str:
    """Run a command whose arguments the command line itself refuses (exit code 2, a usage error)."""
    result = rolloutdb_cli(url, *args)
    assert result.exit_code == 2, result.output
    return result.output


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def line_with(output: str, start: str) -> str:
    """The first line of ``output`` that starts with ``start`` once indentation is stripped."""
    for line in output.splitlines():
        if line.strip().startswith(start):
            return line.strip()
    raise AssertionError(f"no line starts with {start!r} in:\n{output}")


def line_containing(output: str, part: str) -> list[str]:
    """The words of the first line of ``output`` that contains ``part``."""
    for line in output.splitlines():
        if part in line:
            return line.split()
    raise AssertionError(f"no line contains {part!r} in:\n{output}")


def in_order(output: str, *parts: str) -> bool:
    """Whether ``parts`` occur in ``output`` one after the other."""
    position = 0
    for part in parts:
        position = output.find(part, position)
        if position < 0:
            return False
        position += len(part)
    return True


def connect_in_the_past(url: str, ago: timedelta):
    """A store whose clock runs ``ago`` behind: what it writes looks that old to the CLI."""
    return rolloutdb.connect(url, clock=lambda: datetime.now(timezone.utc) - ago)


@pytest.fixture
def demo_url(fresh_database_url) -> str:
    """A fresh database holding one sample training run named RUN (3 steps of 2 groups of 4)."""
    with rolloutdb.connect(fresh_database_url) as store:
        record_sample_run(store, RUN)
    return fresh_database_url


# -- setup and schema ----------------------------------------------------------------------------------------


def test_init_creates_the_schema_then_db_current_says_up_to_date(fresh_database_url):
    head = engine_module.head_revision()
    output = succeeds(fresh_database_url, "init")
    assert line_with(output, "schema").split() == ["schema", head]
    assert line_with(output, "backend").split() == ["backend", make_url(fresh_database_url).get_backend_name()]
    assert revision_of(fresh_database_url) == head

    output = succeeds(fresh_database_url, "db", "current")
    assert "up to date" in line_with(output, "status")


def test_db_current_on_a_new_database_points_to_init_and_creates_nothing(fresh_database_url):
    result = rolloutdb_cli(fresh_database_url, "db", "current")
    assert result.exit_code == 1 and "rolloutdb init" in result.output
    if is_sqlite(fresh_database_url):
        assert not Path(make_url(fresh_database_url).database).exists()
    else:
        assert revision_of(fresh_database_url) is None


def test_an_out_of_date_database_is_reported_not_migrated_until_db_upgrade(fresh_database_url, later_release):
    engine_module.upgrade(engine_module.create_store_engine(fresh_database_url), later_release)

    result = rolloutdb_cli(fresh_database_url, "db", "current")
    assert result.exit_code == 1
    assert "out of date" in result.stdout and "rolloutdb db upgrade" in result.stdout
    assert "rolloutdb db upgrade" in fails(fresh_database_url, "runs", "ls")
    assert revision_of(fresh_database_url) == later_release

    assert f"{later_release} → 0999" in succeeds(fresh_database_url, "db", "upgrade")
    assert revision_of(fresh_database_url) == "0999"
    assert "up to date" in succeeds(fresh_database_url, "db", "current")


def test_db_history_lists_the_shipped_migrations_and_marks_the_current_one(fresh_database_url):
    succeeds(fresh_database_url, "init")
    output = succeeds(fresh_database_url, "db", "history")
    assert "initial schema" in line_with(output, "0001")
    assert "← current" in line_with(output, engine_module.head_revision())


# -- runs and history ----------------------------------------------------------------------------------------


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


# -- health, backups, rebuild -------------------------------------------------------------------------------


def test_doctor_reports_schema_and_every_table_with_its_row_count(demo_url):
    output = succeeds(demo_url, "doctor")
    assert "up to date" in line_with(output, "schema")
    for name in metadata.tables:
        assert line_with(output, f"{name} ")
    assert line_with(output, "rollouts ").split()[1] == "24"
    assert line_with(output, "runs ").split()[1] == "1"
    assert line_with(output, "steps ").split()[1] == "3"
    if is_sqlite(demo_url):
        assert line_with(output, "integrity").split() == ["integrity", "ok"]
        assert line_with(output, "journal mode").split() == ["journal", "mode", "wal"]
    assert "No problems found" in output


def test_doctor_fails_on_an_out_of_date_schema(fresh_database_url, later_release):
    engine_module.upgrade(engine_module.create_store_engine(fresh_database_url), later_release)
    result = rolloutdb_cli(fresh_database_url, "doctor")
    assert result.exit_code == 1
    assert "rolloutdb db upgrade" in result.stderr


def test_backup_copies_a_sqlite_database_or_prints_pg_dump(demo_url, tmp_path):
    target = tmp_path / "copy.db"
    if not is_sqlite(demo_url):
        with_password = make_url(demo_url).set(password="s3cret").render_as_string(hide_password=False)
        output = succeeds(with_password, "backup", str(target))
        command = line_with(output, "pg_dump")
        assert f"--file={target}" in command and "postgresql://postgres:***@" in command
        assert "s3cret" not in output and "+psycopg" not in command
        assert not target.exists()
        return
    output = succeeds(demo_url, "backup", str(target))
    assert f"to {target}" in output
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT name FROM runs").fetchall() == [(RUN,)]
        assert copy.execute("SELECT count(*) FROM rollouts").fetchone() == (24,)
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copy.close()
    assert RUN in succeeds(f"sqlite:///{target}", "runs", "ls")


def test_backup_refuses_to_overwrite_without_force(tmp_path):
    url = f"sqlite:///{tmp_path / 'source.db'}"  # SQLite only: for PostgreSQL the command only prints pg_dump
    with rolloutdb.connect(url) as store:
        record_sample_run(store, RUN)
    target = tmp_path / "copy.db"
    target.write_bytes(b"keep me")
    assert "--force" in fails(url, "backup", str(target))
    assert target.read_bytes() == b"keep me"
    succeeds(url, "backup", str(target), "--force")
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT name FROM runs").fetchall() == [(RUN,)]
    copy.close()


def test_rebuild_refuses_without_yes_and_empties_the_database_with_it(demo_url):
    assert "rolloutdb rebuild --yes" in fails(demo_url, "rebuild")
    with rolloutdb.connect(demo_url) as store:
        assert store.runs.count() == 1

    succeeds(demo_url, "rebuild", "--yes")
    assert revision_of(demo_url) == engine_module.head_revision()
    with rolloutdb.connect(demo_url) as store:
        assert store.runs.count() == 0 and store.rollouts.count() == 0 and store.tasks.count() == 0


def test_a_bad_or_unreachable_url_is_a_clear_error(tmp_path):
    assert fails("mysql://somewhere/db", "runs", "ls").startswith("Error: unsupported database 'mysql'")
    assert "cannot reach the database at postgresql+psycopg://postgres@127.0.0.1:1/x" in fails(
        "postgresql://postgres@127.0.0.1:1/x", "doctor")
    missing = tmp_path / "missing.db"
    assert "run `rolloutdb init`" in fails(f"sqlite:///{missing}", "doctor")
    assert not missing.exists()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database, just some text that is long enough to have a header" * 4)
    for command in (["doctor"], ["runs", "ls"], ["backup", str(tmp_path / "copy.db")]):
        error = fails(f"sqlite:///{junk}", *command)
        # The store words it "it is not a SQLite database" or "file is not a database", depending on the path.
        assert error.startswith(f"Error: cannot open sqlite:///{junk}: ") and "is not a" in error
    assert not (tmp_path / "copy.db").exists()


# -- the queue, rollouts and retention -------------------------------------------------------------------------

ROLLOUT_STATUSES = ["queuing", "preparing", "running", "requeuing", "succeeded", "failed", "cancelled"]


def status_rows(output: str) -> list[list[str]]:
    """The rows of `rolloutdb queue`'s table of rollouts by status, as printed."""
    return [line_with(output, f"{status} ").split() for status in ROLLOUT_STATUSES]


def test_queue_shows_rollouts_by_status_the_longest_wait_and_the_workers(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        claimed = store.rollouts.enqueue({"n": 0})
        assert store.rollouts.dequeue(worker_id="worker-1").rollout.id == claimed.id
        store.workers.heartbeat("worker-2")
    with connect_in_the_past(fresh_database_url, timedelta(hours=2)) as store:
        waiting_longest = store.rollouts.enqueue({"n": 1})
    with rolloutdb.connect(fresh_database_url) as store:
        store.rollouts.enqueue({"n": 2})

    output = succeeds(fresh_database_url, "queue")
    assert status_rows(output) == [["queuing", "2"], ["preparing", "1"], ["running", "0"], ["requeuing", "0"],
                                   ["succeeded", "0"], ["failed", "0"], ["cancelled", "0"]]
    assert output.index("queuing ") < output.index("preparing ") < output.index("cancelled ")
    assert line_with(output, "waiting").split()[:2] == ["waiting", "2"]
    oldest = line_with(output, "oldest queued")
    assert format_time(waiting_longest.queued_at) in oldest and "(2h 00m ago)" in oldest
    assert line_with(output, "attempts").split()[1:4] == ["1:", "1", "preparing"]  # of unfinished rollouts
    assert "no stale attempts" in line_with(output, "health check")
    busy = line_with(output, "worker-1").split()
    assert busy[:2] == ["worker-1", "busy"] and claimed.id.startswith(busy[2])  # its rollout, by a short id
    assert busy[-1] == "ago"  # its last dequeue, seconds ago
    heartbeat_only = line_with(output, "worker-2").split()
    assert heartbeat_only[:3] == ["worker-2", "unknown", "-"]
    assert heartbeat_only[-3:] == [heartbeat_only[-3], "ago", "-"]  # a heartbeat seconds ago; never dequeued


def test_queue_runs_the_health_check_first_so_stale_attempts_show_as_timed_out(fresh_database_url):
    with connect_in_the_past(fresh_database_url, timedelta(minutes=10)) as store:
        stale = store.rollouts.enqueue("x", config={"timeout_seconds": 60, "max_attempts": 2,
                                                    "retry_condition": ["timeout"]})
        store.rollouts.dequeue(worker_id="worker-1")

    output = succeeds(fresh_database_url, "queue")
    assert ["requeuing", "1"] in status_rows(output) and ["running", "0"] in status_rows(output)
    assert "marked 1 stale attempt timeout or unresponsive" in line_with(output, "health check")
    assert "1: 1 timeout" in line_with(output, "attempts")
    assert line_with(output, "worker-1").split()[:3] == ["worker-1", "unknown", "-"]
    with rolloutdb.connect(fresh_database_url) as store:
        assert store.rollouts.get(stale.id).status == "requeuing"
        assert store.attempts.latest(stale.id).status == "timeout"


def test_queue_of_an_empty_project_says_there_are_no_workers(fresh_database_url):
    output = succeeds(fresh_database_url, "queue")
    assert all(row[1] == "0" for row in status_rows(output))
    assert "oldest queued" not in output and "No workers in project 'default'." in output


def rollout_rows(output: str) -> dict[str, list[str]]:
    """The rows of `rolloutdb rollouts ls --wide` (full ids) by rollout id."""
    return {line.split()[0]: line.split() for line in output.splitlines()
            if line.strip() and len(line.split()[0]) == 36 and line.split()[0].count("-") == 4}


def test_rollouts_ls_lists_newest_first_and_filters_by_status_and_run(demo_url):
    with rolloutdb.connect(demo_url) as store:
        run = store.runs.create(name="eval-queue", kind="eval")
        queued = [store.rollouts.enqueue({"n": i}, run_id=run.id, step=0, mode="val") for i in range(3)]
        failed = store.rollouts.query(run_id=store.runs.get(RUN).id, status="failed", limit=None)

    output = succeeds(demo_url, "rollouts", "ls", "--wide")
    rows = rollout_rows(output)
    assert len(rows) == 20 and "20 of 27 rollouts shown" in output
    assert list(rows)[:3] == [rollout.id for rollout in reversed(queued)]  # newest first
    assert rows[queued[0].id][:6] == [queued[0].id, "queuing", "val", "0", "-", "eval-queue/0"]

    only_queuing = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--status", "queuing"))
    assert set(only_queuing) == {rollout.id for rollout in queued}
    only_failed = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--status", "failed", "--limit", "100"))
    assert set(only_failed) == {rollout.id for rollout in failed}
    assert all(row[1:3] == ["failed", "train"] and row[5].startswith(f"{RUN}/") for row in only_failed.values())
    either = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--status", "failed", "--status", "queuing",
                                   "--limit", "100"))
    assert set(either) == set(only_failed) | set(only_queuing)

    of_run = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--run", "eval-queue", "--asc"))
    assert list(of_run) == [rollout.id for rollout in queued]  # oldest first with --asc
    assert rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--run", run.id, "--asc")) == of_run
    of_demo = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--run", RUN, "--step", "1", "--limit", "100"))
    assert len(of_demo) == 8 and all(row[5] == f"{RUN}/1" for row in of_demo.values())
    lowest = rollout_rows(succeeds(demo_url, "rollouts", "ls", "--wide", "--run", RUN, "--sort", "reward", "--asc",
                                   "--limit", "1"))
    assert [row[4] for row in lowest.values()] == ["0"]

    assert "No rollouts in project 'default' match the filters." in succeeds(
        demo_url, "rollouts", "ls", "--mode", "test")
    assert "no run with id or name 'nope'" in fails(demo_url, "rollouts", "ls", "--run", "nope")
    assert "'done' is not one of 'queuing'" in refused(demo_url, "rollouts", "ls", "--status", "done")
    assert "'eval' is not one of 'train', 'val', 'test'" in refused(demo_url, "rollouts", "ls", "--mode", "eval")
    assert "cannot sort rollouts by 'colour'" in fails(demo_url, "rollouts", "ls", "--sort", "colour")


def test_rollouts_show_prints_the_attempts_spans_and_history_of_a_retried_rollout(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        rollout = store.rollouts.enqueue({"prompt": "2+2"}, mode="train", metadata={"source": "cli-test"},
                                         config={"max_attempts": 2, "retry_condition": ["failed"]})
        first = store.rollouts.dequeue(worker_id="worker-1").attempt
        store.spans.add_many([{"rollout_id": rollout.id, "attempt_id": first.id, "trace_id": "trace-1",
                               "span_id": f"first-{i}", "name": "first-try"} for i in range(2)])
        store.attempts.update(rollout.id, status="failed", reason="sandbox crashed")
        second = store.rollouts.dequeue(worker_id="worker-2").attempt
        store.spans.add_many([{"rollout_id": rollout.id, "attempt_id": second.id, "trace_id": "trace-2",
                               "span_id": f"span-{i}", "parent_id": "span-0" if i else None, "name": f"step-{i}"}
                              for i in range(12)])
        store.attempts.update(rollout.id, status="succeeded")
        store.rollouts.update(rollout.id, reward=0.5, success=True)

    output = succeeds(fresh_database_url, "rollouts", "show", rollout.id)
    assert line_with(output, "rollout").split() == ["rollout", rollout.id]
    assert line_with(output, "status").split() == ["status", "succeeded"]
    assert line_with(output, "attempts").split() == ["attempts", "2"]
    assert line_with(output, "reward").split() == ["reward", "0.5"]
    assert line_with(output, "input").split(maxsplit=1) == ["input", '{"prompt": "2+2"}']
    assert line_with(output, "metadata").split(maxsplit=1) == ["metadata", '{"source": "cli-test"}']
    assert '"max_attempts": 2' in line_with(output, "config")

    assert line_containing(output, "worker-1")[:3] == ["1", "failed", "worker-1"]
    assert line_containing(output, "worker-2")[:3] == ["2", "succeeded", "worker-2"]
    assert "Spans of attempt 2 (first 10 of 12)" in output
    assert line_containing(output, "step-1") == ["2", "step-1", "-", "trace-2", "span-1", "span-0"]
    assert "step-9" in output and "step-10" not in output and "first-try" not in output

    assert in_order(output, "(new) → queuing", "queuing → preparing", "preparing → running",
                    "running → requeuing", "requeuing → preparing", "preparing → running", "running → succeeded")
    assert line_containing(output, "running → requeuing")[-2:] == ["sandbox", "crashed"]
    assert "rollout 'nope' not found in project 'default'" in fails(fresh_database_url, "rollouts", "show", "nope")


def test_rollouts_show_of_a_queued_rollout_says_it_has_no_attempts(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        rollout = store.rollouts.enqueue("just text")
    output = succeeds(fresh_database_url, "rollouts", "show", rollout.id)
    assert line_with(output, "status").split() == ["status", "queuing"]
    assert line_with(output, "input").split() == ["input", '"just', 'text"']  # JSON: a string is quoted
    assert "No attempts." in output and "(new) → queuing" in output


@pytest.fixture
def purge_url(fresh_database_url) -> dict[str, str]:
    """A fresh database with two rollouts that finished two days ago, one that finished now, one running and one
    queued. Each finished rollout has one attempt, two spans and one turn. Returns the url and the ids."""
    def finish(store, name):
        claim = store.rollouts.start(name)
        store.spans.add_many([{"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "trace_id": "t",
                               "span_id": f"s{i}", "name": "n"} for i in range(2)])
        store.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=0)
        store.attempts.update(claim.rollout.id, status="succeeded")
        return claim.rollout.id

    with connect_in_the_past(fresh_database_url, timedelta(days=2)) as store:
        ids = {"oldest": finish(store, "oldest"), "old": finish(store, "old")}
    with rolloutdb.connect(fresh_database_url) as store:
        ids |= {"new": finish(store, "new"), "running": store.rollouts.start("running").rollout.id,
                "queued": store.rollouts.enqueue("queued").id}
    return {"url": fresh_database_url, **ids}


def purge_counts(output: str) -> list[list[str]]:
    return [line_with(output, f"{table} ").split() for table in ("rollouts", "attempts", "spans", "turns")]


def remaining_rollouts(url: str) -> set[str]:
    with rolloutdb.connect(url) as store:
        return {rollout.id for rollout in store.rollouts.query(limit=None)}


def test_purge_dry_run_reports_counts_and_deletes_nothing(purge_url):
    url = purge_url["url"]
    output = succeeds(url, "purge", "--keep-last", "1", "--dry-run")
    assert "Would delete" in output and "Deleted" not in output
    assert purge_counts(output) == [["rollouts", "2"], ["attempts", "2"], ["spans", "4"], ["turns", "2"]]
    # --older-than reads units and their combinations: the two old rollouts ended two days ago.
    assert purge_counts(succeeds(url, "purge", "--older-than", "1d12h", "--dry-run"))[0] == ["rollouts", "2"]
    assert purge_counts(succeeds(url, "purge", "--older-than", "2d1h", "--dry-run"))[0] == ["rollouts", "0"]
    assert purge_counts(succeeds(url, "purge", "--older-than", "0s", "--dry-run"))[0] == ["rollouts", "3"]
    assert purge_counts(succeeds(url, "purge", "--keep-last", "0", "--dry-run", "--yes"))[0] == ["rollouts", "3"]
    assert len(remaining_rollouts(url)) == 5


def test_purge_keep_last_with_yes_deletes_the_oldest_finished_rollouts_and_keeps_unfinished_ones(purge_url):
    url = purge_url["url"]
    output = succeeds(url, "purge", "--keep-last", "1", "--yes")
    assert "Deleted" in output
    assert purge_counts(output) == [["rollouts", "2"], ["attempts", "2"], ["spans", "4"], ["turns", "2"]]
    assert remaining_rollouts(url) == {purge_url["new"], purge_url["running"], purge_url["queued"]}
    with rolloutdb.connect(url) as store:
        with pytest.raises(NotFoundError):
            store.rollouts.get(purge_url["oldest"])
        assert store.history("rollout", purge_url["oldest"]) == []
        assert store.spans.count(rollout_id=purge_url["old"]) == 0 and store.turns.count() == 1
    assert purge_counts(succeeds(url, "purge", "--keep-last", "1", "--yes"))[0] == ["rollouts", "0"]


@pytest.mark.parametrize(("arguments", "message"), [
    (["--older-than", "7x"], "cannot read '7x' as a duration: give a number and a unit s, m, h or d"),
    (["--older-than", "12h1d", "--yes"], "cannot read '12h1d' as a duration"),
    (["--older-than", "1.5h", "--dry-run"], "cannot read '1.5h' as a duration"),
    (["--keep-last", "1"], "purge would delete 2 finished rollouts with 2 attempts, 4 spans and 2 turns; "
                           "nothing was deleted. Pass --yes to delete them"),
    (["--yes"], "purge needs older_than, keep_last or both"),
    (["--keep-last", "-1", "--yes"], "keep_last must not be negative"),
])
def test_purge_refuses_bad_input_and_a_missing_yes_and_changes_nothing(purge_url, arguments, message):
    assert message in fails(purge_url["url"], "purge", *arguments)
    assert len(remaining_rollouts(purge_url["url"])) == 5


# -- the recorder's journal ------------------------------------------------------------------------------------


@pytest.fixture
def away_url(fresh_database_url, tmp_path, postgres_databases):
    """A database that cannot be opened yet, and the function that brings it up: a SQLite file in a directory
    that does not exist yet, or a PostgreSQL database not created yet on the test server."""
    if is_sqlite(fresh_database_url):
        folder = tmp_path / "not-yet"
        return f"sqlite:///{folder / 'later.db'}", folder.mkdir
    url = make_url(fresh_database_url)
    name = f"{url.database}_later"

    def create() -> None:
        with admin_connection() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        postgres_databases.created.append(name)  # dropped with the others at the end

    return url.set(database=name).render_as_string(hide_password=False), create


def record_while_away(url: str, journal: Path, *, run: str, project: str = "default", steps: int = 3) -> int:
    """Record a short training run while its database cannot be opened; returns how many records the recorder
    kept in the journal when it closed."""
    # start_timeout: the constructor otherwise waits 15 s for an answer from a database that is away.
    recorder = rolloutdb.Recorder(url, run=run, project=project, total_steps=steps, journal_dir=journal,
                                  start_timeout=1)
    for number in range(steps):
        with recorder.step(number) as step:
            group = step.group(task="add-7", size=2)
            for _ in range(2):
                with group.rollout(input={"target": 7}) as rollout:
                    rollout.turn(observation={"value": 5}, action="+2", reward=1.0, done=True)
                    rollout.finish(reward=1.0, success=True)
            step.log(loss=0.5)
    recorder.close(timeout=0.5)
    health = recorder.health()
    assert health.written == 0 and health.spilled > 0 and health.dropped == 0, health
    return health.spilled


def journal_cli(*args: str, url: str | None = None):
    return runner.invoke(app, [*(["--url", url] if url else []), "journal", *args])


def test_journal_ls_with_nothing_says_so(tmp_path):
    for directory in (tmp_path / "never-made", tmp_path):
        result = journal_cli("ls", "--dir", str(directory))
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == f"No journal in {directory.resolve()}."


def test_journal_left_while_the_database_was_away_is_listed_then_replayed(away_url, tmp_path):
    url, bring_up = away_url
    journal = tmp_path / "journal"
    kept = record_while_away(url, journal, run="away-run")

    result = runner.invoke(app, ["--url", url, "journal", "ls", "--dir", str(journal)])  # no database needed
    assert result.exit_code == 0, result.output
    row = line_with(result.stdout, "away-run").split()
    assert row[:3] == ["away-run", "default", str(kept)] and row[-2:-1] == ["gone"]
    assert "1 file" in result.stdout and "journal replay" in result.stdout
    assert rolloutdb_cli(url, "journal", "replay", "--dir", str(journal)).exit_code == 1  # still away: one line

    bring_up()
    output = succeeds(url, "journal", "replay", "--dir", str(journal))
    assert f"Replayed 1 journal file into {display_url(url)}" in output
    assert f"{kept} records written, 0 refused" in output
    assert not list(journal.glob("*/*.jsonl"))  # the file is gone
    with rolloutdb.connect(url) as store:
        run = store.runs.get("away-run")
        assert (run.status, run.progress) == ("completed", 100.0)
        assert store.steps.count(run_id=run.id, status="completed") == 3
        assert store.rollouts.count(run_id=run.id, status="succeeded") == 6
        assert store.steps.query(run_id=run.id)[0].metrics["loss"] == 0.5
    assert "Nothing to replay" in succeeds(url, "journal", "replay", "--dir", str(journal))
    assert journal_cli("ls", "--dir", str(journal)).stdout.startswith("No journal in")


def test_journal_replay_leaves_other_projects_and_lists_what_the_database_refused(away_url, tmp_path):
    url, bring_up = away_url
    journal = tmp_path / "journal"
    record_while_away(url, journal, run="ours")
    other = "b\x1b]0;pwned\x07run"  # control characters in a name must not reach the terminal
    theirs = record_while_away(url, journal, run=other, project="team-b")
    bring_up()
    with rolloutdb.connect(url) as store:  # a run of that name finished meanwhile: the replayed one is refused
        store.runs.update(store.runs.create(name="ours", total_steps=1).id, status="running")
        store.runs.update("ours", status="completed")

    output = journal_cli("ls", "--dir", str(journal)).stdout
    assert "\x1b" not in output and "\x07" not in output
    assert line_with(output, "b\\x1b]0;pwned\\x07run").split()[1:3] == ["team-b", str(theirs)]

    output = succeeds(url, "journal", "replay", "--dir", str(journal))
    assert "\x1b" not in output
    assert "Refused by the database" in output
    assert line_with(output, "run 'ours':").startswith("run 'ours': job 'ours' has already ended as completed")
    assert "1 other file in" in output and "--url/--project" in output
    with rolloutdb.connect(url, project="team-b") as store:
        assert store.runs.count() == 0  # not replayed into the first project, nor into its own yet

    output = succeeds(url, "--project", "team-b", "journal", "replay", "--dir", str(journal))
    assert f"{theirs} records written, 0 refused" in output and "other file" not in output
    with rolloutdb.connect(url, project="team-b") as store:
        assert store.runs.get(other).status == "completed" and store.steps.count() == 3
    assert not list(journal.glob("*/*.jsonl"))


def test_journal_replay_writes_nothing_into_a_finished_run_whose_start_it_refuses(tmp_path):
    folder = tmp_path / "not-yet"
    url, journal = f"sqlite:///{folder / 'later.db'}", tmp_path / "journal"
    kept = record_while_away(url, journal, run="ours")
    folder.mkdir()
    with rolloutdb.connect(url) as store:
        store.runs.update(store.runs.create(name="ours", total_steps=1).id, status="running")
        store.runs.update("ours", status="completed")
    output = succeeds(url, "journal", "replay", "--dir", str(journal))
    with rolloutdb.connect(url) as store:
        assert store.steps.count() == 0 and store.rollouts.count() == 0
    assert "0 records written" in output and f"{kept} refused" in output


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
