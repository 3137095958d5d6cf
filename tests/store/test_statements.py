"""Prepared statements read and write exactly what SQLAlchemy Core reads and writes, on every backend."""

from datetime import datetime, timezone

import pytest
import sqlalchemy
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.types import TypeEngine

import rolloutdb

from rolloutdb.ids import new_id
from rolloutdb.schema import attempts, rollouts, status_changes
from rolloutdb.store._bulk import bulk_insert
from rolloutdb.store._statements import Prepared, decoder_for, encoder_for
from rolloutdb.store.hooks import before_commit, savepoint, writes_only
from conftest import skip_on_http


@pytest.fixture(autouse=True)
def _local(request):
    if "store" in request.fixturenames:
        skip_on_http(request.getfixturevalue("store"), "it runs prepared statements on a local store's connection")


BY_ID = select(rollouts).where(rollouts.c.id == bindparam("b_id"))


def test_a_prepared_select_returns_the_row_core_returns(store):
    rollout = store.rollouts.enqueue({"question": "2 + 2", "nested": [1, 2.5, None]}, metadata={"tag": "x"})
    store.rollouts.update(rollout.id, reward=0.5, success=True)
    with store.reading() as connection:
        core = dict(connection.execute(BY_ID, {"b_id": rollout.id}).mappings().one())
        prepared = Prepared(BY_ID).first(connection, {"b_id": rollout.id})
    assert prepared == core
    assert prepared["input"] == {"question": "2 + 2", "nested": [1, 2.5, None]}
    assert prepared["created_at"].tzinfo is not None


def test_a_prepared_update_sets_the_columns_named_by_its_parameters(store):
    rollout = store.rollouts.enqueue({"n": 1})
    statement = Prepared(update(rollouts).where(rollouts.c.id == bindparam("b_id")))
    with store.writing() as connection:
        changed = statement.run(connection, {"metrics": {"loss": 0.25}, "reward": 1.0, "b_id": rollout.id})
    assert changed == 1
    stored = store.rollouts.get(rollout.id)
    assert (stored.metrics, stored.reward, stored.input) == ({"loss": 0.25}, 1.0, {"n": 1})


def test_sqlite_times_without_a_fraction_read_back_as_core_reads_them(tmp_path):
    # SQLite only: PostgreSQL hands timestamps to psycopg, which decodes them itself.
    with rolloutdb.connect(f"sqlite:///{tmp_path / 'store.db'}") as store:
        rollout = store.rollouts.enqueue({"n": 1})
        with store.writing() as connection:  # as another SQLite writer may have stored it
            connection.exec_driver_sql("UPDATE rollouts SET started_at = '2026-01-02 03:04:05' WHERE id = ?",
                                       (rollout.id,))
        with store.reading() as connection:
            core = dict(connection.execute(BY_ID, {"b_id": rollout.id}).mappings().one())
            prepared = Prepared(BY_ID).first(connection, {"b_id": rollout.id})
    assert prepared == core
    assert prepared["started_at"].isoformat() == "2026-01-02T03:04:05+00:00"


def test_many_rows_read_back_as_each_row_alone_and_as_core_reads_them(store):
    """Many rows are decoded a column at a time (a trajectory's 500 spans), a row read alone value by value: the
    same values either way, and Core's, for JSON of every kind (a string, SQL NULL, a number) and times."""
    inputs = [{"question": "2 + 2"}, "just text", [1, 2.5, None], None, 7]
    ids = [store.rollouts.enqueue(value).id for value in inputs]
    store.rollouts.update(ids[0], reward=0.5, success=True)
    of_project = select(rollouts).where(rollouts.c.project_id == bindparam("b_project")).order_by(rollouts.c.id)
    with store.reading() as connection:
        many = Prepared(of_project).rows(connection, {"b_project": store.project_id})
        alone = [Prepared(BY_ID).first(connection, {"b_id": rollout_id}) for rollout_id in ids]
        core = [dict(row) for row in connection.execute(of_project, {"b_project": store.project_id}).mappings()]
    assert many == alone == core
    assert [row["input"] for row in many] == inputs
    assert all(row["created_at"].tzinfo is timezone.utc for row in many)


