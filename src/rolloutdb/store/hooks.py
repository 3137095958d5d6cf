"""Work a write transaction leaves for its end: "before commit" (queued rows written all at once,
statistics refreshed once however many rows touched them) and "after commit" (waking waiters).
Both live on the connection for the length of one transaction; a rollback drops them, and so does
the rollback of a savepoint for what was queued inside it."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy import Connection

from ._statements import commit_now, drop_waiting_writes, send_commit, sent_together

BEFORE_COMMIT = "rolloutdb_before_commit"  # connection.info keys
AFTER_COMMIT = "rolloutdb_after_commit"
Q = TypeVar("Q")
F = TypeVar("F", bound=Callable[..., None])


def before_commit(connection: Connection, flush: Callable[[Connection, Q], None], empty: Callable[[], Q]) -> Q:
    """What the transaction has queued so far for ``flush`` to write (``empty()`` at first): the caller adds
    to it. ``flush`` is called once with the queue just before the commit, or when ``flush_now`` asks. A
    ``flush`` marked ``writes_only`` runs after the others, with the rest of its kind, all sent together."""
    queues = connection.info.setdefault(BEFORE_COMMIT, {})
    if flush not in queues:
        queues[flush] = empty()
    return queues[flush]


def after_commit(connection: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the transaction has committed (never if it rolls back)."""
    connection.info.setdefault(AFTER_COMMIT, []).append(callback)


def writes_only(flush: F) -> F:
    """Mark a before-commit ``flush`` that only writes (reads no result of its statements, nor anything of the
    database): ``flush_now`` sends the statements of such flushes together (``sent_together``)."""
    flush.writes_only = True  # type: ignore[attr-defined]
    return flush


def flush_now(connection: Connection, *, commit: bool = False) -> None:
    """Run the before-commit work queued so far, for a step of the transaction that must see its result; with
    ``commit``, then commit, the COMMIT sent with the last writes."""
    # A flush may queue more (statistics refreshed change statuses, which queue history): until none is left.
    while queues := connection.info.pop(BEFORE_COMMIT, None):
        blind = {flush: queued for flush, queued in queues.items() if getattr(flush, "writes_only", False)}
        for flush, queued in queues.items():
            if flush not in blind:
                flush(connection, queued)
        if blind:
            with sent_together(connection):
                for flush, queued in blind.items():
                    flush(connection, queued)
                if commit and BEFORE_COMMIT not in connection.info:
                    send_commit(connection)
    if commit:
        commit_now(connection)


@contextlib.contextmanager
def transaction(connection: Connection) -> Iterator[Connection]:
    """One write transaction with its hooks: before-commit work, the commit, then after-commit callbacks."""
    try:
        with connection.begin():
            yield connection
            flush_now(connection, commit=True)
    except BaseException:
        _drop(connection)
        drop_waiting_writes(connection)
        raise
    for callback in connection.info.pop(AFTER_COMMIT, []):
        callback()


@contextlib.contextmanager
def savepoint(connection: Connection) -> Iterator[None]:
    """A nested transaction whose rollback also drops what it queued for commit time (history rows,
    statistics, wake-ups), so that a part undone leaves no trace."""
    saved = {BEFORE_COMMIT: {flush: copy.copy(queued)
                             for flush, queued in connection.info.get(BEFORE_COMMIT, {}).items()},
             AFTER_COMMIT: list(connection.info.get(AFTER_COMMIT, []))}
    try:
        with connection.begin_nested():
            yield
    except BaseException:
        _drop(connection)
        connection.info.update(saved)
        raise


def _drop(connection: Connection) -> None:
    connection.info.pop(BEFORE_COMMIT, None)
    connection.info.pop(AFTER_COMMIT, None)
