"""Waiting for rollouts to finish without busy-polling the database.

PostgreSQL: the transaction that finishes a rollout sends NOTIFY on its project's channel; waiters LISTEN
to their own project's, so no process hears another project's rollout ids. SQLite: waiters in this process
are woken when such a transaction commits, and poll slowly for other processes."""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select
from sqlalchemy.engine import make_url

from .. import states
from ..errors import NotFoundError, StoreUnavailableError
from ..records import Rollout
from ..schema import rollouts
from . import hooks
from .engine import postgres_connect_args
from .base import one_of

if TYPE_CHECKING:
    import psycopg

    from . import Store

NOTIFY_EACH = "SELECT pg_notify(%s, rollout) FROM unnest(%s::text[]) AS rollout"  # a notification per id


def channel(project_id: str) -> str:
    """The PostgreSQL notification channel of a project's finished rollouts. A hash of the project's id: a
    valid identifier for any id, and within PostgreSQL's 63 bytes."""
    return "rolloutdb_finished_" + hashlib.sha256(project_id.encode()).hexdigest()[:32]


class Waiter:
    def __init__(self, store: Store, poll_interval: float) -> None:
        self._store = store
        self._poll_interval = poll_interval
        self._finished = threading.Condition()
        self._closed = False

    def announce(self, connection: Connection, rollout_ids: Sequence[str]) -> None:
        """Called inside the transaction that finishes rollouts: wake the waiters once it commits (one
        statement, or one wake-up, however many rollouts it finishes)."""
        if not rollout_ids:
            return
        if connection.dialect.name == "postgresql":  # sent with the transaction's other writes before commit
            hooks.before_commit(connection, self._notify, list).extend(rollout_ids)
        else:
            hooks.after_commit(connection, self._wake)

    @hooks.writes_only
    def _notify(self, connection: Connection, rollout_ids: list[str]) -> None:
        connection.exec_driver_sql(NOTIFY_EACH, (self._channel, rollout_ids))

    @functools.cached_property
    def _channel(self) -> str:
        return channel(self._store.project_id)

    def _wake(self) -> None:
        with self._finished:
            self._finished.notify_all()

    def wait(self, rollout_ids: list[str], timeout: float | None) -> list[Rollout]:
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        if self._store.backend == "postgresql":
            import psycopg  # here: a SQLite store never loads the PostgreSQL driver
            from psycopg import sql

            url = self._store.url.replace("postgresql+psycopg://", "postgresql://", 1)
            with psycopg.connect(url, autocommit=True, **postgres_connect_args(make_url(url))) as listener:
                listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                return self._loop(rollout_ids, deadline, lambda seconds: self._next_notification(listener, seconds))
        return self._loop(rollout_ids, deadline, self._next_wake)

    def close(self) -> None:
        """End the waits under way (within a poll interval on PostgreSQL): a server shutting down closes its store,
        and a wait in one of its threads would otherwise hold the process until its rollouts finish."""
        self._closed = True
        self._wake()

    def _loop(self, rollout_ids: list[str], deadline: float | None, sleep) -> list[Rollout]:
        while True:
            if self._closed:
                raise StoreUnavailableError("the store was closed while waiting for rollouts (a server shutting "
                                            "down): ask again")
            self._store.maybe_check_health()
            finished = self._finished_among(rollout_ids)
            remaining = None if deadline is None else deadline - time.monotonic()
            if len(finished) == len(set(rollout_ids)) or (remaining is not None and remaining <= 0):
                return finished
            # Wake up now and then regardless: other processes (SQLite) and the health check need it.
            sleep(self._poll_interval if remaining is None else min(remaining, self._poll_interval))

    def _next_wake(self, seconds: float) -> None:
        with self._finished:
            self._finished.wait(seconds)

    @staticmethod
    def _next_notification(listener: psycopg.Connection, seconds: float) -> None:
        for _ in listener.notifies(timeout=seconds, stop_after=1):
            pass

    def _finished_among(self, rollout_ids: list[str]) -> list[Rollout]:
        with self._store.reading() as connection:
            rows = connection.execute(
                select(rollouts).where(rollouts.c.project_id == self._store.project_id,
                                       one_of(rollouts.c.id, rollout_ids, self._store.backend))
            ).mappings().all()
        missing = sorted(set(rollout_ids) - {row["id"] for row in rows})
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5:,} more" if len(missing) > 5 else "")
            raise NotFoundError(f"cannot wait for unknown rollout(s): {shown}")
        return [Rollout.model_validate(dict(row)) for row in rows if row["status"] in states.TERMINAL["rollout"]]
