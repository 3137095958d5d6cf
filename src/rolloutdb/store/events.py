"""The change feed: what live views follow (a job's progress and log, status changes), as ``Event`` rows.

Each event is written by the transaction that makes its change (``publish``, queued for commit time), so a
change and its event commit or roll back together, whichever process wrote them. Readers take them in id
order after the last id they had (``store.events.follow``; the server's ``GET /api/v1/events``), and an id
once handed out is never followed by a smaller one: that is what makes resuming after an id exact.

On SQLite writers take turns, so ids commit in order. On PostgreSQL two transactions may commit out of id
order: a reader that sees a hole below an id it can see stops there until every transaction that was in
flight when it saw the hole has ended (``Cursor``), and a new event wakes readers by NOTIFY.

``purge`` trims the feed's oldest events (see ``store.retention``): resuming reaches back to the oldest event
kept; asking for what came after an id it has trimmed past raises ``FeedTrimmedError`` (resync instead), and so
does a follower that had not read what purge trimmed, when it reads the next event (a server's event streams
too: see ``trimmed_between``)."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from .. import states
from ..errors import FeedTrimmedError, InvalidInputError
from ..records import Event
from ..schema import event_trims, events
from ._feed import channel
from .base import MAX_OFFSET, seconds, whole_number
from .engine import postgres_connect_args

if TYPE_CHECKING:
    import psycopg

    from . import Store

TOPICS = ("job", "log", *states.TRANSITIONS)  # a status change's topic is its entity type
MAX_READ = 1000  # events one read returns at most
CURRENT_SNAPSHOT = text("SELECT pg_current_snapshot()::text")
# Transaction ids are the cluster's, and a snapshot lists every transaction in flight in every database. Only
# those writing to this database's events table (they hold a RowExclusiveLock on it from their INSERT on, and
# take their event ids inside that INSERT) can fill a hole; the others are bystanders, listed here by the id
# lock each running transaction holds on its own id.
BYSTANDERS = text("""
    SELECT own.transactionid::text FROM pg_locks AS own
    WHERE own.locktype = 'transactionid' AND own.mode = 'ExclusiveLock' AND own.granted AND own.pid IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM pg_locks AS writing
                      WHERE writing.pid = own.pid AND writing.locktype = 'relation'
                        AND writing.mode = 'RowExclusiveLock'
                        AND writing.relation = CAST('events' AS regclass)
                        AND writing.database = (SELECT oid FROM pg_database WHERE datname = current_database()))""")
# How often a follower looks for new events without being woken: SQLite has no notifications (a max(id) read
# is cheap); on PostgreSQL it only covers a notification lost with a dropped connection.
POLL_SECONDS = {"sqlite": 0.05, "postgresql": 1.0}
HOLE_RECHECK_SECONDS = 0.05
SETTLE_SECONDS = 0.005  # how often latest_id looks whether the transactions it waits for have ended


@dataclass
class Snapshot:
    """Which PostgreSQL transactions had ended when a read was taken (``pg_current_snapshot()``)."""

    xmin: int
    xmax: int
    in_flight: frozenset[int]

    @classmethod
    def parse(cls, value: str) -> Snapshot:
        xmin, xmax, listed = value.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(xid) for xid in listed.split(",") if xid))

    def ended(self, xid: int) -> bool:
        return xid < self.xmin or (xid < self.xmax and xid not in self.in_flight)

    def without_bystanders(self, connection) -> Snapshot:
        """This snapshot with only those of its transactions in flight that may still write an event here
        (``BYSTANDERS``, looked at after the snapshot was taken: one that ended since is kept, and is seen
        ended by the next snapshot)."""
        bystanders = {int(xid) for xid in connection.execute(BYSTANDERS).scalars()}
        # pg_locks shows 32-bit ids; the snapshot's carry the epoch above them.
        return Snapshot(self.xmin, self.xmax,
                        frozenset(xid for xid in self.in_flight if xid % 2 ** 32 not in bystanders))


@dataclass
class Cursor:
    """Where a reader is in the feed: the last id it was given, and, while it waits at a hole in the ids, the
    transactions that could still fill it (those in flight when the hole was first seen)."""

    last: int
    hole_at: int | None = None
    could_fill: frozenset[int] = field(default_factory=frozenset)

    def has_hole(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Whether ``rows`` (read after ``last``, in id order) skip an id."""
        return any(row["id"] != expected for expected, row in enumerate(rows, self.last + 1))

    def take(self, rows: Sequence[Mapping[str, Any]], snapshot: Snapshot | None) -> list[Mapping[str, Any]]:
        """The rows (read after ``last``, in id order, as of ``snapshot``; None on SQLite) that are settled:
        up to the first hole that a transaction in flight may still fill. Moves past what it returns."""
        taken = []
        for row in rows:
            expected = self.last + 1
            if row["id"] != expected and snapshot is not None and snapshot.in_flight:
                if self.hole_at != expected:  # a new hole: whoever is in flight now may fill it
                    self.hole_at, self.could_fill = expected, snapshot.in_flight
                if not all(snapshot.ended(xid) for xid in self.could_fill):
                    break
            taken.append(row)
            self.last, self.hole_at, self.could_fill = row["id"], None, frozenset()
        return taken


