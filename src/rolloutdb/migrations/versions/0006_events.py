"""events: the change feed live views follow (job progress and logs, status changes)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Written in the transaction of each change, so that a subscriber resuming after an event's id misses nothing.
"""

from alembic import op
import sqlalchemy as sa

import rolloutdb.schema
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('topic', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.String(length=128), nullable=True),
    sa.Column('entity_id', sa.String(length=128), nullable=True),
    sa.Column('time', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_events_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_project_id_id', ['project_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_project_id_id')
    op.drop_table('events')
