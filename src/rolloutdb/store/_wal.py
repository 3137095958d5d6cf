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
copied. When the WAL holds more than ``WAL_LIMIT_BYTES``, the thread therefore checkpoints once more
holding the store's write lock: this process's writers pause for the few pages written meanwhile,
and the WAL's size stays bounded.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

log = logging.getLogger("rolloutdb.wal")

INTERVAL_SECONDS = 0.2
WAL_LIMIT_BYTES = 64 * 1024 * 1024
IDLE_SECONDS = 10.0  # a thread with nothing to do ends; the next commit starts another


class WalKeeper:
    """Checkpoints one SQLite database's WAL in a daemon thread, which commits start when it is needed."""

    def __init__(self, database: str, write_lock: AbstractContextManager[Any], busy_timeout: float) -> None:
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
            connection = sqlite3.connect(f"{Path(self.database).as_uri()}?mode=rw", uri=True,
                                         isolation_level=None, timeout=self._busy_timeout)
        except sqlite3.Error as exc:
            log.warning("rolloutdb: cannot open %s to checkpoint its WAL (%s); the next commit tries again",
                        self.database, exc)
            self._forget(threading.current_thread())
            return
        try:
            page_size = connection.execute("PRAGMA page_size").fetchone()[0]
            while True:
                if not wake.wait(IDLE_SECONDS):
                    with self._lock:
                        if not wake.is_set():  # else a commit came in just now: go on
                            self._thread = None
                            return
                if stop.is_set():
                    return
                wake.clear()
                try:
                    if checkpoint(connection) * page_size > WAL_LIMIT_BYTES:
                        with self._write_lock:  # nothing new can come in: this one copies what remains
                            checkpoint(connection)
                except sqlite3.Error as exc:  # e.g. another process holds the database locked
                    log.warning("rolloutdb: checkpoint of %s failed (%s); trying again", self.database, exc)
                    wake.set()
                if stop.wait(INTERVAL_SECONDS):  # later commits wait for the next round together
                    return
        finally:
            connection.close()
            self._forget(threading.current_thread())

    def _forget(self, thread: threading.Thread) -> None:
        """The thread ends: the next commit starts another (unless close() is stopping this one)."""
        with self._lock:
            if self._thread is thread:
                self._thread = None


def checkpoint(connection: sqlite3.Connection) -> int:
    """One PASSIVE checkpoint on ``connection``; returns how many frames the WAL holds."""
    _, frames, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return frames
