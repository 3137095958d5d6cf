"""listing indexes: runs and rollouts newest first (of the project, by status, of a run, a group, a task)

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-05

The dashboard lists runs and rollouts newest first, a page at a time. The indexes these listings had ended at
their filter (project_id, status; parent_run_id; group_id; task_id), so a page sorted every matching row first:
every run of the project for the runs page. Each index now ends in the listings' order (created_at, then id),
and a page is read in order and stops at its last row, on both backends.
"""

from alembic import op

revision = '0015'
down_revision = '0013'
branch_labels = None
depends_on = None

# (table, the index dropped, its columns, the index made, its columns): None where there was none before.
CHANGES = [
    ("runs", None, None, "ix_runs_project_id_created_at", ["project_id", "created_at", "id"]),
    ("runs", "ix_runs_project_id_status", ["project_id", "status"],
     "ix_runs_project_id_status_created_at", ["project_id", "status", "created_at", "id"]),
    ("runs", "ix_runs_parent_run_id", ["parent_run_id"],
     "ix_runs_parent_run_id_created_at", ["parent_run_id", "created_at", "id"]),
    ("rollouts", None, None, "ix_rollouts_project_id_created_at", ["project_id", "created_at", "id"]),
    ("rollouts", "ix_rollouts_project_id_status_created_at", ["project_id", "status", "created_at"],
     "ix_rollouts_project_id_status_created_at", ["project_id", "status", "created_at", "id"]),
    ("rollouts", None, None, "ix_rollouts_run_id_created_at", ["run_id", "created_at", "id"]),
    ("rollouts", "ix_rollouts_group_id", ["group_id"],
     "ix_rollouts_group_id_created_at", ["group_id", "created_at", "id"]),
    ("rollouts", "ix_rollouts_task_id", ["task_id"],
     "ix_rollouts_task_id_created_at", ["task_id", "created_at", "id"]),
]


def upgrade() -> None:
    for table, old, _, new, columns in CHANGES:
        if old is not None:
            op.drop_index(old, table_name=table)
        op.create_index(new, table, columns, unique=False)


def downgrade() -> None:
    for table, old, old_columns, new, _ in reversed(CHANGES):
        op.drop_index(new, table_name=table)
        if old is not None:
            op.create_index(old, table, old_columns, unique=False)
