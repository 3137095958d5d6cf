"""The watchdog, driven by an injected clock: timeouts, unresponsive attempts, revival by a span."""

import uuid
from datetime import datetime, timedelta, timezone

import pytest

import rolloutdb


class Clock:
    def __init__(self):
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def timed_store(session_database_url, clock):
    # health_check_interval=0 would check on every call; tests call check_health() themselves.
    with rolloutdb.connect(session_database_url, project=f"health-{uuid.uuid4().hex[:8]}", clock=clock,
                           health_check_interval=3600) as store:
        yield store


def test_attempt_running_past_the_timeout_is_marked_and_the_rollout_requeued(timed_store, clock):
    rollout = timed_store.rollouts.enqueue("x", config={"timeout_seconds": 60, "max_attempts": 2,
                                                         "retry_condition": ["timeout"]})
    claim = timed_store.rollouts.dequeue(worker_id="w")
    timed_store.attempts.heartbeat(rollout.id)
    clock.advance(59)
    assert timed_store.check_health() == 0
    clock.advance(2)
    assert timed_store.check_health() == 1
    assert timed_store.attempts.get(claim.attempt.id).status == "timeout"
    assert timed_store.rollouts.get(rollout.id).status == "requeuing"
    assert timed_store.workers.get("w").status == "unknown"
    assert timed_store.check_health() == 0  # already handled


def test_silent_attempt_is_unresponsive_and_a_span_revives_it(timed_store, clock):
    rollout = timed_store.rollouts.enqueue("x", config={"unresponsive_seconds": 30})
    claim = timed_store.rollouts.dequeue()
    clock.advance(20)
    timed_store.attempts.heartbeat(rollout.id)  # alive: the silence counts from here
    clock.advance(25)
    assert timed_store.check_health() == 0
    clock.advance(10)
    assert timed_store.check_health() == 1
    assert timed_store.attempts.latest(rollout.id).status == "unresponsive"
    assert timed_store.rollouts.get(rollout.id).status == "failed"  # no retry condition
    timed_store.spans.add(rollout_id=rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s", name="late")
    assert timed_store.attempts.latest(rollout.id).status == "running"
    assert timed_store.rollouts.get(rollout.id).status == "failed"  # a finished rollout stays finished


def test_revived_attempt_of_a_requeuing_rollout_takes_it_back(timed_store, clock):
    rollout = timed_store.rollouts.enqueue("x", config={"unresponsive_seconds": 5, "max_attempts": 2,
                                                         "retry_condition": ["unresponsive"]})
    claim = timed_store.rollouts.dequeue()
    clock.advance(6)
    timed_store.check_health()
    assert timed_store.rollouts.get(rollout.id).status == "requeuing"
    timed_store.spans.add(rollout_id=rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s", name="x")
    assert timed_store.rollouts.get(rollout.id).status == "running"
    assert timed_store.rollouts.dequeue() is None  # no longer waiting in the queue


def test_rollouts_without_limits_are_never_marked(timed_store, clock):
    timed_store.rollouts.enqueue("x")
    timed_store.rollouts.dequeue()
    clock.advance(10 ** 6)
    assert timed_store.check_health() == 0


def test_store_calls_run_the_health_check_lazily(session_database_url, clock):
    with rolloutdb.connect(session_database_url, project=f"lazy-{uuid.uuid4().hex[:8]}", clock=clock,
                           health_check_interval=0) as store:
        rollout = store.rollouts.enqueue("x", config={"timeout_seconds": 1, "max_attempts": 2,
                                                      "retry_condition": ["timeout"]})
        store.rollouts.dequeue()
        clock.advance(2)
        claim = store.rollouts.dequeue()  # the check inside dequeue requeues the rollout first
        assert claim is not None and claim.rollout.id == rollout.id and claim.attempt.sequence == 2


def test_new_spans_stamp_the_heartbeat_and_resent_ones_do_not(timed_store, clock):
    timed_store.rollouts.enqueue("x")
    claim = timed_store.rollouts.dequeue()
    fields = {"rollout_id": claim.rollout.id, "attempt_id": "latest", "trace_id": "t", "span_id": "s", "name": "n"}
    timed_store.spans.add(**fields, sequence_id=1)  # the first span starts the attempt
    clock.advance(10)
    timed_store.spans.add(**fields, sequence_id=2)
    assert timed_store.attempts.get(claim.attempt.id).last_heartbeat_at == clock.now
    clock.advance(10)
    assert timed_store.spans.add_many([{**fields, "sequence_id": 1}, {**fields, "sequence_id": 2}]) == []
    attempt = timed_store.attempts.get(claim.attempt.id)
    assert (attempt.status, attempt.last_heartbeat_at) == ("running", clock.now - timedelta(seconds=10))
