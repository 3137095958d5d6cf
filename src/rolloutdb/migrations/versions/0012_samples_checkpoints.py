"""samples: propensity, policy version and decision time, one sample per decision; checkpoints: versions per
name, one active, the weights' artifact and the data window

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

Both tables were unused until now (the learning flywheel, issue 18). A sample built from a decision is built
again, not twice, when the decision's reward changes; a checkpoint is a numbered version of a named policy,
at most one of which is active.
"""

from alembic import op
import sqlalchemy as sa

import rolloutdb.schema

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.add_column(sa.Column('propensity', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('policy_version', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('decided_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('uq_samples_source', ['project_id', 'source', 'source_id'], unique=True)
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False))
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False))
        batch_op.add_column(sa.Column('sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('activated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('window_start', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('window_end', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_checkpoints_project_id_name_version'),
                                          ['project_id', 'name', 'version'])
        batch_op.create_index('uq_checkpoints_active', ['project_id', 'name'], unique=True,
                              sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))


def downgrade() -> None:
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_index('uq_checkpoints_active', sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))
        batch_op.drop_constraint(batch_op.f('uq_checkpoints_project_id_name_version'), type_='unique')
        for column in ('window_end', 'window_start', 'activated_at', 'sha256', 'active', 'version'):
            batch_op.drop_column(column)
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.drop_index('uq_samples_source')
        for column in ('decided_at', 'policy_version', 'propensity'):
            batch_op.drop_column(column)
