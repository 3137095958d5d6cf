"""indexes for purge: finished rollouts by end time, and the foreign keys its deletes cascade along

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Without them, deleting a rollout or an attempt scanned spans, turns and scripts for the rows that refer
to it, so purging N rollouts took time in N times the size of those tables.
"""

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

FINISHED = sa.text("status IN ('succeeded', 'failed', 'cancelled')")


def upgrade() -> None:
    op.create_index('ix_rollouts_finished', 'rollouts', ['project_id', 'ended_at', 'id'], unique=False,
                    sqlite_where=FINISHED, postgresql_where=FINISHED)
    op.create_index('ix_spans_attempt_id', 'spans', ['attempt_id'], unique=False)
    op.create_index('ix_turns_attempt_id', 'turns', ['attempt_id'], unique=False)
    op.create_index('ix_scripts_source_rollout_id', 'scripts', ['source_rollout_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_scripts_source_rollout_id', table_name='scripts')
    op.drop_index('ix_turns_attempt_id', table_name='turns')
    op.drop_index('ix_spans_attempt_id', table_name='spans')
    op.drop_index('ix_rollouts_finished', table_name='rollouts')
