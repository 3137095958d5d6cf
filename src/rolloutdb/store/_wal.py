"""Keeping SQLite's write-ahead log short: its checkpoints run in a thread of the store's own, off the
writers' path. ("Checkpoint" is SQLite's word for copying the WAL into the database file; RolloutDB's
own checkpoints are a job's save points.)

By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: that commit
copies the pages into the database file and syncs both files while every writer waits (about a
tenth of a write-heavy workload's time). SQLite's documentation suggests turning that off and
checkpointing from a separate thread, which RolloutDB does: a commit only wakes the thread, which
runs a PASSIVE checkpoint at most every ``INTERVAL_SECONDS``, beside the writers.

A PASSIVE checkpoint never waits for a writer, so under constant writing it may never catch up with
the end of the WAL, and SQLite writes the WAL from its start again only once all of it has been
copied. When the WAL holds more than half of ``WAL_LIMIT_BYTES``, the thread therefore checkpoints once
more holding the store's write lock (ahead of the writers waiting for it: ``WriteLock``), in RESTART
mode: this process's writers pause for the few pages written meanwhile, other processes' writers for as
long as the copy takes (it holds SQLite's write lock too, or they would slip a commit in and keep the WAL
from starting over), and the next write starts the WAL from its start again. Half, because writers go on
until the thread holds the lock: a purge adds tens of megabytes a second, and the WAL must stay under the
limit meanwhile.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("rolloutdb.wal")

INTERVAL_SECONDS = 0.2
WAL_LIMIT_BYTES = 64 * 1024 * 1024
# How long a RESTART checkpoint waits for other processes' writers and readers, holding this one's writers.
CATCH_UP_WAIT_MS = 500
IDLE_SECONDS = 10.0  # a thread with nothing to do ends; the next commit starts another

# Held by a WAL thread while it is inside SQLite, and by os.fork() around the fork: a child forked while
# the thread was mid-checkpoint would inherit SQLite's internal mutexes locked, and hang on its first write.
_in_sqlite = threading.Lock()
os.register_at_fork(before=_in_sqlite.acquire, after_in_parent=_in_sqlite.release,
                    after_in_child=_in_sqlite.release)


class WriteLock:
    """This process's writes to one SQLite database, one at a time (reentrant: a write inside a write goes on),
    where the WAL thread's catch-up goes ahead of the writers waiting (``ahead_of_writers``). Python's locks are not
    fair: two writers committing back to back took the lock again and again before the WAL thread waiting for it
    woke (up to 100 ms), and meanwhile the WAL grew to 16 times its limit."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = threading.local()  # how deep the current thread is in its writes
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # no catch-up of the parent's is waiting in the child

    def _reset(self) -> None:
        self._turn = threading.Condition()
        self._catch_ups_waiting = 0

    def __enter__(self) -> None:
        depth = getattr(self._depth, "value", 0)
        if depth == 0 and self._catch_ups_waiting:
            with self._turn:
                self._turn.wait_for(lambda: not self._catch_ups_waiting)
        self._lock.acquire()
        self._depth.value = depth + 1

    def __exit__(self, *exc_info: object) -> None:
        self._depth.value -= 1
        self._lock.release()

    @contextmanager
    def ahead_of_writers(self) -> Iterator[None]:
        """Held as a write is, taken before any writer that starts waiting meanwhile."""
        with self._turn:
            self._catch_ups_waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._turn:
                self._catch_ups_waiting -= 1
                self._turn.notify_all()
        try:
            yield
        finally:
            self._lock.release()


