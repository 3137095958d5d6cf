"""`rolloutdb init`, `db`, `doctor`, `backup` and `rebuild`, on a fresh SQLite file and a fresh PostgreSQL database."""

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

import rolloutdb
from sample_run import record_sample_run
from rolloutdb.schema import metadata
from rolloutdb.store import engine as engine_module
from conftest import revision_of
from cli.clitools import RUN, fails, is_sqlite, line_with, rolloutdb_cli, succeeds


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


def test_doctor_counts_the_projects_rows_unless_asked_for_all(demo_url):
    with rolloutdb.connect(demo_url, project="other") as other:
        other.runs.create(name="theirs")
    assert line_with(succeeds(demo_url, "doctor"), "runs ").split()[1] == "1"
    assert line_with(succeeds(demo_url, "doctor", "--project", "other"), "runs ").split()[1] == "1"
    assert line_with(succeeds(demo_url, "doctor", "--project", "other"), "rollouts ").split()[1] == "0"
    everything = succeeds(demo_url, "doctor", "--all-projects")
    assert line_with(everything, "runs ").split()[1] == "2" and line_with(everything, "projects ").split()[1] == "2"
    assert "all projects" in everything and "Tables of project 'other'" in succeeds(demo_url, "doctor", "--project",
                                                                                      "other")
    missing = rolloutdb_cli(demo_url, "doctor", "--project", "nope")
    assert missing.exit_code == 0 and "Note: no project 'nope'" in missing.stderr


def test_doctor_sizes_and_a_missing_blob_file(fresh_database_url, tmp_path):
    with rolloutdb.connect(fresh_database_url, artifacts=tmp_path / "blobs") as store:
        store.rollouts.enqueue(1)
        artifact = store.artifacts.put(b"\x89PNG" + bytes(1000), "image/png")
        sized = succeeds(fresh_database_url, "doctor", "--sizes")
    assert line_with(sized, "artifacts stored").split()[2:4] == ["1", "(1004"] and "No problems found" in sized
    if is_sqlite(fresh_database_url):
        assert line_with(sized, "write-ahead log")
    else:
        assert "Index usage" in sized and line_with(sized, "rollouts ")
        assert "pg_stat_statements is not installed" in rolloutdb_cli(fresh_database_url, "doctor", "--sizes").stderr
    Path(artifact.location).unlink()
    result = rolloutdb_cli(fresh_database_url, "doctor")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"artifacts: 1 blob file(s) missing, whose content is lost: {artifact.sha256}" in result.stderr


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




def test_init_says_where_a_sqlite_database_is_as_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output = succeeds("sqlite:///./relative.db", "init")
    assert line_with(output, "path").split() == ["path", str(tmp_path.resolve() / "relative.db")]
    assert (tmp_path / "relative.db").exists()
