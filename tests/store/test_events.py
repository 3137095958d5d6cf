"""The change feed (``store.events``): what live views follow, the same on every backend — on a database, and
through a server (where ``follow`` is its Server-Sent Events stream)."""

import multiprocessing
import threading
import time

import pytest

import rolloutdb
from rolloutdb.errors import InvalidInputError, NotFoundError


def checkpoint_job(url: str, project: str, name: str, checkpoints: int) -> None:
    """A job's code in its own process: a stage, then checkpoints with messages."""
    with rolloutdb.connect(url, project=project) as store:
        with store.jobs.start(name, stages=[("work", 100)], write_interval=0.0) as job:
            job.stage("work")
            for i in range(checkpoints):
                job.progress((i + 1) / checkpoints)
                job.checkpoint(state={"done": i + 1}, message=f"item {i}")


def in_another_process(*args) -> multiprocessing.Process:
    process = multiprocessing.get_context("spawn").Process(target=checkpoint_job, args=args)
    process.start()
    return process


def test_a_job_in_another_process_is_followed_as_it_writes(store):
    follower = store.events.follow(topics=["job", "log", "run"], timeout=120)
    process = in_another_process(store.url, store.project, "indexer", 3)
    seen = []
    for event in follower:
        seen.append(event)
        if event.topic == "run" and event.data["new_status"] == "completed":
            break
    process.join(60)
    assert process.exitcode == 0
    run = store.runs.get("indexer")
    assert {event.run_id for event in seen} == {run.id}
    assert [e.data["message"] for e in seen if e.topic == "log"] == [
        "started", "stage work", "item 0", "item 1", "item 2", "completed"]
    progress = [e.data["progress"] for e in seen if e.topic == "job"]
    assert progress == sorted(progress) and progress[-1] == 100.0
    assert [(e.data["old_status"], e.data["new_status"]) for e in seen if e.topic == "run"] == [
        (None, "running"), ("running", "completed")]
    ids = [event.id for event in seen]
    assert ids == sorted(set(ids))  # in order, each once


def test_status_changes_of_every_kind_are_events_with_their_run(store):
    after = store.events.latest_id()
    run = store.runs.create(name="train")
    step = store.steps.create(run_id=run.id, number=0)
    store.steps.update(step.id, status="completed", reason="done")
    rollout = store.rollouts.enqueue("task", run_id=run.id)
    claim = store.rollouts.dequeue(worker_id="w")
    store.attempts.update(claim.rollout.id, claim.attempt.id, status="succeeded")
    events = store.events.query(after, limit=100)
    assert [(e.topic, e.entity_id, e.data["new_status"]) for e in events] == [
        ("run", run.id, "pending"), ("step", step.id, "pending"), ("step", step.id, "completed"),
        ("rollout", rollout.id, "queuing"), ("rollout", rollout.id, "preparing"),
        ("attempt", claim.attempt.id, "preparing"), ("attempt", claim.attempt.id, "succeeded"),
        ("rollout", rollout.id, "succeeded")]
    assert {e.run_id for e in events if e.topic != "attempt"} == {run.id}
    assert events[2].data == {"old_status": "pending", "new_status": "completed", "reason": "done"}


def test_filters_by_topic_and_run(store):
    after = store.events.latest_id()
    for name in ("a", "b"):
        with store.jobs.start(name) as job:
            job.log(f"hello from {name}")
    a = store.runs.get("a")
    logs_of_a = store.events.query(after, topics=["log"], run="a")
    assert [e.data["message"] for e in logs_of_a] == ["started", "hello from a", "completed"]
    assert {(e.topic, e.run_id) for e in logs_of_a} == {("log", a.id)}
    followed = list(store.events.follow(after, topics=["log"], run=a.id, timeout=0.5))
    assert followed == logs_of_a
    assert {e.topic for e in store.events.query(after, topics=["run", "job"])} == {"run", "job"}


def test_following_after_an_id_resumes_there_missing_nothing_and_doubling_nothing(store):
    after = store.events.latest_id()
    stop = threading.Event()

    def write():
        with rolloutdb.connect(store.url, project=store.project) as other, other.jobs.start(
                "busy", write_interval=0.0) as job:
            while not stop.is_set():
                job.log("tick")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        first = []
        for event in store.events.follow(after, timeout=60):
            first.append(event)
            if len(first) == 20:
                break  # the subscriber goes away mid-stream...
        second = []
        for event in store.events.follow(first[-1].id, timeout=60):  # ...and comes back after its last id
            second.append(event)
            if len(second) == 20:
                break
    finally:
        stop.set()
        writer.join()
    ids = [e.id for e in first + second]
    assert ids == sorted(set(ids))
    assert ids == [e.id for e in store.events.query(after, limit=40)]  # what the database holds, in its order


