"""Bulk inserts: a batch of any size reads back exactly as written, on every backend."""

import sqlite3

import pytest
from sqlalchemy import select

import rolloutdb
from rolloutdb.ids import new_id
from rolloutdb.schema import turns
from rolloutdb.store._bulk import SQLITE_ROWS_PER_STATEMENT, bulk_insert
from rolloutdb.store._statements import sent_together
from conftest import skip_on_http

# Two full multi-row statements on SQLite and some rows left over for executemany.
BATCH = 2 * SQLITE_ROWS_PER_STATEMENT + 7


def span_batch(claim, count=BATCH):
    return [{"rollout_id": claim.rollout.id, "attempt_id": claim.attempt.id, "trace_id": "t", "span_id": f"s{n}",
             "name": f"step {n}", "attributes": {"n": n, "even": n % 2 == 0},
             "status": None if n % 3 else {"status_code": "OK"}} for n in range(count)]


def turn_rows(store, claim, count=BATCH):
    now = store.now()
    return [{"id": new_id(), "project_id": store.project_id, "rollout_id": claim.rollout.id, "turn_index": n,
             "action": {"move": n}, "metrics": {}, "created_at": now} for n in range(count)]


def test_a_batch_larger_than_one_statement_reads_back_as_written(store):
    claim = store.rollouts.start({"task": 1})
    sent = span_batch(claim)
    added = store.spans.add_many(sent)
    stored = store.spans.query(claim.rollout.id, limit=BATCH + 1)
    assert [span.model_dump() for span in stored] == [span.model_dump() for span in added]
    assert [(span.sequence_id, span.name, span.attributes, span.status) for span in stored] == [
        (n + 1, fields["name"], fields["attributes"], fields["status"]) for n, fields in enumerate(sent)
    ]


def test_ignoring_conflicts_skips_the_existing_rows_of_every_statement(store):
    skip_on_http(store, "it runs the bulk statements on the database connection of a local store")
    claim = store.rollouts.start({"task": 1})
    rows = turn_rows(store, claim)
    with store.writing() as connection:
        bulk_insert(connection, turns, rows[::2], ignore_conflicts_on=("id",))  # every other row is there already
    with store.writing() as connection:
        bulk_insert(connection, turns, rows, ignore_conflicts_on=("id",))
    with store.reading() as connection:
        stored = connection.execute(select(turns.c.id, turns.c.action)
                                    .where(turns.c.rollout_id == claim.rollout.id).order_by(turns.c.turn_index)).all()
    assert [(row.id, row.action) for row in stored] == [(row["id"], row["action"]) for row in rows]


def test_a_large_batch_among_statements_sent_together_reads_back_as_written(store):
    # PostgreSQL writes a large batch by COPY, which cannot go in a pipeline (the history of a big enqueue).
    skip_on_http(store, "it runs the bulk statements on the database connection of a local store")
    claim = store.rollouts.start({"task": 1})
    rows = turn_rows(store, claim)
    with store.writing() as connection, sent_together(connection):
        bulk_insert(connection, turns, rows)
    with store.reading() as connection:
        stored = connection.execute(select(turns.c.id, turns.c.action)
                                    .where(turns.c.rollout_id == claim.rollout.id).order_by(turns.c.turn_index)).all()
    assert [(row.id, row.action) for row in stored] == [(row["id"], row["action"]) for row in rows]


@pytest.mark.parametrize("limit", [999, 20])
def test_sqlite_statements_stay_under_the_parameter_limit(tmp_path, limit):
    """999 is the limit of SQLite before 3.32; with 20, not even two rows fit in one statement."""
    with rolloutdb.connect(f"sqlite:///{tmp_path / 'limited.db'}") as store:
        claim = store.rollouts.start({"task": 1})
        rows = turn_rows(store, claim)
        with store.writing() as connection:
            connection.connection.driver_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
            bulk_insert(connection, turns, rows)
        with store.reading() as connection:
            stored = connection.execute(select(turns.c.id).where(turns.c.rollout_id == claim.rollout.id)).scalars()
            assert sorted(stored) == sorted(row["id"] for row in rows)


def test_a_batch_referring_to_several_rows_names_the_one_that_does_not_exist_and_writes_nothing(store):
    """References of a batch are checked together (one query per kind of parent); the first missing one is
    named as when they were checked one by one."""
    run = store.runs.create(name=f"r-{new_id()}")
    groups = [store.groups.create(run_id=run.id) for _ in range(3)]
    missing = new_id()
    requests = [{"group_id": group.id} for group in groups] + [{"group_id": missing}, {"group_id": groups[0].id}]
    with pytest.raises(rolloutdb.NotFoundError, match=missing):
        store.rollouts.enqueue_many(requests)
    assert store.rollouts.count(run_id=run.id) == store.rollouts.count(group_id=groups[0].id) == 0
    assert len(store.rollouts.enqueue_many([{"group_id": group.id} for group in groups])) == 3
