"""the flywheel's record: decisions gain context and propensity (and longer action names), signals a domain and
when they were recorded; indexes for evaluating a domain's due decisions and finding the ones late signals change

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

Both tables were unused until now (nothing wrote them), so the new NOT NULL columns need no default.
"""

from alembic import op
import sqlalchemy as sa
import rolloutdb.schema
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.alter_column('action', existing_type=sa.String(length=16), type_=sa.String(length=100),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                                      nullable=True))
        batch_op.add_column(sa.Column('propensity', sa.Float(), nullable=True))
        batch_op.create_index('ix_decisions_project_id_domain_created_at', ['project_id', 'domain', 'created_at'],
                              unique=False)
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('domain', sa.String(length=100), nullable=False))
        batch_op.add_column(sa.Column('recorded_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False))
        batch_op.drop_index('ix_signals_project_id_subject_id_time')
        batch_op.create_index('ix_signals_project_id_domain_subject_id_time',
                              ['project_id', 'domain', 'subject_id', 'time'], unique=False)
        batch_op.create_index('ix_signals_project_id_domain_recorded_at', ['project_id', 'domain', 'recorded_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_index('ix_signals_project_id_domain_recorded_at')
        batch_op.drop_index('ix_signals_project_id_domain_subject_id_time')
        batch_op.create_index('ix_signals_project_id_subject_id_time', ['project_id', 'subject_id', 'time'],
                              unique=False)
        batch_op.drop_column('recorded_at')
        batch_op.drop_column('domain')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_project_id_domain_created_at')
        batch_op.drop_column('propensity')
        batch_op.drop_column('context')
        batch_op.alter_column('action', existing_type=sa.String(length=100), type_=sa.String(length=16),
                              existing_nullable=False)
