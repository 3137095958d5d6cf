"""The listings the dashboard pages through, newest first, are read from an index in their order on both backends:
a page stops after its rows rather than sorting every matching row first (with 10,000 runs, the runs page sorted
them all). What the database plans for the store's own statements, captured as the store sends them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event

import rolloutdb

NEWEST = {"sort": "created_at", "order": "desc", "limit": 50}


@pytest.fixture
def store(fresh_database_url) -> Iterator[rolloutdb.Store]:
    with rolloutdb.connect(fresh_database_url, project="plans") as opened:
        yield opened


@contextmanager
def statements(store: rolloutdb.Store) -> Iterator[list[tuple[str, object]]]:
    seen: list[tuple[str, object]] = []

    def keep(_connection, _cursor, statement, parameters, _context, _many) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", keep)


def plan(store: rolloutdb.Store, listing: Callable[[], object]) -> str:
    """The plan of the one statement ``listing`` sends. On PostgreSQL, with sorting made dear: the tables here are
    small and the planner would sort them; what matters is that an index can give the order."""
    with statements(store) as seen:
        listing()
    [(statement, parameters)] = [(s, p) for s, p in seen if s.lstrip().upper().startswith("SELECT")]
    with store.engine.connect() as connection:
        if store.backend == "postgresql":
            connection.exec_driver_sql("SET LOCAL enable_sort = off")
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            rows = connection.exec_driver_sql("EXPLAIN (COSTS OFF) " + statement, parameters).all()
            return "\n".join(row[0] for row in rows)
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return "\n".join(row[-1] for row in rows)


def read_in_order(text: str) -> bool:
    return "TEMP B-TREE" not in text and "Sort" not in text


def test_runs_newest_first_by_status_and_a_runs_children_are_read_in_index_order(store):
    parent = store.runs.create(name="parent")
    for n in range(5):
        store.runs.create(name=f"child-{n}", parent_run_id=parent.id, status="running" if n % 2 else "pending")
    listings = {
        "ix_runs_project_id_created_at": lambda: store.runs.query(**NEWEST),
        "ix_runs_project_id_status_created_at": lambda: store.runs.query(status="running", **NEWEST),
        "ix_runs_parent_run_id_created_at": lambda: store.runs.query(parent_run_id=parent.id, sort="created_at"),
    }
    for index, listing in listings.items():
        shown = plan(store, listing)
        assert index in shown and read_in_order(shown), shown
    assert [run.name for run in store.runs.query(**NEWEST)] == [*(f"child-{n}" for n in range(4, -1, -1)), "parent"]


def test_rollouts_newest_first_of_the_project_a_status_run_group_and_task_are_read_in_index_order(store):
    run = store.runs.create(name="train")
    [task] = store.tasks.save([{"external_id": "t-1", "instruction": "do it"}])
    group = store.groups.create(run_id=run.id, step=1, task_id=task.id)
    for _ in range(3):
        store.rollouts.enqueue({"goal": "x"}, run_id=run.id, step=1, group_id=group.id, task_id=task.id)
    listings = {
        "ix_rollouts_project_id_created_at": lambda: store.rollouts.query(**NEWEST),
        "ix_rollouts_project_id_status_created_at": lambda: store.rollouts.query(status="queuing", **NEWEST),
        "ix_rollouts_run_id_created_at": lambda: store.rollouts.query(run_id=run.id, **NEWEST),
        "ix_rollouts_group_id_created_at": lambda: store.rollouts.query(group_id=group.id, **NEWEST),
        "ix_rollouts_task_id_created_at": lambda: store.rollouts.query(task_id=task.id, **NEWEST),
    }
    for index, listing in listings.items():
        shown = plan(store, listing)
        assert index in shown and read_in_order(shown), shown
