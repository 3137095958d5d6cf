"""Opening databases: clear errors when there is nothing usable at the URL."""

import sqlite3
import uuid

import pytest

import rolloutdb
from rolloutdb.errors import (
    ConflictError, DatabaseNotFoundError, NotFoundError, SchemaOutOfDateError, StoreUnavailableError,
)


def test_a_file_that_is_not_sqlite_is_refused_clearly(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database")
    with pytest.raises(StoreUnavailableError, match="not a SQLite database"):
        rolloutdb.connect(f"sqlite:///{path}")
    assert path.read_text() == "these are my notes, not a database"


def test_a_missing_directory_is_refused_clearly(tmp_path):
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        rolloutdb.connect(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")


def test_an_unreachable_server_is_refused_with_what_to_check():
    with pytest.raises(StoreUnavailableError, match="Check that the server is running"):
        rolloutdb.connect("postgresql://postgres@127.0.0.1:1/nothing")


# -- opening without creating: what reads use --------------------------------------------------------

def test_opening_a_missing_database_without_create_creates_nothing(tmp_path):
    path = tmp_path / "rolloutdb.db"
    with pytest.raises(DatabaseNotFoundError, match=f"no database at {path}.*rolloutdb init"):
        rolloutdb.connect(f"sqlite:///{path}", create=False)
    assert list(tmp_path.iterdir()) == []


def test_opening_a_missing_project_without_create_names_the_projects_there(fresh_database_url):
    rolloutdb.connect(fresh_database_url, project="real").close()
    with pytest.raises(NotFoundError, match=r"no project 'typo'.*its projects: 'real'.*projects create"):
        rolloutdb.connect(fresh_database_url, project="typo", create=False)
    assert [p.name for p in rolloutdb.list_projects(fresh_database_url)] == ["real"]


def test_a_missing_project_is_not_found_without_create_on_every_backend(store):
    # Through a server serving every project (the http backends), too: the server does not create it.
    missing = f"typo-{uuid.uuid4().hex[:8]}"
    for _ in range(2):  # the first refusal created nothing
        with pytest.raises(NotFoundError, match=f"no project '{missing}'"):
            rolloutdb.connect(store.url, project=missing, create=False)
    with rolloutdb.connect(store.url, project=store.project, create=False) as same:
        assert same.project == store.project


def test_an_existing_database_and_project_open_without_create(fresh_database_url):
    with rolloutdb.connect(fresh_database_url, project="real") as store:
        store.runs.create(name="r1")
    with rolloutdb.connect(fresh_database_url, project="real", create=False) as store:
        assert [run.name for run in store.runs.query()] == ["r1"]


def test_projects_are_created_on_demand_and_listed_by_name(fresh_database_url):
    created = rolloutdb.create_project("b-team", fresh_database_url)
    assert created.name == "b-team"
    with pytest.raises(ConflictError, match="project 'b-team' exists"):
        rolloutdb.create_project("b-team", fresh_database_url)
    assert [p.name for p in rolloutdb.list_projects(fresh_database_url)] == ["b-team"]


def test_listing_projects_of_a_missing_database_creates_nothing(tmp_path):
    with pytest.raises(DatabaseNotFoundError):
        rolloutdb.list_projects(f"sqlite:///{tmp_path / 'none.db'}")
    assert list(tmp_path.iterdir()) == []


def test_a_foreign_sqlite_database_is_refused_without_being_changed(tmp_path):
    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    for create in (True, False):
        with pytest.raises(SchemaOutOfDateError, match="not a RolloutDB database"):
            rolloutdb.connect(f"sqlite:///{path}", create=create)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db"]


def test_a_directory_given_as_the_database_is_named_as_such(tmp_path):
    with pytest.raises(StoreUnavailableError, match="is a directory") as caught:
        rolloutdb.connect(f"sqlite:///{tmp_path}")
    assert "server" not in str(caught.value)


@pytest.mark.postgresql
def test_a_pooled_connection_the_server_closed_while_idle_is_replaced(postgres_databases, monkeypatch):
    """Pooled connections are pinged only after being idle a while (not before every transaction); one
    that the server has closed meanwhile (a restart, an idle timeout) is replaced, and the call goes on."""
    from conftest import postgres_connection
    from rolloutdb.store import engine as store_engine
    from sqlalchemy.engine import make_url

    monkeypatch.setattr(store_engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    url = postgres_databases.new()
    with rolloutdb.connect(url) as store:
        store.rollouts.enqueue("x")
        parsed = make_url(url)
        with postgres_connection(url, autocommit=True) as admin:
            closed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                   " WHERE datname = %s AND pid <> pg_backend_pid()", (parsed.database,)).fetchone()
        assert closed[0] >= 1
        assert store.rollouts.count() == 1
        assert store.rollouts.enqueue("y").status == "queuing"


def test_a_write_into_a_removed_sqlite_file_is_refused_not_lost(tmp_path):
    """SQLite's open connections go on writing into a database file removed or replaced under them, where nobody
    will ever read it again: a write after that is refused (the store is unavailable), as ``ping`` says."""
    folder = tmp_path / "data"
    folder.mkdir()
    with rolloutdb.connect(f"sqlite:///{folder / 'gone.db'}") as store:
        store.runs.create(name="before")
        for path in folder.iterdir():
            path.unlink()
        with pytest.raises(StoreUnavailableError, match="gone.db' is gone"):
            store.runs.create(name="after")


@pytest.mark.postgresql
def test_postgresql_sessions_run_in_utc_unless_the_client_chose_a_time_zone(postgres_databases, monkeypatch):
    """The store's times are UTC, so its sessions are too, whatever the server's zone: psycopg then gives datetimes
    in UTC, with nothing to convert (a trajectory reads 1,500). A zone the client chose (PGTZ, options) is kept, and
    the store's records are in UTC all the same."""
    from datetime import timezone

    from conftest import postgres_connection
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    url = postgres_databases.new()
    with postgres_connection(url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{make_url(url).database}\" SET TimeZone = 'Asia/Kolkata'")
    monkeypatch.delenv("PGTZ", raising=False)
    monkeypatch.delenv("PGOPTIONS", raising=False)

    def session_zone(store: rolloutdb.Store) -> str:
        with store.engine.connect() as connection:
            return connection.execute(text("SHOW TimeZone")).scalar_one()

    with rolloutdb.connect(url) as store:
        assert session_zone(store) == "UTC"
        rollout_id = store.rollouts.enqueue("x").id
    monkeypatch.setenv("PGTZ", "Asia/Kolkata")
    with rolloutdb.connect(url) as store:
        assert session_zone(store) == "Asia/Kolkata"
        assert store.rollouts.get(rollout_id).created_at.tzinfo is timezone.utc
