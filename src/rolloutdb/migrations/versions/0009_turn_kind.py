"""turns.kind: a GUI agent's step type (thinking, action, screenshot, error, validation, completion)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

Nullable: turns recorded before, and those of agents with no step types, have none.
"""

from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('turns') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('turns') as batch:
        batch.drop_column('kind')
