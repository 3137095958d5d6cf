"""Where the database is found: argument, ROLLOUTDB_URL, DATABASE_URL, POSTGRES_*, then the default."""

import pytest
from sqlalchemy.engine import make_url

import rolloutdb
from rolloutdb.config import DEFAULT_URL, resolve_url
from rolloutdb.errors import InvalidInputError

ALL_SOURCES = {
    "ROLLOUTDB_URL": "sqlite:///from-rolloutdb-url.db",
    "DATABASE_URL": "sqlite:///from-database-url.db",
    "POSTGRES_HOST": "db.internal",
    "POSTGRES_PORT": "6543",
    "POSTGRES_DB": "rl",
    "POSTGRES_USER": "trainer",
    "POSTGRES_PASSWORD": "p@ss word",
}


def test_argument_beats_every_environment_variable():
    assert resolve_url("sqlite:///arg.db", ALL_SOURCES) == "sqlite:///arg.db"


def test_rolloutdb_url_beats_database_url_and_postgres_vars():
    assert resolve_url(None, ALL_SOURCES) == "sqlite:///from-rolloutdb-url.db"


def test_database_url_beats_postgres_vars():
    env = {k: v for k, v in ALL_SOURCES.items() if k != "ROLLOUTDB_URL"}
    assert resolve_url(None, env) == "sqlite:///from-database-url.db"


def test_postgres_vars_build_a_psycopg_url_that_keeps_every_part():
    env = {k: v for k, v in ALL_SOURCES.items() if k.startswith("POSTGRES_")}
    url = make_url(resolve_url(None, env))
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql+psycopg", "trainer", "p@ss word", "db.internal", 6543, "rl"
    )


def test_postgres_vars_fill_in_defaults_for_what_is_missing():
    assert resolve_url(None, {"POSTGRES_HOST": "db"}) == "postgresql+psycopg://postgres@db:5432/postgres"


def test_embedded_sqlite_file_is_the_default():
    assert resolve_url(None, {}) == DEFAULT_URL == "sqlite:///./rolloutdb.db"


@pytest.mark.parametrize(
    "given",
    ["postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"],
)
def test_postgres_spellings_use_psycopg3(given):
    assert resolve_url(given, {}) == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "not a url"])
def test_unsupported_or_malformed_url_is_a_clear_error(bad):
    with pytest.raises(InvalidInputError, match="sqlite|URL"):
        resolve_url(bad, {})


def test_bad_postgres_port_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="POSTGRES_PORT"):
        resolve_url(None, {"POSTGRES_HOST": "db", "POSTGRES_PORT": "five"})


def test_connect_without_arguments_opens_the_default_file_in_the_working_directory(tmp_path, monkeypatch):
    for name in ALL_SOURCES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with rolloutdb.connect() as store:
        store.runs.create(name="here")
        assert store.backend == "sqlite"
    assert (tmp_path / "rolloutdb.db").is_file()


def test_connect_reads_rolloutdb_url_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ROLLOUTDB_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    with rolloutdb.connect() as store:
        store.runs.create(name="from-env")
    assert (tmp_path / "env.db").is_file() and not (tmp_path / "other.db").exists()