def test_sqlite_times_with_an_offset_of_their_own_read_back_in_utc_among_many_rows(tmp_path):
    # As another SQLite writer may have stored them; SQLAlchemy writes them naive, in UTC.
    with rolloutdb.connect(f"sqlite:///{tmp_path / 'store.db'}") as store:
        ids = [store.rollouts.enqueue({"n": n}).id for n in range(3)]
        with store.writing() as connection:
            connection.exec_driver_sql("UPDATE rollouts SET started_at = '2026-01-02 04:04:05+01:00' WHERE id = ?",
                                       (ids[1],))
            connection.exec_driver_sql("UPDATE rollouts SET started_at = '2026-01-02 03:04:05.5' WHERE id = ?",
                                       (ids[2],))
        of_project = select(rollouts).where(rollouts.c.project_id == bindparam("b_project")).order_by(rollouts.c.id)
        with store.reading() as connection:
            many = Prepared(of_project).rows(connection, {"b_project": store.project_id})
            alone = [Prepared(BY_ID).first(connection, {"b_id": rollout_id}) for rollout_id in ids]
    assert many == alone
    assert [row["started_at"] and row["started_at"].isoformat() for row in many] == [
        None, "2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05.500000+00:00"]


# -- the private SQLAlchemy APIs of the fast path --------------------------------------------------------
# statements.py (prepared statements, and bulk.py's inserts through encoder_for) calls three private
# SQLAlchemy APIs. pyproject.toml pins SQLAlchemy below its next minor release because of them; before
# raising that pin, this test must pass on the new release: it names the API that changed.
PRIVATE_APIS = ("TypeEngine._cached_bind_processor", "TypeEngine._cached_result_processor",
                "SQLCompiler._result_columns")


def private_api_changed(api: str, problem: str) -> None:
    pytest.fail(f"SQLAlchemy {sqlalchemy.__version__}: the private API {api} {problem}. "
                f"rolloutdb.store._statements relies on {', '.join(PRIVATE_APIS)} (prepared statements, and "
                "bulk inserts through encoder_for): adapt it before allowing this SQLAlchemy in pyproject.toml.",
                pytrace=False)


def as_compared(value):
    """What a driver wrapper stands for: psycopg's Jsonb(...) compares by identity, its .obj by value."""
    return getattr(value, "obj", value)