def test_bad_filters_are_refused_the_same_everywhere(store):
    with pytest.raises(InvalidInputError, match="unknown event topic.*'nope'"):
        store.events.follow(topics=["nope"])
    with pytest.raises(InvalidInputError, match="unknown event topic"):
        store.events.query(topics=["job", "nope"])
    with pytest.raises(NotFoundError, match="no-such-run"):
        store.events.follow(run="no-such-run")
    with pytest.raises(InvalidInputError):
        store.events.query(limit=0)


def test_follow_ends_after_its_timeout_when_nothing_happens(store):
    started = time.monotonic()
    assert list(store.events.follow(timeout=0.3)) == []
    assert time.monotonic() - started < 30


# -- purge trims the feed --------------------------------------------------------------------------------


def finished(store, count):
    """``count`` rollouts started and finished: status events for each."""
    rollouts = []
    for _ in range(count):
        claim = store.rollouts.start("x")
        store.attempts.update(claim.rollout.id, status="succeeded")
        rollouts.append(claim.rollout)
    return rollouts


def test_purge_trims_the_feed_of_what_it_is_older_than_and_resuming_before_that_is_refused(store):
    from rolloutdb.errors import FeedTrimmedError

    before = store.events.latest_id()
    old = finished(store, 3)
    old_ids = {event.id for event in store.events.query(before, limit=1000)}
    middle = store.events.latest_id()
    kept = finished(store, 2)
    would = store.purge(keep_last=2, dry_run=True)
    result = store.purge(keep_last=2)
    assert result.rollouts == 3
    assert result.events == would.events >= len(old_ids)
    remaining = store.events.query(0, limit=1000)
    assert not {event.entity_id for event in remaining} & {r.id for r in old}  # their events are gone
    assert {r.id for r in kept} <= {event.entity_id for event in remaining}  # the kept ones' stay
    assert [event.id for event in store.events.query(middle, limit=1000)] == [event.id for event in remaining]
    # Resuming after an id the purge went past: a clear error (HTTP 410 through a server), not a silent gap.
    with pytest.raises(FeedTrimmedError, match="purge"):
        store.events.query(min(old_ids), limit=10)
    with pytest.raises(FeedTrimmedError, match="purge"):
        store.events.follow(after=min(old_ids), timeout=0.1)
    # From now on, or from the oldest kept (after 0), or after a kept id: as before.
    assert list(store.events.follow(after=middle, timeout=0.1)) == remaining
    assert list(store.events.follow(timeout=0.1)) == []


def test_a_follower_behind_a_purge_is_told_rather_than_skipping_what_it_trimmed(store):
    """A follower that has not read the events a purge trims gets FeedTrimmedError when it reads on, at the
    latest once a newer event comes, instead of silently going on after the hole."""
    from rolloutdb.errors import FeedTrimmedError

    finished(store, 1)
    before = store.events.latest_id()  # not 0: that would mean "from the oldest event kept"
    follower = store.events.follow(after=before, timeout=5)
    finished(store, 3)
    finished(store, 1)
    assert store.purge(keep_last=1).events > 0
    finished(store, 1)
    with pytest.raises(FeedTrimmedError, match="purge"):
        next(follower)


def test_purge_dry_run_counts_the_events_it_would_trim_and_keeps_them(store):
    before = store.events.latest_id()
    finished(store, 3)
    finished(store, 1)
    events = store.events.query(before, limit=1000)
    result = store.purge(keep_last=1, dry_run=True)
    assert 0 < result.events < len(events)
    assert store.events.query(before, limit=1000) == events


def test_purge_older_than_trims_events_older_than_its_cutoff(session_database_url):
    import uuid
    from datetime import datetime, timedelta, timezone

    from rolloutdb.errors import FeedTrimmedError

    clock = type("Clock", (), {"now": datetime(2026, 1, 1, tzinfo=timezone.utc)})()
    with rolloutdb.connect(session_database_url, project=f"p-{uuid.uuid4().hex[:8]}",
                           clock=lambda: clock.now) as store:
        finished(store, 2)
        old = store.events.latest_id()
        clock.now += timedelta(days=10)
        with store.jobs.start("recent", stages=[("work", 100)], write_interval=0.0) as job:
            job.checkpoint(message="hello")
        recent = store.events.query(old, limit=1000)
        older = len(store.events.query(0, limit=1000)) - len(recent)
        result = store.purge(older_than=timedelta(days=5))
        assert (result.rollouts, result.events) == (2, older)
        assert store.events.query(0, limit=1000) == recent
        with pytest.raises(FeedTrimmedError):
            store.events.query(1, limit=1)
