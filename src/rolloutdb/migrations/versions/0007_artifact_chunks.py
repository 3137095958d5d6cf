"""artifacts: content stored in the database in chunks; touched_at for gc's grace period

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

The artifacts table was unused until now: its one-piece ``data`` column gives way to ``artifact_chunks``, which
are written and read a chunk at a time.
"""

from alembic import op
import sqlalchemy as sa

import rolloutdb.schema

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('touched_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_column('data')
    op.create_table('artifact_chunks',
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['sha256', 'project_id'], ['artifacts.sha256', 'artifacts.project_id'],
                            name='fk_artifact_chunks_artifact', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'sha256', 'seq', name=op.f('pk_artifact_chunks'))
    )


def downgrade() -> None:
    op.drop_table('artifact_chunks')
    with op.batch_alter_table('artifacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data', sa.LargeBinary(), nullable=True))
        batch_op.drop_column('touched_at')
