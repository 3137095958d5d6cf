"""Purge: finished rollouts and everything under them go; unfinished ones stay."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select

import rolloutdb
from rolloutdb import states
from rolloutdb.errors import InvalidInputError
from rolloutdb.schema import FINISHED_PREDICATE, metadata
from rolloutdb.store.retention import FIRST_BATCH
from conftest import skip_on_http


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


def finished_rollouts(store, count, spans=0):
    """``count`` rollouts through the queue, each finished by its one attempt."""
    store.rollouts.enqueue_many([{"input": n} for n in range(count)])
    claims = store.rollouts.dequeue_many(count)
    store.spans.add_many([{"rollout_id": c.rollout.id, "attempt_id": c.attempt.id, "trace_id": "t",
                           "span_id": f"s{i}", "name": "n"} for c in claims for i in range(spans)])
    for claim in claims:
        store.attempts.update(claim.rollout.id, claim.attempt.id, status="succeeded")
    return [claim.rollout for claim in claims]


def test_finished_rollouts_without_an_end_time_count_as_the_oldest(store):
    undated = sorted((store.rollouts.create(status="succeeded", ended_at=None) for _ in range(2)), key=lambda r: r.id)
    dated = finished_rollouts(store, 3)
    assert store.purge(older_than=timedelta(0), dry_run=True).rollouts == 3  # never old enough
    assert store.purge(keep_last=4).rollouts == 1
    assert {r.id for r in store.rollouts.query()} == {undated[1].id, *(r.id for r in dated)}
    assert store.purge(keep_last=2).rollouts == 2
    assert {r.id for r in store.rollouts.query()} == {r.id for r in dated[1:]}


def test_purge_goes_in_batches_each_committed_so_that_other_writers_get_in_between(store):
    skip_on_http(store, "on_progress cannot follow a purge made by one request")
    doomed = FIRST_BATCH + 10  # more than one batch
    finished_rollouts(store, doomed, spans=2)
    with rolloutdb.connect(store.url, project=store.project) as other:  # its own connections
        seen: list[tuple[int, int, int]] = []

        def between_batches(done, total):
            # Another connection sees each batch deleted as it commits, and can write at once.
            seen.append((done, total, other.rollouts.count(status="succeeded")))
            other.rollouts.enqueue(f"written after {done} rollouts went")

        counted = store.purge(keep_last=0, dry_run=True,
                              on_progress=lambda done, total: seen.append((done, total, 0)))
        assert counted.rollouts == doomed and len(seen) > 1 and seen[-1][:2] == (doomed, doomed)  # counts them all
        seen.clear()
        result = store.purge(keep_last=0, on_progress=between_batches)
    assert len(seen) > 1 and all(total == doomed and left == doomed - done for done, total, left in seen)
    assert (result.rollouts, result.attempts, result.spans) == (doomed, doomed, 2 * doomed)
    assert store.rollouts.count() == len(seen) == store.rollouts.count(status="queuing")


def test_the_finished_rollouts_index_is_on_exactly_the_finished_statuses():
    assert set(re.findall(r"'(\w+)'", str(FINISHED_PREDICATE))) == states.TERMINAL["rollout"]


# -- every lookup a purge makes is an index search: its time per rollout does not grow with the tables ----

def full_scans(connection, statement: str, parameters) -> list[str]:
    """The tables (or indexes) that ``statement`` would read in full."""
    if connection.dialect.name == "sqlite":
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return [detail for *_, detail in plan if detail.startswith("SCAN ")]
    # PostgreSQL picks a sequential scan for any small table: forbid it, and see whether an index serves.
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    [[plan]] = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).all()
    scans, nodes = [], [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node["Node Type"] == "Seq Scan":
            scans.append(f"Seq Scan on {node['Relation Name']}")
        elif "Index Name" in node:  # an index read in full unless its first column is searched
            leading = connection.exec_driver_sql(
                "SELECT a.attname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE c.relname = %(name)s",
                {"name": node["Index Name"]}).scalar_one()
            if not re.search(rf"\b{leading}\b", node.get("Index Cond", "")):
                scans.append(f"{node['Node Type']} using {node['Index Name']} without {leading}")
    return scans


def test_every_lookup_of_a_purge_is_an_index_search(store):
    skip_on_http(store, "it reads query plans on the database connection of a local store")
    old, kept = finished_rollouts(store, 2, spans=2)
    store.turns.create(rollout_id=old.id, attempt_id=store.attempts.latest(old.id).id, turn_index=0)
    store.rollouts.create(status="cancelled", ended_at=None)  # finished without an end time: a range of its own
    store.rollouts.enqueue("unfinished")
    executed = []
    event.listen(store.engine, "before_cursor_execute", capture := lambda *args: executed.append(args[2:4]))
    try:
        assert store.purge(keep_last=1, dry_run=True, on_progress=lambda done, total: None).rollouts == 2
        assert store.purge(older_than=timedelta(0), keep_last=1).rollouts == 1
        assert store.purge(keep_last=1).rollouts == 1
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert any(statement.lstrip().upper().startswith("DELETE") for statement, _ in executed)
    # What the database looks up itself when a rollout or attempt goes: the rows referring to it.
    going, lookups = {"rollouts"}, []
    for table in metadata.sorted_tables:  # parents before children
        for key in table.foreign_keys:
            if key.column.table.name in going:
                lookups.append(select(key.parent).where(key.parent == "an id"))
                if key.ondelete == "CASCADE":
                    going.add(table.name)
    with store.engine.connect() as connection:
        for lookup in lookups:
            compiled = lookup.compile(connection)
            parameters = compiled.params if connection.dialect.name == "postgresql" else tuple(compiled.params.values())
            executed.append((str(compiled), parameters))
        for statement, parameters in executed:
            assert full_scans(connection, statement, parameters) == [], statement
