"""scripts: versions per (task, name), one active version each; rollouts.script_id, the script a rollout replays

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

The scripts table was unused until now: its versions were numbered per name, not per (task, name). A script
gains its description and total steps; identical actions are one version (checksum), and the database allows one
active version per (task, name).
"""

from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scripts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('total_steps', sa.Integer(), nullable=False))
        batch_op.drop_constraint('uq_scripts_project_id_name_version', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_scripts_project_id_task_id_name_version'),
                                          ['project_id', 'task_id', 'name', 'version'])
        batch_op.create_unique_constraint(batch_op.f('uq_scripts_project_id_task_id_name_checksum'),
                                          ['project_id', 'task_id', 'name', 'checksum'])
        batch_op.create_index('uq_scripts_active', ['project_id', 'task_id', 'name'], unique=True,
                              sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('script_id', sa.String(length=128), nullable=True))
        batch_op.create_index(batch_op.f('ix_rollouts_script_id'), ['script_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollouts_script_id'))
        batch_op.drop_column('script_id')
    with op.batch_alter_table('scripts', schema=None) as batch_op:
        batch_op.drop_index('uq_scripts_active', sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))
        batch_op.drop_constraint(batch_op.f('uq_scripts_project_id_task_id_name_checksum'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_scripts_project_id_task_id_name_version'), type_='unique')
        batch_op.create_unique_constraint('uq_scripts_project_id_name_version', ['project_id', 'name', 'version'])
        batch_op.drop_column('total_steps')
        batch_op.drop_column('description')
