"""Backends for the tests: a real SQLite file and a real PostgreSQL server.

PostgreSQL is found at ROLLOUTDB_TEST_POSTGRES_URL (default: postgres@127.0.0.1:5432). Each test
session creates a fresh database there and drops it at the end. Without a server the PostgreSQL
tests are skipped, except under CI=true, where they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.config import Config
from sqlalchemy.engine import make_url

import rolloutdb
from rolloutdb.config import SERVER_MAX_BODY_BYTES
from rolloutdb.store import engine as engine_module

POSTGRES_SERVER_URL = os.environ.get(
    "ROLLOUTDB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
# The store contract tests also run through the remote client and a real server on each database.
STORE_BACKENDS = [*BACKENDS, pytest.param("http-sqlite", marks=pytest.mark.http),
                  pytest.param("http-postgresql", marks=[pytest.mark.http, pytest.mark.postgresql])]


def postgres_connection(url: str, *, database: str | None = None, **options) -> psycopg.Connection:
    """A plain psycopg connection (no store) to the PostgreSQL database of ``url``, or to ``database`` on its
    server: for what a test does beside the store (hold a transaction open, end sessions, take locks)."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return psycopg.connect(parsed.render_as_string(hide_password=False), **options)


def _admin_connection() -> psycopg.Connection:
    return postgres_connection(POSTGRES_SERVER_URL, database=make_url(POSTGRES_SERVER_URL).database or "postgres",
                               autocommit=True, connect_timeout=5)


class PostgresDatabases:
    """Creates throwaway databases on the test server and drops them all at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.error: str | None = None
        try:
            _admin_connection().close()
        except psycopg.OperationalError as exc:
            self.error = str(exc).strip()

    def new(self) -> str:
        if self.error is not None:
            message = f"PostgreSQL test server unreachable at {POSTGRES_SERVER_URL}: {self.error}"
            if IN_CI:
                pytest.fail(message + " (CI=true: PostgreSQL tests must run)")
            pytest.skip(message)
        name = f"rolloutdb_test_{uuid.uuid4().hex[:12]}"
        with _admin_connection() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(POSTGRES_SERVER_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self.created:
            return
        with _admin_connection() as connection:
            for name in self.created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


def new_database_url(backend: str, postgres_databases: PostgresDatabases, directory) -> str:
    if backend == "sqlite":
        return f"sqlite:///{directory / f'rolloutdb-{uuid.uuid4().hex[:8]}.db'}"
    return postgres_databases.new()


class SessionBackends:
    """One database per backend for the whole session, and one server per backend for the http ones, made when
    a test first asks for it; tests keep apart by project."""

    def __init__(self, postgres_databases: PostgresDatabases, directory: Path) -> None:
        self.postgres_databases = postgres_databases
        self.directory = directory
        self.urls: dict[str, str] = {}
        self.servers: dict[str, str] = {}
        self.running = contextlib.ExitStack()

    def database_url(self, backend: str) -> str:
        if backend not in self.urls:
            self.urls[backend] = new_database_url(backend, self.postgres_databases, self.directory)
        return self.urls[backend]

    def server_url(self, backend: str) -> str:
        """``rolloutdb serve --all-projects`` on the session's database of ``backend``."""
        from server.servers import running_server

        if backend not in self.servers:
            server = self.running.enter_context(running_server(
                self.database_url(backend), self.directory, None, "--all-projects",
                "--max-body-bytes", str(SERVER_MAX_BODY_BYTES)))
            self.servers[backend] = server.base
        return self.servers[backend]


@pytest.fixture(scope="session")
def session_backends(postgres_databases, tmp_path_factory) -> Iterator[SessionBackends]:
    backends = SessionBackends(postgres_databases, tmp_path_factory.mktemp("db"))
    with backends.running:
        yield backends


@pytest.fixture(scope="session", params=BACKENDS)
def session_database_url(request, session_backends) -> str:
    """One database per backend for the whole session; tests keep apart by project."""
    return session_backends.database_url(request.param)


@pytest.fixture(params=BACKENDS)
def fresh_database_url(request, postgres_databases, tmp_path) -> str:
    """A new, empty database for tests that need one to themselves (migrations, CLI)."""
    return new_database_url(request.param, postgres_databases, tmp_path)


@pytest.fixture(params=STORE_BACKENDS)
def store(request, session_backends) -> Iterator[rolloutdb.Store]:
    """A store on its own project, so tests never see each other's rows: on the session's database of each
    backend, or (http-...) through the remote client and the session's server on that database."""
    backend = request.param
    url = (session_backends.server_url(backend.removeprefix("http-")) if backend.startswith("http-")
           else session_backends.database_url(backend))
    with rolloutdb.connect(url, project=f"test-{uuid.uuid4().hex[:12]}") as store:
        yield store


@pytest.fixture
def proxied_postgres(postgres_databases):
    """A new PostgreSQL database, and a URL to it through a proxy the test can cut, hang and restore."""
    from netproxy import Proxy

    url = make_url(postgres_databases.new())
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield (url.render_as_string(hide_password=False),
               url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy)
    finally:
        proxy.close()


def skip_on_http(store, reason: str) -> None:
    """Skip a store test on the http backend, where (``reason``) the remote client cannot do what it tests."""
    if store.backend == "http":
        pytest.skip(f"not through a server: {reason}")


# -- migrations: a pretend later release ---------------------------------------------------------

EXTRA_MIGRATION = '''
"""a later migration that adds one table"""
from alembic import op
import sqlalchemy as sa

revision = "0999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("later_table", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("later_table")
'''


def revision_of(url: str) -> str | None:
    engine = engine_module.create_store_engine(url)
    try:
        with engine.connect() as connection:
            return engine_module.current_revision(connection)
    finally:
        engine.dispose()


@pytest.fixture
def later_release(tmp_path, monkeypatch):
    """Pretend a newer RolloutDB ships one more migration than the database has."""
    shipped = Path(engine_module.__file__).parent.parent / "migrations"
    migrations = tmp_path / "migrations"
    shutil.copytree(shipped, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    head = engine_module.head_revision()
    (migrations / "versions" / "0999_later.py").write_text(EXTRA_MIGRATION.format(head=head))

    def later_config() -> Config:
        config = Config()
        config.set_main_option("script_location", str(migrations))
        return config

    monkeypatch.setattr(engine_module, "alembic_config", later_config)
    return head
