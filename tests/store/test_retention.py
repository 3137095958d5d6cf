"""Purge: finished rollouts and everything under them go; unfinished ones stay."""

from datetime import timedelta

import pytest

from rolloutdb.errors import InvalidInputError


def finished_rollout(store, spans=2):
    claim = store.rollouts.start("x")
    store.spans.add_many([{"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "trace_id": "t",
                           "span_id": f"s{i}", "name": "n"} for i in range(spans)])
    store.attempts.update(claim.rollout.id, status="succeeded")
    return claim.rollout


def test_keep_last_keeps_the_newest_finished_and_every_unfinished_rollout(store):
    old, middle, new = (finished_rollout(store) for _ in range(3))
    running = store.rollouts.start("still running").rollout
    queued = store.rollouts.enqueue("queued")
    assert store.purge(keep_last=1, dry_run=True).rollouts == 2
    assert store.rollouts.count() == 5  # a dry run deletes nothing
    result = store.purge(keep_last=1)
    assert (result.rollouts, result.attempts, result.spans) == (2, 2, 4)
    assert {r.id for r in store.rollouts.query()} == {new.id, running.id, queued.id}
    assert store.history("rollout", old.id) == [] and store.history("rollout", middle.id) == []
    assert len(store.spans.query(new.id)) == 2


def test_older_than_uses_the_end_time(store):
    finished_rollout(store)
    assert store.purge(older_than=timedelta(hours=1)).rollouts == 0
    assert store.purge(older_than=timedelta(0)).rollouts == 1
    assert store.rollouts.count() == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({}, "needs older_than, keep_last or both"), ({"keep_last": -1}, "keep_last"),
     ({"older_than": timedelta(seconds=-1)}, "older_than")],
)
def test_purge_without_a_limit_is_refused(store, arguments, message):
    finished_rollout(store)
    with pytest.raises(InvalidInputError, match=message):
        store.purge(**arguments)
    assert store.rollouts.count() == 1


def test_both_limits_delete_only_rollouts_that_are_old_and_not_among_the_newest(session_database_url):
    import uuid
    from datetime import datetime, timezone

    import rolloutdb

    clock = type("Clock", (), {"now": datetime(2026, 1, 1, tzinfo=timezone.utc)})()
    with rolloutdb.connect(session_database_url, project=f"p-{uuid.uuid4().hex[:8]}",
                           clock=lambda: clock.now) as store:
        for _ in range(10):  # one finished rollout a day
            finished_rollout(store, spans=0)
            clock.now += timedelta(days=1)
        # 10 finished, one a day; 5 ended more than 5 days ago; the 3 newest are kept anyway.
        assert store.purge(older_than=timedelta(days=5), keep_last=3).rollouts == 5
        assert store.rollouts.count() == 5

