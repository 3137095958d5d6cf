"""resource ids per project: the primary key of resources is (id, project_id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Resource ids are often named by users (Agent Lightning's trainers use "default"); with the id alone as the
key, a second project could not store resources of the same name, and learned that another project had.
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('resources', recreate='auto') as batch:
        batch.drop_constraint('pk_resources', type_='primary')
        batch.create_primary_key('pk_resources', ['id', 'project_id'])


def downgrade() -> None:
    with op.batch_alter_table('resources', recreate='auto') as batch:
        batch.drop_constraint('pk_resources', type_='primary')
        batch.create_primary_key('pk_resources', ['id'])
