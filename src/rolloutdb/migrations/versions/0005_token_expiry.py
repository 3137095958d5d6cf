"""API tokens expire: api_tokens.expires_at

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

A token made with an expiry (`rolloutdb tokens create --expires 30d`) is refused from then on; NULL: never.
"""

import sqlalchemy as sa
from alembic import op

import rolloutdb.schema

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('expires_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('expires_at')
