"""event_trims: how far purge has trimmed each project's change feed

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

A follower resuming after an id older than the trim is told to resync, rather than missing events silently.
"""

from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event_trims',
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('trimmed_through', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_event_trims_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_event_trims'))
    )


def downgrade() -> None:
    op.drop_table('event_trims')
