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
