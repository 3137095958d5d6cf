"""artifacts.stored_size and artifacts.original_media_type: screenshots re-encoded when put (WebP)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

A re-encoded artifact keeps the original's sha256 and size (so the same screenshot put again is the stored one)
and the original's media type; its media_type and stored_size are the stored form's. Nullable: artifacts put
before were stored as given, and their stored size is not known.
"""

from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('artifacts') as batch:
        batch.add_column(sa.Column('stored_size', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('original_media_type', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('artifacts') as batch:
        batch.drop_column('original_media_type')
        batch.drop_column('stored_size')
