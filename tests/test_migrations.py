"""Migrations: applied on first connect, produce exactly the schema module, refuse stale databases."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

import rolloutdb
from conftest import revision_of
from rolloutdb.errors import SchemaOutOfDateError
from rolloutdb.schema import metadata
from rolloutdb.store import engine as engine_module

def test_a_new_database_is_migrated_to_head_on_first_connect(fresh_database_url):
    assert revision_of(fresh_database_url) is None
    with rolloutdb.connect(fresh_database_url) as store:
        tables = set(inspect(store.engine).get_table_names())
    assert revision_of(fresh_database_url) == engine_module.head_revision()
    assert set(metadata.tables) <= tables


def test_migrations_produce_exactly_the_schema_module(fresh_database_url):
    with rolloutdb.connect(fresh_database_url) as store, store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, metadata) == []


def test_an_out_of_date_database_is_refused_with_the_upgrade_command_and_left_unchanged(
    fresh_database_url, later_release
):
    engine_module.upgrade(engine_module.create_store_engine(fresh_database_url), later_release)
    with pytest.raises(SchemaOutOfDateError, match=r"rolloutdb db upgrade"):
        rolloutdb.connect(fresh_database_url)
    assert revision_of(fresh_database_url) == later_release


def test_connect_with_upgrade_migrates_an_out_of_date_database(fresh_database_url, later_release):
    engine_module.upgrade(engine_module.create_store_engine(fresh_database_url), later_release)
    with rolloutdb.connect(fresh_database_url, upgrade=True) as store:
        assert "later_table" in inspect(store.engine).get_table_names()
    assert revision_of(fresh_database_url) == "0999"


def test_a_database_from_a_newer_release_is_refused(fresh_database_url):
    rolloutdb.connect(fresh_database_url).close()
    engine = engine_module.create_store_engine(fresh_database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'abcdef'"))
    engine.dispose()
    with pytest.raises(SchemaOutOfDateError, match="newer RolloutDB"):
        rolloutdb.connect(fresh_database_url)


def test_a_database_with_foreign_tables_is_not_taken_over(fresh_database_url):
    engine = engine_module.create_store_engine(fresh_database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(SchemaOutOfDateError, match="not a RolloutDB database"):
        rolloutdb.connect(fresh_database_url)
    assert revision_of(fresh_database_url) is None


def test_the_listing_indexes_migration_goes_down_and_up_again_keeping_the_rows(fresh_database_url):
    """0015 (the listings' indexes): down to the migration before it gives back the indexes that were, up again the
    new ones, and the rows are the same throughout."""
    with rolloutdb.connect(fresh_database_url, project="indexes") as store:
        names = [store.runs.create(name=f"run-{n}").name for n in range(3)]
        store.rollouts.enqueue({"goal": "x"}, run_id=store.runs.get(names[0]).id)
    engine = engine_module.create_store_engine(fresh_database_url)
    try:
        assert {"ix_runs_project_id_created_at", "ix_runs_parent_run_id_created_at"} <= index_names(engine, "runs")
        [before] = [down for _, down, message in engine_module.migration_history()
                    if message.startswith("listing indexes")]
        downgrade(engine, before)
        assert revision_of(fresh_database_url) == before
        assert {"ix_runs_project_id_status", "ix_runs_parent_run_id"} <= index_names(engine, "runs")
        assert not {"ix_runs_project_id_created_at", "ix_runs_parent_run_id_created_at"} & index_names(engine, "runs")
        assert {"ix_rollouts_group_id", "ix_rollouts_task_id"} <= index_names(engine, "rollouts")
        assert "ix_rollouts_run_id_created_at" not in index_names(engine, "rollouts")
    finally:
        engine.dispose()
    with rolloutdb.connect(fresh_database_url, project="indexes", upgrade=True) as store:
        assert [run.name for run in store.runs.query(sort="created_at", order="desc")] == names[::-1]
        assert store.rollouts.count() == 1
    assert revision_of(fresh_database_url) == engine_module.head_revision()


def index_names(engine, table: str) -> set[str]:
    return {index["name"] for index in inspect(engine).get_indexes(table)}


def downgrade(engine, revision: str) -> None:
    with engine.begin() as connection:
        config = engine_module.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
