"""Prepared statements read and write exactly what SQLAlchemy Core reads and writes, on every backend."""

from sqlalchemy import bindparam, select, update

import rolloutdb

from rolloutdb.schema import rollouts
from rolloutdb.store.statements import Prepared

BY_ID = select(rollouts).where(rollouts.c.id == bindparam("b_id"))


def test_a_prepared_select_returns_the_row_core_returns(store):
    rollout = store.rollouts.enqueue({"question": "2 + 2", "nested": [1, 2.5, None]}, metadata={"tag": "x"})
    store.rollouts.update(rollout.id, reward=0.5, success=True)
    with store._read() as connection:
        core = dict(connection.execute(BY_ID, {"b_id": rollout.id}).mappings().one())
        prepared = Prepared(BY_ID).first(connection, {"b_id": rollout.id})
    assert prepared == core
    assert prepared["input"] == {"question": "2 + 2", "nested": [1, 2.5, None]}
    assert prepared["created_at"].tzinfo is not None


def test_a_prepared_update_sets_the_columns_named_by_its_parameters(store):
    rollout = store.rollouts.enqueue({"n": 1})
    statement = Prepared(update(rollouts).where(rollouts.c.id == bindparam("b_id")))
    with store._write() as connection:
        changed = statement.run(connection, {"metrics": {"loss": 0.25}, "reward": 1.0, "b_id": rollout.id})
    assert changed == 1
    stored = store.rollouts.get(rollout.id)
    assert (stored.metrics, stored.reward, stored.input) == ({"loss": 0.25}, 1.0, {"n": 1})


def test_sqlite_times_without_a_fraction_read_back_as_core_reads_them(tmp_path):
    # SQLite only: PostgreSQL hands timestamps to psycopg, which decodes them itself.
    with rolloutdb.connect(f"sqlite:///{tmp_path / 'store.db'}") as store:
        rollout = store.rollouts.enqueue({"n": 1})
        with store._write() as connection:  # as another SQLite writer may have stored it
            connection.exec_driver_sql("UPDATE rollouts SET started_at = '2026-01-02 03:04:05' WHERE id = ?",
                                       (rollout.id,))
        with store._read() as connection:
            core = dict(connection.execute(BY_ID, {"b_id": rollout.id}).mappings().one())
            prepared = Prepared(BY_ID).first(connection, {"b_id": rollout.id})
    assert prepared == core
    assert prepared["started_at"].isoformat() == "2026-01-02T03:04:05+00:00"
