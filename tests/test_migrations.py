"""Migrations: applied on first connect, produce exactly the schema module, refuse stale databases."""

import pytest
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