def test_the_private_sqlalchemy_apis_of_the_fast_path_behave_as_it_relies_on(store, monkeypatch):
    dialect = store.engine.dialect
    for api in PRIVATE_APIS[:2]:
        if not callable(getattr(TypeEngine, api.split(".")[1], None)):
            private_api_changed(api, "is gone")
    # A row with every kind of column, written by Core alone: the store's own writes take the fast path.
    now = datetime.now(timezone.utc)
    row = {"id": new_id(), "project_id": store.project_id, "step": 3, "input": {"question": "2 + 2", "n": [1, 2.5]},
           "mode": "train", "status": "running", "config": {}, "attempt_count": 1, "reward": 0.5, "success": True,
           "validation": None, "metrics": {"loss": 0.25}, "metadata": {"tag": "x"}, "error": "none",
           "created_at": now, "updated_at": now, "started_at": now}
    with store.writing() as connection:
        connection.execute(insert(rollouts), row)

    # The compiled statement's result columns: (key, name, objects, type), in the order of the cursor's.
    reserve = (update(attempts).where(attempts.c.id == bindparam("b_id"))
               .values(next_span_sequence=attempts.c.next_span_sequence + bindparam("b_count"))
               .returning(attempts.c.next_span_sequence))
    for statement in (BY_ID, reserve):
        compiled = statement.compile(dialect=dialect, column_keys=["b_id"])
        expected = [(column.key, type(column.type)) for column in statement.exported_columns]
        try:
            got = [(entry[0], type(entry[3])) for entry in compiled._result_columns]
        except Exception as exc:
            private_api_changed(PRIVATE_APIS[2], f"is not a list of (key, name, objects, type) entries: {exc!r}")
        if got != expected:
            private_api_changed(PRIVATE_APIS[2], f"lists {got}, not the statement's columns {expected}")
    with store.reading() as connection:
        cursor = connection.connection.driver_connection.cursor()
        compiled = BY_ID.compile(dialect=dialect, column_keys=["b_id"])
        cursor.execute(compiled.string, (row["id"],) if compiled.positiontup else {"b_id": row["id"]})
        described = [column[0] for column in cursor.description]
        cursor.close()
    if described != [entry[0] for entry in compiled._result_columns]:
        private_api_changed(PRIVATE_APIS[2], f"is not in the order of the driver's columns {described}")

    with store.reading() as connection:
        core = connection.execute(select(rollouts).where(rollouts.c.id == row["id"])).mappings().one()
        # A textual statement: the driver's own values, which no SQLAlchemy type has processed.
        raw = connection.execute(text(f"SELECT {', '.join(rollouts.c.keys())} FROM rollouts WHERE id = :id"),
                                 {"id": row["id"]}).mappings().one()

    # Which of the two type APIs the fast path calls for a column, and what they give it.
    asked: list[str] = []
    for api in PRIVATE_APIS[:2]:
        name = api.split(".")[1]

        def spy(self, *args, _original=getattr(TypeEngine, name), _api=api):
            asked.append(_api)
            return _original(self, *args)
        monkeypatch.setattr(TypeEngine, name, spy)
    checked: dict[str, set[str]] = {api: set() for api in PRIVATE_APIS[:2]}
    for column in rollouts.c:
        where = f"rollouts.{column.key} ({column.type!r})"
        # Core applies the processors of the type's implementation for the dialect (public API).
        impl = column.type.dialect_impl(dialect)
        asked.clear()
        try:
            encode = encoder_for(column.type, dialect)
        except Exception as exc:
            private_api_changed(" / ".join(asked) or PRIVATE_APIS[0], f"fails for {where}: {exc!r}")
        if PRIVATE_APIS[0] in asked:
            checked[PRIVATE_APIS[0]].add(type(column.type).__name__)
            public, value = impl.bind_processor(dialect), core[column.key]
            sent = encode(value) if encode is not None and value is not None else value
            if (encode is None) != (public is None):
                private_api_changed(PRIVATE_APIS[0], f"gives {encode!r} for {where}, where Core has {public!r}")
            if value is not None and public is not None and as_compared(sent) != as_compared(public(value)):
                private_api_changed(PRIVATE_APIS[0], f"encodes {where} otherwise than Core: {value!r} -> {sent!r}, "
                                    f"Core sends {public(value)!r}")
        asked.clear()
        try:
            decode = decoder_for(column.type, dialect)
        except Exception as exc:
            private_api_changed(" / ".join(asked) or PRIVATE_APIS[1], f"fails for {where}: {exc!r}")
        if PRIVATE_APIS[1] in asked:
            checked[PRIVATE_APIS[1]].add(type(column.type).__name__)
            public = impl.result_processor(dialect, None)
            stored = raw[column.key]
            read = decode.one(stored) if decode is not None and stored is not None else stored
            if decode is not None and decode.column([stored, None]) != [read, None]:
                private_api_changed(PRIVATE_APIS[1], f"decodes {where} a column at a time otherwise than alone")
            if (decode is None) != (public is None):
                private_api_changed(PRIVATE_APIS[1], f"gives {decode!r} for {where}, where Core has {public!r}")
            if read != core[column.key] or type(read) is not type(core[column.key]):
                private_api_changed(PRIVATE_APIS[1], f"decodes {where} otherwise than Core: "
                                    f"{raw[column.key]!r} -> {read!r}, Core read {core[column.key]!r}")
    for api, kinds in checked.items():
        # If the fast path stops calling one, this test (and the pin in pyproject.toml) can say so.
        assert kinds, f"rolloutdb.store._statements no longer calls {api}: drop it from this test and the pin"
    # Every kind of column the fast path sends through them was checked (PostgreSQL floats are read as they come).
    assert {"String", "Integer", "Float", "Boolean"} <= checked[PRIVATE_APIS[0]]
    assert {"String", "Integer", "Boolean"} <= checked[PRIVATE_APIS[1]]


