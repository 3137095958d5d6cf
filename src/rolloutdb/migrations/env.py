"""Alembic environment: always run on a connection that RolloutDB opened (see ``store/engine.py``)."""

from alembic import context

from rolloutdb.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("RolloutDB migrations run through `rolloutdb db upgrade` or rolloutdb.connect(upgrade=True)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
