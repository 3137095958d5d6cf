"""Timeouts on PostgreSQL connections: an outage that hangs (a network dropping packets) is noticed and
reported like one that refuses, instead of blocking store calls for as long as it lasts.

Real parts only: the real server, reached through a proxy (tests/netproxy.py) that can go silent.
Every wait is bounded: a call that hangs fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import postgres_connection
from netproxy import Proxy
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

import rolloutdb
from rolloutdb.errors import InvalidInputError, StoreUnavailableError
from rolloutdb.store.engine import MIGRATION_LOCK_KEY, unavailable_as_error

pytestmark = pytest.mark.postgresql


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0


def bounded(seconds: float, call: Callable[[], Any]) -> Outcome:
    """Run ``call`` in a thread and wait at most ``seconds`` for it: still running then fails the test."""
    outcome = Outcome()

    def run() -> None:
        started = time.monotonic()
        try:
            outcome.value = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.error = exc
        outcome.elapsed = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still waiting after {seconds} s: the hang was not detected")
    return outcome


@pytest.fixture
def database(postgres_databases) -> URL:
    return make_url(postgres_databases.new())


@pytest.fixture
def proxy(database) -> Iterator[Proxy]:
    proxy = Proxy(database.host or "127.0.0.1", database.port or 5432)
    yield proxy
    proxy.close()  # also frees a connect still waiting on a hang that a failed test left behind


@pytest.fixture(autouse=True)
def no_timeouts_from_outside(monkeypatch) -> None:
    for name in ("ROLLOUTDB_CONNECT_TIMEOUT", "ROLLOUTDB_STATEMENT_TIMEOUT", "PGCONNECT_TIMEOUT", "PGOPTIONS"):
        monkeypatch.delenv(name, raising=False)


def through(proxy: Proxy, database: URL, **query: str) -> str:
    return database.set(host="127.0.0.1", port=proxy.port, query=query).render_as_string(hide_password=False)


def show(store: rolloutdb.Store, setting: str) -> str:
    with store.engine.connect() as connection:
        return connection.execute(text(f"SHOW {setting}")).scalar_one()


def test_connecting_over_a_network_that_hangs_fails_within_the_connect_timeout(proxy, database, monkeypatch):
    monkeypatch.setenv("ROLLOUTDB_CONNECT_TIMEOUT", "2")
    url = through(proxy, database)
    proxy.hang()
    outcome = bounded(8, lambda: rolloutdb.connect(url))
    assert isinstance(outcome.error, StoreUnavailableError), outcome.error
    assert "cannot reach the database" in str(outcome.error)
    assert "no answer within 2 s" in str(outcome.error)
    assert 1.5 < outcome.elapsed < 5
    proxy.restore()  # the same URL works again once the network does
    outcome = bounded(8, lambda: rolloutdb.connect(url))
    assert outcome.error is None, outcome.error
    with outcome.value as store:
        assert store.runs.count() == 0


def test_the_timeouts_reach_the_server_session(database, monkeypatch):
    url = database.render_as_string(hide_password=False)
    with rolloutdb.connect(url) as store:  # the defaults
        assert show(store, "statement_timeout") == "1min"
        assert show(store, "idle_in_transaction_session_timeout") == "1min"
        with store.engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert driver.info.get_parameters()["connect_timeout"] == "10"
            # The kernel notices a dead link on an open connection. (Not testable with the proxy: its own
            # kernel acknowledges everything. So: the options are on the socket.)
            with socket.socket(fileno=os.dup(driver.fileno())) as sock:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 15
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 30000
    monkeypatch.setenv("ROLLOUTDB_STATEMENT_TIMEOUT", "7.5")
    with rolloutdb.connect(url) as store:
        assert show(store, "statement_timeout") == "7500ms"
        assert show(store, "idle_in_transaction_session_timeout") == "7500ms"
    monkeypatch.setenv("ROLLOUTDB_STATEMENT_TIMEOUT", "0")  # no limit
    with rolloutdb.connect(url) as store:
        assert show(store, "statement_timeout") == "0"


def test_what_the_user_put_in_the_url_wins(proxy, database, monkeypatch):
    monkeypatch.setenv("ROLLOUTDB_CONNECT_TIMEOUT", "30")
    monkeypatch.setenv("ROLLOUTDB_STATEMENT_TIMEOUT", "7.5")
    proxy.hang()
    outcome = bounded(8, lambda: rolloutdb.connect(through(proxy, database, connect_timeout="2")))
    assert isinstance(outcome.error, StoreUnavailableError), outcome.error
    assert "no answer within 2 s" in str(outcome.error)
    assert outcome.elapsed < 5
    proxy.restore()
    url = database.set(query={"connect_timeout": "3", "options": "-c statement_timeout=4321"})
    with rolloutdb.connect(url.render_as_string(hide_password=False)) as store:
        assert show(store, "statement_timeout") == "4321ms"
        assert show(store, "idle_in_transaction_session_timeout") == "7500ms"  # not in the URL: ours
        with store.engine.connect() as connection:
            assert connection.connection.driver_connection.info.get_parameters()["connect_timeout"] == "3"


def test_a_statement_timeout_on_a_reachable_server_is_not_reported_as_an_outage(database, monkeypatch):
    monkeypatch.setenv("ROLLOUTDB_STATEMENT_TIMEOUT", "0.5")
    # The variable sets idle_in_transaction_session_timeout too; on a busy machine the aborted
    # transaction can sit 0.5 s before its ROLLBACK and the server would end the session first.
    patient = database.update_query_dict({"options": "-c idle_in_transaction_session_timeout=30s"})
    with rolloutdb.connect(patient.render_as_string(hide_password=False)) as store:
        started = time.monotonic()
        with pytest.raises(OperationalError) as raised:
            with unavailable_as_error(store.url), store.engine.connect() as connection:
                connection.execute(text("SELECT pg_sleep(3)"))
        assert time.monotonic() - started < 2
        assert not isinstance(raised.value, StoreUnavailableError)
        assert "statement timeout" in str(raised.value)
        assert any("ROLLOUTDB_STATEMENT_TIMEOUT" in note for note in getattr(raised.value, "__notes__", []))
        assert store.runs.count() == 0  # and the store goes on


def test_migrating_is_not_cut_short_by_the_statement_timeout(database, monkeypatch):
    """Migrations may run long, and wait for another process's migration: they lift the limit."""
    monkeypatch.setenv("ROLLOUTDB_STATEMENT_TIMEOUT", "0.5")
    with postgres_connection(database.render_as_string(hide_password=False), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))  # "another process migrating"
        threading.Timer(1.5, lambda: other.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))).start()
        outcome = bounded(8, lambda: rolloutdb.connect(database.render_as_string(hide_password=False)))
    assert outcome.error is None, outcome.error
    assert outcome.elapsed > 1.0  # it did wait for the lock, past the 0.5 s limit
    with outcome.value as store:
        assert store.runs.count() == 0
        assert show(store, "statement_timeout") == "500ms"


@pytest.mark.parametrize("value", ["1min", "-5", "nan"])
def test_a_timeout_that_is_not_a_number_of_seconds_is_refused(database, monkeypatch, value):
    monkeypatch.setenv("ROLLOUTDB_STATEMENT_TIMEOUT", value)
    with pytest.raises(InvalidInputError, match="ROLLOUTDB_STATEMENT_TIMEOUT must be a number of seconds"):
        rolloutdb.connect(database.render_as_string(hide_password=False))
