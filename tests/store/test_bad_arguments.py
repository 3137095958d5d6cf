"""Arguments of the wrong type or out of range: a clear InvalidInputError naming the argument, on every
backend, never a driver's or Python's own error."""

from datetime import timedelta

import pytest

from rolloutdb.errors import InvalidInputError, NotFoundError
from conftest import skip_on_http


@pytest.mark.parametrize(("arguments", "named"), [
    ({"limit": "10"}, "limit"), ({"limit": 2.5}, "limit"), ({"limit": True}, "limit"),
    ({"offset": 2 ** 63}, "offset"), ({"offset": -1}, "offset"), ({"offset": "3"}, "offset"),
])
def test_query_pagination_of_the_wrong_kind_is_refused_by_name(store, arguments, named):
    for area in (store.runs, store.rollouts, store.attempts, store.workers):
        with pytest.raises(InvalidInputError, match=named):
            area.query(**arguments)


def test_an_offset_beyond_the_rows_finds_nothing(store):
    store.runs.create(name="only")
    assert store.runs.query(offset=2 ** 62) == []


@pytest.mark.parametrize(("arguments", "named"), [
    ({"older_than": 5}, "older_than"), ({"keep_last": "5"}, "keep_last"), ({"keep_last": 2 ** 70}, "keep_last"),
    ({"older_than": timedelta(days=10 ** 6)}, "older_than"),
])
def test_purge_arguments_of_the_wrong_kind_are_refused_by_name(store, arguments, named):
    store.rollouts.create(status="succeeded")
    with pytest.raises(InvalidInputError, match=named):
        store.purge(**arguments)
    assert store.rollouts.count() == 1


def test_an_id_that_is_not_a_string_is_refused(store):
    for area in (store.runs, store.rollouts, store.attempts):
        with pytest.raises(InvalidInputError, match="named by a string"):
            area.get(["a"])


def test_a_filter_on_more_ids_than_a_statement_takes_parameters_still_works(store):
    skip_on_http(store, "a filter of 70,000 ids does not fit in a URL")
    kept = store.rollouts.enqueue_many([{"input": {"n": i}} for i in range(3)])
    ids = [f"missing-{i}" for i in range(70_000)] + [r.id for r in kept]
    assert store.rollouts.count(id=ids) == 3
    assert {r.id for r in store.rollouts.query(id=ids)} == {r.id for r in kept}
    with pytest.raises(NotFoundError, match="missing-0, missing-1, missing-10, missing-100, missing-1000 and 69,995 more"):
        store.rollouts.wait(ids, timeout=0)


@pytest.mark.parametrize("limit", ["x", True, -1, 1001, 2 ** 70])
def test_a_claim_of_the_wrong_size_is_refused_by_name(store, limit):
    store.rollouts.enqueue("waiting")
    with pytest.raises(InvalidInputError, match="limit"):
        store.rollouts.dequeue_many(limit)
    assert store.rollouts.count(status="queuing") == 1


# Found by the property test (test_properties.py): each reached a driver or Python's own error before.

@pytest.mark.parametrize(("filters", "named"), [
    ({"step": "2"}, "step"), ({"created_at": "2026-01-01"}, "created_at"),
    ({"created_at__lte": "2026-01-01T00:00:00Z"}, "created_at__lte"), ({"step__in": (1, b"2")}, "step__in"),
    ({"reward__gt": True}, "reward__gt"),
    ({"id": 5}, "id"), ({"id": "a\x00b"}, "id"), ({"id": "\ud800"}, "id"), ({"step__in": [1, "x"]}, "step__in"),
    ({"step__contains": "1"}, "step__contains"), ({"step__isnull": "yes"}, "step__isnull"),
    ({"run_id__gt": None}, "run_id__gt"), ({"step": 2 ** 70}, "step"), ({"id__contains": "x" * 60_000}, "id__contains"),
])
def test_a_filter_value_the_field_cannot_hold_is_refused_by_name(store, filters, named):
    store.rollouts.create(step=2)
    with pytest.raises(InvalidInputError, match=named):
        store.rollouts.count(**filters)
    with pytest.raises(InvalidInputError, match=named):
        store.rollouts.query(**filters)


