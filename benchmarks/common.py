"""What the benchmarks share: throwaway databases, the PostgreSQL server option, marking targets."""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url


def add_postgres_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--postgres", default=os.environ.get(
        "ROLLOUTDB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server to create a throwaway database on")


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{directory}/bench.db"


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    server = make_url(server_url)
    name = f"rolloutdb_bench_{uuid.uuid4().hex[:8]}"
    admin = dict(host=server.host, port=server.port or 5432, user=server.username, password=server.password,
                 dbname=server.database or "postgres", autocommit=True)
    with psycopg.connect(**admin) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def analyze_postgresql(url: str) -> None:
    """The planner's statistics of a database just built, as autovacuum keeps them in one that grew by use (some
    servers run without it, as CI's; without statistics PostgreSQL may plan a query from its smallest table)."""
    if make_url(url).get_backend_name() == "postgresql":
        with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                             autocommit=True) as connection:
            connection.execute("ANALYZE")


def checkpoint_sqlite(url: str) -> None:
    """A SQLite database just built with its write-ahead log copied into the file and emptied, as the store's WAL
    thread keeps it in one that grew by use. A build through the engine's own transactions does not wake the thread:
    the 10M spans' 8 GB were left in the WAL until the store's next writes woke it, and it copied them while the
    samples ran (every page read searching the WAL's index meanwhile: 3-6x the read's time). Waits while the store's
    thread is at it (SQLite then answers busy)."""
    if make_url(url).get_backend_name() == "sqlite":
        with sqlite3.connect(make_url(url).database) as connection:
            while connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
                time.sleep(0.5)


def met(ok: bool | None) -> str:
    """A table cell for a target: met, not met, or none."""
    return "-" if ok is None else "[green]✓[/]" if ok else "[red]✗[/]"
