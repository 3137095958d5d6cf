"""The server tests' servers: one per backend (a SQLite file, PostgreSQL) for the whole session, shared by the
tests, which keep apart by unique names."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from conftest import BACKENDS, new_database_url
from server.servers import Server, running_server


@pytest.fixture(scope="session", params=BACKENDS)
def server(request, postgres_databases, tmp_path_factory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("server")
    with running_server(new_database_url(request.param, postgres_databases, directory), directory) as running:
        yield running


RECHECK_SECONDS = 0.3  # how often an open event stream checks its token again: short, to keep tests fast


@pytest.fixture(scope="session", params=BACKENDS)
def auth_server(request, postgres_databases, tmp_path_factory) -> Iterator[Server]:
    """`rolloutdb serve --auth`, one per backend for the session: tests make projects and tokens of their own."""
    directory = tmp_path_factory.mktemp("auth-server")
    with running_server(new_database_url(request.param, postgres_databases, directory), directory, None,
                        "--auth", "--token-recheck", str(RECHECK_SECONDS)) as running:
        yield running


@pytest.fixture
def api(server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