class WalKeeper:
    """Checkpoints one SQLite database's WAL in a daemon thread, which commits start when it is needed."""

    def __init__(self, database: str, write_lock: WriteLock, busy_timeout: float) -> None:
        self.database = str(Path(database).absolute())  # as opened now, whatever the working directory becomes
        self._write_lock = write_lock
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()  # guards the thread's start and end against a commit's wake-up
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0  # the process the thread runs in: a forked child inherits no threads

    def written(self) -> None:
        """A write transaction committed: the WAL has grown."""
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._wake, self._stop = threading.Event(), threading.Event()
                self._thread = threading.Thread(target=self._run, args=(self._wake, self._stop), daemon=True,
                                                name=f"rolloutdb wal {self.database}")
                self._pid = os.getpid()
                self._thread.start()
            self._wake.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint it may be running). SQLite checkpoints the rest when
        the database's last connection closes."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None or self._pid != os.getpid():
                return
            self._stop.set()
            self._wake.set()
        thread.join()

    def _run(self, wake: threading.Event, stop: threading.Event) -> None:
        try:
            # mode=rw: a database file removed meanwhile is not made again, empty, by this connection.
            with _in_sqlite:
                connection = sqlite3.connect(f"{Path(self.database).as_uri()}?mode=rw", uri=True,
                                             isolation_level=None, timeout=self._busy_timeout)
        except sqlite3.Error as exc:
            log.warning("rolloutdb: cannot open %s to checkpoint its WAL (%s); the next commit tries again",
                        self.database, exc)
            self._forget(threading.current_thread())
            return
        try:
            with _in_sqlite:
                page_size = connection.execute("PRAGMA page_size").fetchone()[0]
                connection.execute(f"PRAGMA busy_timeout = {CATCH_UP_WAIT_MS}")  # PASSIVE checkpoints never wait
            while True:
                if not wake.wait(IDLE_SECONDS):
                    with self._lock:
                        if not wake.is_set():  # else a commit came in just now: go on
                            self._thread = None
                            return
                if stop.is_set():
                    return
                wake.clear()
                busy, size, stuck = False, 0, False
                try:
                    with _in_sqlite:
                        busy, frames = checkpoint(connection)
                    size = frames * page_size
                    if size > WAL_LIMIT_BYTES // 2:
                        # Nothing new comes in from this process: copy what remains. (The write lock first: a
                        # thread that forks while holding it takes _in_sqlite after it too.)
                        with self._write_lock.ahead_of_writers(), _in_sqlite:
                            stuck = self._catch_up(connection)
                except sqlite3.Error as exc:  # e.g. another process holds the database locked
                    log.warning("rolloutdb: checkpoint of %s failed (%s); trying again", self.database, exc)
                    wake.set()
                # Later commits wait for the next round together; but a WAL past a quarter of the limit (or
                # one another process was checkpointing) is looked at again at the next commit, so that it is
                # caught up before the limit however fast the writers write. Not when a catch-up could not
                # finish (a long reader elsewhere holds the WAL): this process's writers must not wait on
                # one catch-up after another meanwhile.
                if stop.wait(0 if not stuck and (busy or size > WAL_LIMIT_BYTES // 4) else INTERVAL_SECONDS):
                    return
        finally:
            with _in_sqlite:
                connection.close()
            self._forget(threading.current_thread())

    def _catch_up(self, connection: sqlite3.Connection) -> bool:
        """A RESTART checkpoint, with this process's writers held off by the caller. Another process's
        checkpoint may be running (catching up too): wait for it, so that our writers do not add to the
        WAL meanwhile. Returns whether it is still not all copied (or not free to start over) after about
        CATCH_UP_WAIT_MS."""
        deadline = time.monotonic() + CATCH_UP_WAIT_MS / 1000
        while (busy := checkpoint(connection, "RESTART")[0]) and time.monotonic() < deadline:
            time.sleep(0.005)
        return busy

    def _forget(self, thread: threading.Thread) -> None:
        """The thread ends: the next commit starts another (unless close() is stopping this one)."""
        with self._lock:
            if self._thread is thread:
                self._thread = None


def checkpoint(connection: sqlite3.Connection, mode: str = "PASSIVE") -> tuple[bool, int]:
    """One checkpoint on ``connection``. Returns whether it was kept from finishing (by another
    connection's checkpoint, or in RESTART mode by writers or readers that outlasted the wait), and how
    many frames the WAL holds."""
    busy, frames, _ = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return bool(busy), frames