def pipelined(connection) -> bool:
    """Whether the connection's statements are being sent together (PostgreSQL's pipeline mode)."""
    return connection.dialect.name == "postgresql" and bool(connection.connection.driver_connection.pgconn.pipeline_status)


def test_writes_queued_for_commit_are_sent_together_after_the_flushes_that_read(store):
    seen = []

    def reading(connection, queued):
        seen.append(("reading", queued, pipelined(connection)))

    @writes_only
    def writing(connection, queued):
        seen.append(("writing", queued, pipelined(connection)))

    with store.writing() as connection:
        before_commit(connection, writing, list).append(1)
        before_commit(connection, reading, list).append(2)
    assert seen == [("reading", [2], False), ("writing", [1], store.backend == "postgresql")]


def test_an_error_among_writes_sent_together_is_raised_and_the_transaction_written_nothing(store):
    rollout = store.rollouts.enqueue({"n": 1})

    @writes_only
    def history_of_no_project(connection, rows):
        bulk_insert(connection, status_changes, rows)

    with pytest.raises(sqlalchemy.exc.IntegrityError):
        with store.writing() as connection:
            Prepared(update(rollouts).where(rollouts.c.id == bindparam("b_id"))).run(
                connection, {"reward": 1.0, "b_id": rollout.id})
            before_commit(connection, history_of_no_project, list).append(
                {"project_id": "no such project", "entity_type": "rollout", "entity_id": rollout.id,
                 "old_status": None, "new_status": "queuing", "changed_at": store.now(), "reason": None})
    assert store.rollouts.get(rollout.id).reward is None
    assert store.rollouts.enqueue({"n": 2}).status == "queuing"  # the connection serves the next transaction


REWARD_BY_ID = Prepared(update(rollouts).where(rollouts.c.id == bindparam("b_id")))


def test_a_write_left_waiting_is_what_the_statements_after_it_read(store):
    rollout = store.rollouts.enqueue({"n": 1})
    with store.writing() as connection:
        REWARD_BY_ID.run_later(connection, {"reward": 0.25, "b_id": rollout.id})
        assert Prepared(BY_ID).first(connection, {"b_id": rollout.id})["reward"] == 0.25
        REWARD_BY_ID.run_later(connection, {"reward": 0.5, "b_id": rollout.id})
        assert connection.execute(BY_ID, {"b_id": rollout.id}).mappings().one()["reward"] == 0.5  # through Core
        REWARD_BY_ID.run_later(connection, {"reward": 0.75, "b_id": rollout.id})
        bulk_insert(connection, status_changes, [
            {"project_id": store.project_id, "entity_type": "rollout", "entity_id": rollout.id,
             "old_status": None, "new_status": "queuing", "changed_at": store.now(), "reason": "test"}])
        assert Prepared(BY_ID).first(connection, {"b_id": rollout.id})["reward"] == 0.75
        REWARD_BY_ID.run_later(connection, {"reward": 1.0, "b_id": rollout.id})
    assert store.rollouts.get(rollout.id).reward == 1.0  # sent with the commit


def test_a_write_left_waiting_is_undone_with_its_savepoint_and_dropped_with_its_transaction(store):
    rollout = store.rollouts.enqueue({"n": 1})
    with store.writing() as connection:
        REWARD_BY_ID.run_later(connection, {"reward": 0.5, "b_id": rollout.id})
        with pytest.raises(RuntimeError), savepoint(connection):
            REWARD_BY_ID.run_later(connection, {"success": True, "b_id": rollout.id})
            raise RuntimeError("undo the savepoint")
    stored = store.rollouts.get(rollout.id)
    assert (stored.reward, stored.success) == (0.5, None)
    with pytest.raises(RuntimeError), store.writing() as connection:
        REWARD_BY_ID.run_later(connection, {"reward": 1.0, "b_id": rollout.id})
        raise RuntimeError("roll back")
    for n in range(12):  # transactions on every pooled connection: none sends the write rolled back
        store.rollouts.update(rollout.id, metadata={"n": n})
    assert store.rollouts.get(rollout.id).reward == 0.5
