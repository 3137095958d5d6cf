"""Queries: whitelisted filters with operators, sorting, pagination; bad input is a clear error."""

import pytest

from rolloutdb.errors import InvalidInputError


@pytest.fixture
def five_runs(store):
    kinds = ["train", "eval", "train", "baseline", "train"]
    runs = [store.runs.create(name=f"run-{i}", kind=kind, progress=float(i * 10)) for i, kind in enumerate(kinds)]
    store.runs.update("run-1", status="running")
    store.runs.update("run-3", status="running")
    return runs


def names(records):
    return [record.name for record in records]


def test_equality_and_list_filters(store, five_runs):
    assert names(store.runs.query(kind="train")) == ["run-0", "run-2", "run-4"]
    assert names(store.runs.query(kind=["eval", "baseline"])) == ["run-1", "run-3"]
    assert names(store.runs.query(status="running", kind="eval")) == ["run-1"]


def test_operator_filters(store, five_runs):
    assert names(store.runs.query(name__contains="-3")) == ["run-3"]
    assert names(store.runs.query(kind__ne="train")) == ["run-1", "run-3"]
    assert names(store.runs.query(name__in=["run-4", "run-0", "nope"])) == ["run-0", "run-4"]
    # a long list goes as one parameter (SQLite: a JSON array), with values that JSON escapes
    many = [f'nope-{i} "\\ ünï' for i in range(150)] + ["run-3", "run-1"]
    assert names(store.runs.query(name__in=many)) == ["run-1", "run-3"]
    assert names(store.runs.query(parent_run_id__isnull=True)) == names(five_runs)
    created = five_runs[2].created_at
    assert names(store.runs.query(created_at__gte=created)) == ["run-2", "run-3", "run-4"]
    assert names(store.runs.query(created_at__lt=created)) == ["run-0", "run-1"]


def test_contains_treats_like_wildcards_literally(store):
    store.runs.create(name="100%_done")
    store.runs.create(name="100 done")
    assert names(store.runs.query(name__contains="0%_")) == ["100%_done"]


def test_sort_order_and_pagination(store, five_runs):
    assert names(store.runs.query(sort="progress", order="desc")) == ["run-4", "run-3", "run-2", "run-1", "run-0"]
    assert names(store.runs.query(sort="name", limit=2, offset=1)) == ["run-1", "run-2"]
    assert names(store.runs.query(sort="name", limit=2, offset=4)) == ["run-4"]
    assert store.runs.query(limit=0) == []


def test_pages_cover_every_row_exactly_once_when_sort_keys_tie(store):
    for i in range(7):
        store.runs.create(name=f"tie-{i}", kind="eval")  # same kind: the sort key ties for all
    pages = [store.runs.query(sort="status", limit=3, offset=offset) for offset in (0, 3, 6)]
    seen = [run.name for page in pages for run in page]
    assert sorted(seen) == [f"tie-{i}" for i in range(7)]


def test_count_uses_the_same_filters(store, five_runs):
    assert store.runs.count() == 5
    assert store.runs.count(kind="train", status="pending") == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.runs.query(config="x"), "cannot filter runs by 'config'"),
        (lambda s: s.runs.query(nonsense=1), "cannot filter runs by 'nonsense'"),
        (lambda s: s.runs.query(name__like="%"), "unknown filter operator 'like'"),
        (lambda s: s.runs.query(sort="config"), "cannot sort runs by 'config'"),
        (lambda s: s.runs.query(sort="name; DROP TABLE runs"), "cannot sort runs by"),
        (lambda s: s.runs.query(order="sideways"), "order must be 'asc' or 'desc'"),
        (lambda s: s.runs.query(limit=-1), "limit must be a whole number from 0 to 10,000"),
        (lambda s: s.runs.query(offset=-5), "offset must be a whole number from 0"),
        (lambda s: s.runs.query(status="runing"), "unknown run status 'runing'"),
        (lambda s: s.rollouts.query(status=["queuing", "done"]), "unknown rollout status 'done'"),
        (lambda s: s.runs.query(name__in="run-1"), "takes a list"),
    ],
)
def test_bad_queries_are_rejected_with_a_specific_message(store, five_runs, call, message):
    with pytest.raises(InvalidInputError, match=message):
        call(store)


def test_filter_values_are_bound_parameters_not_sql(store, five_runs):
    assert store.runs.query(name="run-0' OR '1'='1") == []
    assert store.runs.count() == 5
