"""runs.owner: the recorder session that records into a run

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_column('owner')