def test_filters_of_the_right_type_still_find_rows(store):
    rollout = store.rollouts.create(step=2, reward=0.5)
    assert store.rollouts.count(step=2, reward__gt=0, status="queuing", id__contains=rollout.id[:8],
                                run_id__isnull=True, created_at__lte=rollout.created_at) == 1


@pytest.mark.parametrize("call", [
    lambda store, ids: store.spans.add(rollout_id=object(), attempt_id=ids[1], trace_id="t", span_id="s", name="n"),
    lambda store, ids: store.spans.add_many([{"rollout_id": ids[0], "attempt_id": {"a"}}]),
    lambda store, ids: store.spans.add_many(5),
    lambda store, ids: store.spans.count(ids[0], ["latest"]),
    lambda store, ids: store.attempts.heartbeat(object(), object()),
    lambda store, ids: store.rollouts.dequeue(worker_id=(1,)),
    lambda store, ids: store.rollouts.wait([ids[0], None], timeout=0),
    lambda store, ids: store.rollouts.wait(ids[0], timeout=0),
    lambda store, ids: store.rollouts.wait([ids[0]], timeout="1"),
    lambda store, ids: store.rollouts.wait([ids[0]], timeout=float("nan")),
    lambda store, ids: store.rollouts.enqueue_many([1]),
    lambda store, ids: store.workers.heartbeat("\ud800"),
    lambda store, ids: store.runs.get("\ud800"),
    lambda store, ids: store.runs.create(name="\ud800"),
    lambda store, ids: store.rollouts.create(status=[]),
    lambda store, ids: store.rollouts.query(sort=["step"]),
    lambda store, ids: store.history([], ids[0]),
    lambda store, ids: store.history("rollout", object()),
    lambda store, ids: store.jobs.logs("run", limit="10"),
    lambda store, ids: store.jobs.logs("run", since=object()),
    lambda store, ids: store.jobs.get("run", stale_after=float("inf")),
    lambda store, ids: store.tasks.load(tags=1),
    lambda store, ids: store.tasks.save([3]),
    lambda store, ids: store.validators.save("v", "k", config=object()),
    lambda store, ids: store.resources.add(["x"]),
], ids=lambda call: "")
def test_arguments_of_the_wrong_kind_are_refused_and_change_nothing(store, call):
    store.runs.create(name="run")
    claim = store.rollouts.start({"q": 1})
    before = [area.query(limit=None) for area in (store.runs, store.rollouts, store.attempts, store.workers,
                                                   store.tasks, store.validators, store.resources)]
    with pytest.raises(InvalidInputError):
        call(store, [claim.rollout.id, claim.attempt.id])
    assert [area.query(limit=None) for area in (store.runs, store.rollouts, store.attempts, store.workers,
                                                 store.tasks, store.validators, store.resources)] == before


@pytest.mark.parametrize("call", [
    lambda store, ids: store.jobs.start("job", stages="ab"),
    lambda store, ids: store.jobs.start("job", stages=[("a",)]),
    lambda store, ids: store.jobs.start("job", stages={"a": float("nan")}),
    lambda store, ids: store.jobs.start("job", config="x"),
], ids=lambda call: "")
def test_job_arguments_of_the_wrong_kind_are_refused_and_change_nothing(store, call):
    skip_on_http(store, "jobs.start has no route yet")
    test_arguments_of_the_wrong_kind_are_refused_and_change_nothing(store, call)


def test_a_start_of_an_id_longer_than_any_id_finds_nothing(store):
    skip_on_http(store, "an id longer than a URL can carry")
    store.groups.create()
    with pytest.raises(NotFoundError):
        store.groups.find("0" * 100_000)  # SQLite's LIKE refused so long a pattern


def test_an_update_of_no_fields_leaves_the_row_as_it_is(store):
    """``update(id)`` with nothing to change (found by the property test: PostgreSQL was sent ``UPDATE turns
    SET WHERE …`` for a table without an updated_at) returns the row unchanged."""
    turn = store.turns.create(rollout_id=store.rollouts.create().id, turn_index=0)
    assert store.turns.update(turn.id) == turn == store.turns.get(turn.id)
    run = store.runs.create(name="nothing-to-change")
    assert store.runs.update(run.id).name == "nothing-to-change"
