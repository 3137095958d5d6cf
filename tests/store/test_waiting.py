"""Waiting for rollouts (rollouts.wait): returns as soon as they finish, in this process or another one."""

import multiprocessing
import threading
import time

import pytest

import rolloutdb
from conftest import skip_on_http
from rolloutdb.errors import NotFoundError, StoreUnavailableError


def finish_later(url: str, project: str, rollout_id: str, delay: float) -> None:
    time.sleep(delay)
    with rolloutdb.connect(url, project=project) as store:
        store.attempts.update(rollout_id, status="succeeded")


def test_wait_returns_when_another_process_finishes_the_rollout(store):
    waiting_on = store.rollouts.start("x").rollout
    never = store.rollouts.enqueue("y")
    context = multiprocessing.get_context("spawn")
    finisher = context.Process(target=finish_later, args=(store.url, store.project, waiting_on.id, 1.0))
    finisher.start()
    try:
        finished = store.rollouts.wait([waiting_on.id], timeout=60)
    finally:
        finisher.join(timeout=60)
    assert [r.id for r in finished] == [waiting_on.id] and finished[0].status == "succeeded"
    assert store.rollouts.wait([never.id], timeout=0) == []


def test_wait_wakes_on_a_finish_in_this_process_without_polling(store):
    rollout = store.rollouts.start("x").rollout
    # A poll interval far beyond the test's patience: only the notification can wake the waiter.
    with rolloutdb.connect(store.url, project=store.project, poll_interval=3600) as waiter:
        timer = threading.Timer(0.3, lambda: waiter.attempts.update(rollout.id, status="failed"))
        timer.start()
        started = time.monotonic()
        finished = waiter.rollouts.wait([rollout.id], timeout=120)
        elapsed = time.monotonic() - started
    assert [r.status for r in finished] == ["failed"]
    assert elapsed < 60  # it was woken, not timed out


def test_wait_returns_the_finished_subset_at_the_timeout(store):
    done = store.rollouts.start("done").rollout
    store.attempts.update(done.id, status="succeeded")
    pending = store.rollouts.enqueue("pending")
    assert [r.id for r in store.rollouts.wait([done.id, pending.id], timeout=0.2)] == [done.id]


def test_wait_for_an_unknown_rollout_is_an_error(store):
    with pytest.raises(NotFoundError, match="unknown rollout"):
        store.rollouts.wait(["nope"], timeout=0)


def test_closing_the_store_ends_a_wait_at_once_as_unavailable(store):
    """A server shutting down closes its store: a wait in one of its threads (a long one, or with no timeout)
    must end then, or the process cannot exit until the rollouts finish."""
    skip_on_http(store, "closing a remote store closes its own connections, not a wait on the server")
    rollout = store.rollouts.enqueue("never finished")
    with rolloutdb.connect(store.url, project=store.project) as waiter:
        outcome: list[BaseException | list] = []

        def wait() -> None:
            try:
                outcome.append(waiter.rollouts.wait([rollout.id], timeout=None))
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                outcome.append(exc)

        thread = threading.Thread(target=wait, daemon=True)
        thread.start()
        time.sleep(0.5)  # waiting by now
        waiter.close()
        thread.join(timeout=20)
    assert not thread.is_alive(), "the wait went on after its store was closed"
    assert isinstance(outcome[0], StoreUnavailableError) and "closed" in str(outcome[0])
