"""The `rolloutdb` command line, run against a fresh SQLite file and a fresh PostgreSQL database."""

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

import rolloutdb
from rolloutdb.cli import app
from rolloutdb.schema import metadata
from rolloutdb.store import engine as engine_module
from conftest import revision_of

RUN = "demo-under-test"
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


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def line_with(output: str, start: str) -> str:
    """The first line of ``output`` that starts with ``start`` once indentation is stripped."""
    for line in output.splitlines():
        if line.strip().startswith(start):
            return line.strip()
    raise AssertionError(f"no line starts with {start!r} in:\n{output}")


@pytest.fixture
def demo_url(fresh_database_url) -> str:
    """A fresh database holding one demo run named RUN."""
    succeeds(fresh_database_url, "demo", "--name", RUN)
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
    first = line_with(output, "0001")
    assert "initial schema" in first and "← current" in first


# -- runs and history ----------------------------------------------------------------------------------------


def test_demo_records_a_completed_run_with_steps_groups_and_rollouts(demo_url):
    with rolloutdb.connect(demo_url) as store:
        run = store.runs.get(RUN)
        steps = store.steps.query(run_id=run.id)
        assert run.status == "completed" and run.progress == 100.0 and run.config["group_size"] == 4
        assert [(step.number, step.status) for step in steps] == [(0, "completed"), (1, "completed"), (2, "completed")]
        assert all(0.0 <= step.metrics["reward_mean"] <= 1.0 for step in steps)
        assert store.groups.count(run_id=run.id, status="completed") == 6
        assert store.rollouts.count(run_id=run.id) == 24
        assert store.rollouts.count(run_id=run.id, status=["succeeded", "failed"]) == 24
        assert all(rollout.reward is not None for rollout in store.rollouts.query(run_id=run.id))


def test_a_second_demo_reuses_the_sample_tasks(demo_url):
    succeeds(demo_url, "demo", "--name", "second-demo")
    with rolloutdb.connect(demo_url) as store:
        assert store.tasks.count() == 2 and store.validators.count() == 1
        assert store.runs.count(status="completed") == 2


def test_demo_prints_what_runs_show_prints(demo_url):
    demo_output = succeeds(demo_url, "demo", "--name", "shown")
    assert demo_output == succeeds(demo_url, "runs", "show", "shown")


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
    assert "unknown run status 'finished'" in fails(demo_url, "runs", "ls", "--status", "finished")
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
    assert "no status changes recorded for step 'nope'" in fails(demo_url, "history", "step", "nope")


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
    succeeds(url, "demo", "--name", RUN)
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
        assert "file is not a database" in fails(f"sqlite:///{junk}", *command)
    assert not (tmp_path / "copy.db").exists()
