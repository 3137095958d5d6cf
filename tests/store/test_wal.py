"""SQLite WAL checkpoints: done by the store's own thread, beside the writers, with the WAL kept bounded."""

import logging
import os
import threading
import time

import pytest

import rolloutdb
from rolloutdb.store import _wal


def wait_until(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def checkpoint_threads(path) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == f"rolloutdb wal {path}"]


def enqueue_megabytes(store: rolloutdb.Store, megabytes: int) -> None:
    payload = "x" * 2000
    for _ in range(megabytes * 4):
        store.rollouts.enqueue_many([{"input": {"prompt": payload}} for _ in range(125)])


def test_writers_leave_checkpoints_to_the_store_thread(tmp_path):
    path = tmp_path / "store.db"
    with rolloutdb.connect(f"sqlite:///{path}") as store:
        with store.reading() as connection:
            assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
        size_before = path.stat().st_size
        enqueue_megabytes(store, 4)
        # The rows reach the database file while the store stays open: the thread copied them.
        assert wait_until(lambda: path.stat().st_size > size_before + 3_000_000)
        assert len(checkpoint_threads(path)) == 1
        assert store.rollouts.count() == 2000


def test_the_wal_stays_bounded_under_constant_writing(tmp_path, monkeypatch):
    # Small limits, so that a test's worth of writing goes past them many times.
    monkeypatch.setattr(_wal, "WAL_LIMIT_BYTES", 512 * 1024)
    monkeypatch.setattr(_wal, "INTERVAL_SECONDS", 0.01)
    path = tmp_path / "store.db"
    wal = tmp_path / "store.db-wal"
    with rolloutdb.connect(f"sqlite:///{path}") as store:
        writers = [threading.Thread(target=enqueue_megabytes, args=(store, 12)) for _ in range(2)]
        for writer in writers:
            writer.start()
        largest = 0
        while any(writer.is_alive() for writer in writers):
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
            time.sleep(0.005)
        for writer in writers:
            writer.join()
        assert store.rollouts.count() == 12000
    # Over 24 MB went through the WAL; it was written from its start again and again instead of growing.
    assert largest < 8 * 1024 * 1024


def in_time(action, seconds: float = 5.0) -> None:
    """Run ``action`` in a thread; still running after ``seconds`` (a deadlock) fails the test."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "deadlocked"


def catch_up_thread(lock: _wal.WriteLock, order: list[str]) -> threading.Thread:
    """A thread that takes ``lock`` as the WAL thread's catch-up does, and says so in ``order``."""
    def catch_up():
        with lock.ahead_of_writers():
            order.append("catch-up")

    return threading.Thread(target=catch_up)


def test_a_catch_up_waiting_for_the_write_lock_goes_before_the_next_write():
    """Writers committing back to back must not keep the WAL thread's catch-up waiting (Python's locks are not
    fair: the writer that lets go takes the lock again before the waiting thread wakes), or the WAL grows past its
    limit meanwhile."""
    lock = _wal.WriteLock()
    order = []

    def writes_back_to_back():
        waiting = catch_up_thread(lock, order)
        with lock:
            waiting.start()
            time.sleep(0.1)  # the catch-up is waiting for the lock now
        with lock:  # this writer's next write, at once
            order.append("next write")
        waiting.join()

    in_time(writes_back_to_back)
    assert order == ["catch-up", "next write"]


def test_a_write_inside_a_write_does_not_wait_for_a_catch_up():
    lock = _wal.WriteLock()
    order = []

    def nested_writes():
        waiting = catch_up_thread(lock, order)
        with lock:
            waiting.start()
            time.sleep(0.1)
            with lock:  # the same thread, deeper: it holds the lock the catch-up waits for
                order.append("inner write")
        waiting.join()

    in_time(nested_writes)
    assert order == ["inner write", "catch-up"]


def test_closing_the_store_stops_its_thread_and_checkpoints_the_rest(tmp_path):
    path = tmp_path / "store.db"
    store = rolloutdb.connect(f"sqlite:///{path}")
    enqueue_megabytes(store, 1)
    assert checkpoint_threads(path)
    store.close()
    assert checkpoint_threads(path) == []
    assert not (tmp_path / "store.db-wal").exists()  # the last connection to close checkpointed it all
    with rolloutdb.connect(f"sqlite:///{path}") as reopened:
        assert reopened.rollouts.count() == 500


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forking is POSIX only")
def test_a_forked_child_checkpoints_with_a_thread_of_its_own(tmp_path):
    path = tmp_path / "store.db"
    with rolloutdb.connect(f"sqlite:///{path}") as store:
        store.rollouts.enqueue({"task": "before the fork"})
        size_before = path.stat().st_size
        child = os.fork()
        if child == 0:  # the child inherits the store but not the parent's thread
            try:
                enqueue_megabytes(store, 4)
                copied = wait_until(lambda: path.stat().st_size > size_before + 3_000_000)
                os._exit(0 if copied and len(checkpoint_threads(path)) == 1 else 1)
            finally:
                os._exit(2)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert store.rollouts.count() == 2001


def test_an_idle_thread_ends_and_the_next_commit_starts_another(tmp_path, monkeypatch):
    monkeypatch.setattr(_wal, "IDLE_SECONDS", 0.1)
    path = tmp_path / "store.db"
    with rolloutdb.connect(f"sqlite:///{path}") as store:  # a store left open keeps no thread busy
        store.rollouts.enqueue({"task": 1})
        assert wait_until(lambda: checkpoint_threads(path) == [])
        size_before = path.stat().st_size
        enqueue_megabytes(store, 4)
        assert wait_until(lambda: path.stat().st_size > size_before + 3_000_000)


def test_a_database_file_removed_meanwhile_is_not_made_again(tmp_path, caplog):
    removed = tmp_path / "removed.db"
    wal_keeper = _wal.WalKeeper(str(removed), threading.Lock(), busy_timeout=1.0)
    with caplog.at_level(logging.WARNING, logger="rolloutdb.wal"):
        wal_keeper.written()
        assert wait_until(lambda: checkpoint_threads(removed) == [])
    assert not removed.exists()
    assert "cannot open" in caplog.text and "the next commit tries again" in caplog.text
