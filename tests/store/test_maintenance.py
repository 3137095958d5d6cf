"""Whole-database operations the command line prints: the queue summary, the doctor's figures, space,
VACUUM and backups, on every backend."""

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import rolloutdb
from rolloutdb.errors import InvalidInputError, StoreUnavailableError
from rolloutdb.store import maintenance
from rolloutdb.schema import metadata


def test_queue_summary_counts_the_queue_and_hears_workers_through_their_spans(store):
    store.rollouts.enqueue({"n": 0})
    claimed = store.rollouts.dequeue(worker_id="spans-only")
    store.rollouts.enqueue({"n": 1})
    store.workers.heartbeat("heartbeat-only")
    summary = store.queue_summary()
    assert summary.rollouts_by_status["queuing"] == 1 and summary.rollouts_by_status["preparing"] == 1
    assert summary.waiting == 1 and summary.oldest_queued_at is not None
    assert summary.attempts_by_status["preparing"] == 1 and sum(summary.attempts_by_status.values()) == 1
    heard = {activity.worker.id: activity.last_seen_at for activity in summary.workers}
    assert heard["spans-only"] is None  # claimed, but not heard of since

    store.spans.add(rollout_id=claimed.rollout.id, attempt_id=claimed.attempt.id, trace_id="t", span_id="s",
                    name="llm.call")
    heard = {activity.worker.id: activity for activity in store.queue_summary().workers}
    assert heard["spans-only"].last_seen_at == store.attempts.latest(claimed.rollout.id).last_heartbeat_at
    assert heard["spans-only"].worker.last_heartbeat_at is None  # a span is the worker's heartbeat all the same
    assert heard["heartbeat-only"].last_seen_at == heard["heartbeat-only"].worker.last_heartbeat_at


def test_queue_summary_of_another_project_sees_nothing_of_this_one(store, session_database_url):
    store.rollouts.enqueue("x")
    store.workers.heartbeat("w")
    with rolloutdb.connect(session_database_url, project=f"{store.project}-empty") as other:
        summary = other.queue_summary()
    assert summary.waiting == 0 and summary.oldest_queued_at is None and summary.workers == []