class Events:
    """``store.events``: the project's change feed, read after an id or followed live."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def latest_id(self) -> int:
        """The id of the project's newest event (0 before the first): follow after it for what comes next.

        Settled: no event with a smaller id commits later (on PostgreSQL, it waits for the transactions in
        flight when it looked to end, as one of them may hold a smaller id)."""
        newest = select(func.coalesce(func.max(events.c.id), 0)).where(events.c.project_id == self._store.project_id)
        with self._store.reading() as connection:
            if connection.dialect.name != "postgresql":
                return connection.execute(newest).scalar_one()
            with self._snapshot_of(connection) as snapshot:
                found = connection.execute(newest).scalar_one()
                if snapshot.in_flight:
                    snapshot = snapshot.without_bystanders(connection)
            while snapshot.in_flight:
                now = Snapshot.parse(connection.execute(CURRENT_SNAPSHOT).scalar_one())
                connection.rollback()
                if all(now.ended(xid) for xid in snapshot.in_flight):
                    break
                time.sleep(SETTLE_SECONDS)
        return found

    @staticmethod
    @contextlib.contextmanager
    def _snapshot_of(connection) -> Iterator[Snapshot]:
        """A PostgreSQL transaction whose reads all see one snapshot, and that snapshot's list of transactions
        in flight."""
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield Snapshot.parse(connection.execute(CURRENT_SNAPSHOT).scalar_one())

    def query(self, after: int = 0, *, topics: Sequence[str] | None = None, run: str | None = None,
              limit: int = 100) -> list[Event]:
        """Events after the id ``after``, oldest first, at most ``limit``; only those of ``topics`` (see
        ``Event``) and of the run ``run`` (name or id), if given. On PostgreSQL an event committed late may
        later appear below the newest returned here: ``follow`` never skips one."""
        whole_number("limit", limit, 1, MAX_READ)
        wanted_topics, run_id = self.filters(topics, run)
        after = whole_number("after", after, 0, MAX_OFFSET)
        statement = self._after(after, limit)
        if wanted_topics is not None:
            statement = statement.where(events.c.topic.in_(sorted(wanted_topics)))
        if run_id is not None:
            statement = statement.where(events.c.run_id == run_id)
        with self._store.reading() as connection:
            self._check_reach(connection, after)
            return [Event.model_validate(dict(row)) for row in connection.execute(statement).mappings()]

    def _check_reach(self, connection, after: int) -> None:
        """FeedTrimmedError if ``purge`` has deleted events after the id ``after`` (0: from the oldest kept)."""
        trimmed = self._trimmed_after(connection, after)
        if trimmed is not None:
            raise trimmed

    def _trimmed_after(self, connection, after: int) -> FeedTrimmedError | None:
        """The error for a reader after the id ``after`` if ``purge`` has deleted events after it, else None."""
        trimmed = connection.execute(select(event_trims.c.trimmed_through)
                                     .where(event_trims.c.project_id == self._store.project_id)).scalar_one_or_none()
        if after and trimmed is not None and after < trimmed:
            return FeedTrimmedError(f"the events after id {after} are no longer all kept: purge deleted those up to "
                                    f"id {trimmed}; read the current state again and follow from now on (the feed "
                                    f"resumes after id {trimmed} or later)", trimmed_through=trimmed)
        return None

    def trimmed_between(self, before: int, found: Sequence[Event]) -> FeedTrimmedError | None:
        """For a follower that was after the id ``before`` and has read ``found`` next: FeedTrimmedError if ``purge``
        deleted events in between that it had not read, else None. Only a gap in the ids is looked into (ids of
        other projects, and on PostgreSQL of rolled back transactions, leave gaps too)."""
        if not found or not before or found[0].id == before + 1:
            return None
        with self._store.reading() as connection:
            return self._trimmed_after(connection, before)

    def follow(self, after: int | None = None, *, topics: Sequence[str] | None = None, run: str | None = None,
               timeout: float | None = None) -> Iterator[Event]:
        """The events after the id ``after`` (None: from now on) as they are committed by any process, in id
        order, each once; filtered as ``query`` does. Ends after ``timeout`` seconds (None: never; leave the
        loop to stop). The same on a remote store, through the server's event stream."""
        wanted = self.filters(topics, run)
        if after is not None:
            after = whole_number("after", after, 0, MAX_OFFSET)
            with self._store.reading() as connection:
                self._check_reach(connection, after)
        cursor = Cursor(self.latest_id() if after is None else after)
        if timeout is not None:
            seconds("timeout", timeout)
        return self._following(cursor, wanted, None if timeout is None else time.monotonic() + timeout)

    def _following(self, cursor: Cursor, wanted: tuple[frozenset[str] | None, str | None],
                   deadline: float | None) -> Iterator[Event]:
        with self.wake_ups() as wait:
            while True:
                before = cursor.last
                found = self.read(cursor)
                trimmed = self.trimmed_between(before, found)
                if trimmed is not None:
                    raise trimmed
                for event in self.matching(found, *wanted):
                    yield event
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                pause = self.pause(cursor)
                wait(pause if remaining is None else min(remaining, pause))

    # -- for followers: ``follow`` and the server's event stream ------------------------------------

    def filters(self, topics: Sequence[str] | None, run: str | None) -> tuple[frozenset[str] | None, str | None]:
        """The checked filters of ``query`` and ``follow``: (topics or None for all, run id or None)."""
        if topics is not None:
            if isinstance(topics, str) or not all(isinstance(topic, str) for topic in topics):
                raise InvalidInputError(f"topics is a list of topic names, got {topics!r:.80}")
            unknown = sorted(set(topics) - set(TOPICS))
            if unknown:
                raise InvalidInputError(f"unknown event topic(s) {', '.join(map(repr, unknown))}; topics: "
                                        f"{', '.join(TOPICS)}")
        return (None if topics is None else frozenset(topics)), (None if run is None else self._store.runs.get(run).id)

    def pause(self, cursor: Cursor) -> float:
        """How long a follower at ``cursor`` may sleep at most before reading again: a hole is looked at again
        soon, as the transaction that left it may end without a notification (rolled back)."""
        return HOLE_RECHECK_SECONDS if cursor.hole_at is not None else POLL_SECONDS[self._store.backend]

    @staticmethod
    def matching(found: list[Event], topics: frozenset[str] | None, run_id: str | None) -> list[Event]:
        """Those of ``found`` that pass the filters (as ``filters`` returns them)."""
        return [event for event in found
                if (topics is None or event.topic in topics) and (run_id is None or event.run_id == run_id)]

    def read(self, cursor: Cursor) -> list[Event]:
        """The settled events after ``cursor`` (see ``Cursor``), at most ``MAX_READ``, of every topic and run;
        moves it past them."""
        statement = self._after(cursor.last, MAX_READ)
        snapshot = None
        with self._store.reading() as connection:
            if connection.dialect.name == "postgresql":
                with self._snapshot_of(connection) as snapshot:
                    rows = connection.execute(statement).mappings().all()
                    if snapshot.in_flight and cursor.has_hole(rows):
                        snapshot = snapshot.without_bystanders(connection)
            else:
                rows = connection.execute(statement).mappings().all()
        return [Event.model_validate(dict(row)) for row in cursor.take(rows, snapshot)]

    def _after(self, after: int, limit: int):
        return (select(events).where(events.c.project_id == self._store.project_id, events.c.id > after)
                .order_by(events.c.id).limit(limit))

    def wake_ups(self):
        """A context whose value ``wait(seconds)`` returns early when new events may be there (PostgreSQL:
        on NOTIFY; SQLite: when the newest id moved, looked at every few milliseconds)."""
        if self._store.backend == "postgresql":
            return self._notifications()
        return _Polling(self)

    def _notifications(self):
        import psycopg  # here: a SQLite store never loads the PostgreSQL driver
        from psycopg import sql

        @contextlib.contextmanager
        def listening() -> Iterator[Any]:
            url = self._store.url.replace("postgresql+psycopg://", "postgresql://", 1)
            with psycopg.connect(url, autocommit=True, **postgres_connect_args(make_url(url))) as listener:
                listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                yield functools.partial(_next_notification, listener)

        return listening()

    @functools.cached_property
    def _channel(self) -> str:
        return channel(self._store.project_id)


def _next_notification(listener: psycopg.Connection, seconds: float) -> None:
    for _ in listener.notifies(timeout=seconds, stop_after=1):
        pass


class _Polling:
    """SQLite's wake-ups: the newest id, read every ``SQLITE_TICK`` seconds until it moves or time is up."""

    SQLITE_TICK = 0.02

    def __init__(self, area: Events) -> None:
        self._area = area
        self._seen = -1

    def __enter__(self):
        return self.wait

    def __exit__(self, *exc_info: object) -> None:
        pass

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            newest = self._area.latest_id()
            if newest != self._seen:
                self._seen = newest
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(self.SQLITE_TICK, remaining))