def test_examine_database_reports_schema_tables_and_on_sqlite_integrity(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        store.runs.create(name="one")
    report = maintenance.examine_database(fresh_database_url)
    assert report.schema.up_to_date and report.problems == []
    rows = {table.name: table.rows for table in report.tables}
    assert set(rows) == set(metadata.tables) and rows["runs"] == 1 and rows["projects"] == 1
    if report.backend == "sqlite":
        assert (report.integrity, report.journal_mode) == ("ok", "wal") and report.file_size > 0
    else:
        assert report.server_version and all(table.size for table in report.tables)


def test_examine_database_counts_one_projects_rows_unless_asked_for_all(fresh_database_url):
    with rolloutdb.connect(fresh_database_url, project="a") as a, rolloutdb.connect(fresh_database_url, project="b") as b:
        a.runs.create(name="one")
        for name in ("two", "three"):
            b.rollouts.create(run_id=b.runs.create(name=name).id)

    def rows(**project: str) -> dict[str, int | None]:
        return {table.name: table.rows for table in maintenance.examine_database(fresh_database_url, **project).tables}

    assert {name: count for name, count in rows(project="a").items() if count} == {
        "runs": 1, "projects": 1, "status_changes": 1, "events": 1}
    assert {name: count for name, count in rows(project="b").items() if count} == {
        "runs": 2, "rollouts": 2, "projects": 1, "status_changes": 4, "events": 4}
    assert (rows()["runs"], rows()["projects"]) == (3, 2)
    assert maintenance.examine_database(fresh_database_url, project="a").project == "a"
    missing = maintenance.examine_database(fresh_database_url, project="c")
    assert not any(table.rows for table in missing.tables) and missing.problems == []
    assert "no project 'c'" in missing.notes[0] and "its projects: 'a', 'b'" in missing.notes[0]


def test_examine_database_of_a_missing_sqlite_file_creates_nothing(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(StoreUnavailableError, match="run `rolloutdb init`"):
        maintenance.examine_database(f"sqlite:///{missing}")
    assert not missing.exists()


def test_vacuum_gives_deleted_space_back_to_the_disk(tmp_path):
    url = f"sqlite:///{tmp_path / 'big.db'}"
    with rolloutdb.connect(url) as store:
        claims = [store.rollouts.start({"padding": "x" * 2000}) for _ in range(200)]
        for claim in claims:
            store.attempts.update(claim.rollout.id, status="succeeded")
        grown = maintenance.database_space(url)
        store.purge(keep_last=0)
    purged = maintenance.database_space(url)
    assert purged.free > grown.free  # the rows' pages are free for reuse inside the file
    maintenance.vacuum_database(url)
    vacuumed = maintenance.database_space(url)
    assert vacuumed.size < purged.size and vacuumed.free == 0


def test_sqlite_backup_is_one_complete_file_and_postgresql_is_pointed_to_pg_dump(tmp_path, fresh_database_url):
    target = tmp_path / "copy.db"
    if make_url(fresh_database_url).get_backend_name() == "postgresql":
        with pytest.raises(InvalidInputError, match="pg_dump"):
            maintenance.backup_sqlite_database(fresh_database_url, target)
        command = maintenance.pg_dump_command(fresh_database_url, target)
        assert command.dump.startswith(f"pg_dump --format=custom --file={target} --dbname=postgresql://")
        assert not target.exists()
        return
    with rolloutdb.connect(fresh_database_url) as store:
        store.runs.create(name="kept")
    progress = []
    size = maintenance.backup_sqlite_database(fresh_database_url, target,
                                              on_progress=lambda done, total: progress.append((done, total)))
    assert size == target.stat().st_size and progress and progress[-1][0] == progress[-1][1]
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT name FROM runs").fetchall() == [("kept",)]
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    copy.close()
    with pytest.raises(InvalidInputError, match="does not exist"):
        maintenance.backup_sqlite_database(fresh_database_url, tmp_path / "no-such-dir" / "copy.db")
    (tmp_path / "a-dir" / "in-it").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match="a-dir is a directory: give the path of a file"):
        maintenance.backup_sqlite_database(fresh_database_url, tmp_path / "a-dir")
    assert [path.name for path in tmp_path.iterdir() if "partial" in path.name] == []


def test_examine_database_finds_the_artifacts_and_a_blob_file_that_is_gone(fresh_database_url, tmp_path):
    with rolloutdb.connect(fresh_database_url, project="a", artifacts=tmp_path / "blobs") as store:
        kept, lost = store.artifacts.put(b"kept" * 100), store.artifacts.put(b"lost")
    with rolloutdb.connect(fresh_database_url, project="b", artifacts="database") as other:
        other.artifacts.put(b"in the database")
    report = maintenance.examine_database(fresh_database_url, project="a")
    assert report.problems == [] and report.sizes is None
    assert (report.artifacts.count, report.artifacts.size, report.artifacts.in_files) == (2, 404, 2)
    assert report.artifacts.file_bytes == 404 and report.artifacts.missing_count == 0
    everything = maintenance.examine_database(fresh_database_url)
    assert (everything.artifacts.count, everything.artifacts.in_database) == (3, 1)

    Path(lost.location).unlink()
    report = maintenance.examine_database(fresh_database_url, project="a")
    assert report.artifacts.missing_count == 1 and report.artifacts.missing == [f"{lost.sha256} {lost.location}"]
    assert report.problems == [f"artifacts: 1 blob file(s) missing, whose content is lost: {lost.sha256} "
                               f"{lost.location}"]
    assert kept.sha256 not in report.problems[0]


def test_examine_database_sizes(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store:
        store.rollouts.enqueue(1)
        store.rollouts.dequeue()
        report = maintenance.examine_database(fresh_database_url, sizes=True)
    if report.backend == "sqlite":
        assert report.sizes.wal_size > 0 and report.sizes.indexes == [] and report.sizes.slow_statements is None
        return
    indexes = {index.index: index for index in report.sizes.indexes}
    assert "ix_rollouts_queue" in indexes and all(index.size > 0 for index in indexes.values())
    # pg_stat_statements: not installed, then installed but not loaded (this server's case) or read.
    assert report.sizes.slow_statements is None and any("pg_stat_statements is not installed" in note and
                                                        "shared_preload_libraries" in note for note in report.notes)
    with maintenance.opened(fresh_database_url) as engine, engine.begin() as connection:
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    report = maintenance.examine_database(fresh_database_url, sizes=True)
    assert report.problems == []
    if report.sizes.slow_statements is None:
        assert any("pg_stat_statements is installed but cannot be read" in note for note in report.notes)
    else:
        assert all(statement.calls > 0 for statement in report.sizes.slow_statements)
