"""initial schema: the whole data model

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa
import rolloutdb.schema
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('projects',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('name', name=op.f('uq_projects_name'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_api_tokens_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('artifacts',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=200), nullable=False),
    sa.Column('compression', sa.String(length=16), nullable=True),
    sa.Column('storage', sa.String(length=16), nullable=False),
    sa.Column('location', sa.Text(), nullable=True),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_artifacts_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sha256', 'project_id', name=op.f('pk_artifacts'))
    )
    op.create_table('decisions',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('domain', sa.String(length=100), nullable=False),
    sa.Column('subject_id', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('state', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('policy_version', sa.String(length=100), nullable=True),
    sa.Column('reward', sa.Float(), nullable=True),
    sa.Column('outcome', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('evaluated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_decisions_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisions'))
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index('ix_decisions_project_id_evaluated_at', ['project_id', 'evaluated_at'], unique=False)
        batch_op.create_index('ix_decisions_project_id_subject_id', ['project_id', 'subject_id'], unique=False)

    op.create_table('resources',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('resources', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_resources_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources'))
    )
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.create_index('ix_resources_project_id_updated_at', ['project_id', 'updated_at'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('parent_run_id', sa.String(length=128), nullable=True),
    sa.Column('parent_step', sa.Integer(), nullable=True),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('stage', sa.String(length=200), nullable=True),
    sa.Column('stages', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('concurrency_key', sa.String(length=200), nullable=True),
    sa.Column('control', sa.String(length=16), nullable=True),
    sa.Column('state', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('total_steps', sa.Integer(), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['parent_run_id'], ['runs.id'], name=op.f('fk_runs_parent_run_id_runs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_runs_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('project_id', 'name', name=op.f('uq_runs_project_id_name'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_parent_run_id', ['parent_run_id'], unique=False)
        batch_op.create_index('ix_runs_project_id_status', ['project_id', 'status'], unique=False)
        batch_op.create_index('uq_runs_active_concurrency_key', ['project_id', 'concurrency_key'], unique=True, sqlite_where=sa.text("status IN ('running', 'paused') AND concurrency_key IS NOT NULL"), postgresql_where=sa.text("status IN ('running', 'paused') AND concurrency_key IS NOT NULL"))

    op.create_table('samples',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('source_id', sa.String(length=128), nullable=True),
    sa.Column('state', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('action', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('reward', sa.Float(), nullable=True),
    sa.Column('next_state', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('dataset', sa.String(length=200), nullable=True),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_samples_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_samples'))
    )
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.create_index('ix_samples_project_id_dataset', ['project_id', 'dataset'], unique=False)

    op.create_table('signals',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('subject_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('time', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_signals_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signals'))
    )
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.create_index('ix_signals_project_id_subject_id_time', ['project_id', 'subject_id', 'time'], unique=False)

    op.create_table('status_changes',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('entity_type', sa.String(length=16), nullable=False),
    sa.Column('entity_id', sa.String(length=128), nullable=False),
    sa.Column('old_status', sa.String(length=16), nullable=True),
    sa.Column('new_status', sa.String(length=16), nullable=False),
    sa.Column('changed_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_status_changes_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_status_changes'))
    )
    with op.batch_alter_table('status_changes', schema=None) as batch_op:
        batch_op.create_index('ix_status_changes_entity', ['entity_type', 'entity_id', 'seq'], unique=False)

    op.create_table('validators',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=100), nullable=False),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_validators_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_validators')),
    sa.UniqueConstraint('project_id', 'name', name=op.f('uq_validators_project_id_name'))
    )
    op.create_table('workers',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('heartbeat_stats', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('current_rollout_id', sa.String(length=128), nullable=True),
    sa.Column('current_attempt_id', sa.String(length=128), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_heartbeat_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_dequeue_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_busy_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_idle_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_workers_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', 'project_id', name=op.f('pk_workers'))
    )
    op.create_table('artifact_links',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('owner_type', sa.String(length=16), nullable=False),
    sa.Column('owner_id', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=100), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sha256', 'project_id'], ['artifacts.sha256', 'artifacts.project_id'], name='fk_artifact_links_artifact', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_artifact_links'))
    )
    with op.batch_alter_table('artifact_links', schema=None) as batch_op:
        batch_op.create_index('ix_artifact_links_owner', ['owner_type', 'owner_id'], unique=False)
        batch_op.create_index('ix_artifact_links_sha256_project_id', ['sha256', 'project_id'], unique=False)

    op.create_table('checkpoints',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.String(length=128), nullable=True),
    sa.Column('step', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('latest', sa.Boolean(), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_checkpoints_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_checkpoints_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoints'))
    )
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.create_index('ix_checkpoints_project_id_name_created_at', ['project_id', 'name', 'created_at'], unique=False)

    op.create_table('run_events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.String(length=128), nullable=False),
    sa.Column('time', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=200), nullable=True),
    sa.Column('progress', sa.Float(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_run_events_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_events_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_run_events'))
    )
    with op.batch_alter_table('run_events', schema=None) as batch_op:
        batch_op.create_index('ix_run_events_run_id_seq', ['run_id', 'seq'], unique=False)

    op.create_table('steps',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.String(length=128), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_steps_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_steps_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_steps')),
    sa.UniqueConstraint('run_id', 'number', name=op.f('uq_steps_run_id_number'))
    )
    op.create_table('tasks',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('instruction', sa.Text(), nullable=True),
    sa.Column('input', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('dataset', sa.String(length=200), nullable=True),
    sa.Column('split', sa.String(length=100), nullable=True),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('validator_id', sa.String(length=128), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_tasks_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['validator_id'], ['validators.id'], name=op.f('fk_tasks_validator_id_validators'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('project_id', 'external_id', name=op.f('uq_tasks_project_id_external_id'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_project_id_dataset_split', ['project_id', 'dataset', 'split'], unique=False)

    op.create_table('groups',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.String(length=128), nullable=True),
    sa.Column('step', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('task_id', sa.String(length=128), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rollout_count', sa.Integer(), nullable=False),
    sa.Column('completed_count', sa.Integer(), nullable=False),
    sa.Column('success_count', sa.Integer(), nullable=False),
    sa.Column('reward_mean', sa.Float(), nullable=True),
    sa.Column('reward_std', sa.Float(), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_groups_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_groups_run_id_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_groups_task_id_tasks'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groups'))
    )
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.create_index('ix_groups_run_id_step', ['run_id', 'step'], unique=False)

    op.create_table('rollouts',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('run_id', sa.String(length=128), nullable=True),
    sa.Column('step', sa.Integer(), nullable=True),
    sa.Column('group_id', sa.String(length=128), nullable=True),
    sa.Column('task_id', sa.String(length=128), nullable=True),
    sa.Column('input', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('mode', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('resources_id', sa.String(length=128), nullable=True),
    sa.Column('config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('attempt_count', sa.Integer(), nullable=False),
    sa.Column('reward', sa.Float(), nullable=True),
    sa.Column('success', sa.Boolean(), nullable=True),
    sa.Column('validation', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('queued_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_rollouts_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_rollouts_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_rollouts_run_id_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_rollouts_task_id_tasks'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollouts'))
    )
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.create_index('ix_rollouts_group_id', ['group_id'], unique=False)
        batch_op.create_index('ix_rollouts_project_id_status_created_at', ['project_id', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_rollouts_queue', ['project_id', 'queued_at'], unique=False, sqlite_where=sa.text("status IN ('queuing', 'requeuing')"), postgresql_where=sa.text("status IN ('queuing', 'requeuing')"))
        batch_op.create_index('ix_rollouts_run_id_step', ['run_id', 'step'], unique=False)
        batch_op.create_index('ix_rollouts_task_id', ['task_id'], unique=False)

    op.create_table('attempts',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('rollout_id', sa.String(length=128), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('worker_id', sa.String(length=128), nullable=True),
    sa.Column('next_span_sequence', sa.Integer(), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_heartbeat_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_attempts_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_attempts_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attempts')),
    sa.UniqueConstraint('rollout_id', 'sequence', name=op.f('uq_attempts_rollout_id_sequence'))
    )
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index('ix_attempts_project_id_status', ['project_id', 'status'], unique=False)
        batch_op.create_index('ix_attempts_worker_id', ['worker_id'], unique=False)

    op.create_table('scripts',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('task_id', sa.String(length=128), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('actions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('source_rollout_id', sa.String(length=128), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('device', sa.String(length=200), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('replay_count', sa.Integer(), nullable=False),
    sa.Column('success_count', sa.Integer(), nullable=False),
    sa.Column('mean_execution_seconds', sa.Float(), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_scripts_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_rollout_id'], ['rollouts.id'], name=op.f('fk_scripts_source_rollout_id_rollouts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_scripts_task_id_tasks'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scripts')),
    sa.UniqueConstraint('project_id', 'name', 'version', name=op.f('uq_scripts_project_id_name_version'))
    )
    with op.batch_alter_table('scripts', schema=None) as batch_op:
        batch_op.create_index('ix_scripts_task_id_active', ['task_id', 'active'], unique=False)

    op.create_table('spans',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('rollout_id', sa.String(length=128), nullable=False),
    sa.Column('attempt_id', sa.String(length=128), nullable=False),
    sa.Column('sequence_id', sa.Integer(), nullable=False),
    sa.Column('trace_id', sa.String(length=128), nullable=False),
    sa.Column('span_id', sa.String(length=128), nullable=False),
    sa.Column('parent_id', sa.String(length=128), nullable=True),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('status', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('attributes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('events', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('links', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('parent', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('resource', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('start_time', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('end_time', rolloutdb.schema.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id'], name=op.f('fk_spans_attempt_id_attempts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_spans_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_spans_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spans')),
    sa.UniqueConstraint('rollout_id', 'attempt_id', 'sequence_id', name=op.f('uq_spans_rollout_id_attempt_id_sequence_id'))
    )
    with op.batch_alter_table('spans', schema=None) as batch_op:
        batch_op.create_index('ix_spans_rollout_id_attempt_id_span_id', ['rollout_id', 'attempt_id', 'span_id'], unique=False)

    op.create_table('turns',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('rollout_id', sa.String(length=128), nullable=False),
    sa.Column('attempt_id', sa.String(length=128), nullable=True),
    sa.Column('turn_index', sa.Integer(), nullable=False),
    sa.Column('observation', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('thinking', sa.Text(), nullable=True),
    sa.Column('action', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('action_result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('model_response', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('reward', sa.Float(), nullable=True),
    sa.Column('done', sa.Boolean(), nullable=True),
    sa.Column('duration_seconds', sa.Float(), nullable=True),
    sa.Column('success', sa.Boolean(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('metrics', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('tokens', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('logprobs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', rolloutdb.schema.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id'], name=op.f('fk_turns_attempt_id_attempts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_turns_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_turns_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_turns'))
    )
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.create_index('ix_turns_rollout_id_turn_index', ['rollout_id', 'turn_index'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.drop_index('ix_turns_rollout_id_turn_index')

    op.drop_table('turns')
    with op.batch_alter_table('spans', schema=None) as batch_op:
        batch_op.drop_index('ix_spans_rollout_id_attempt_id_span_id')

    op.drop_table('spans')
    with op.batch_alter_table('scripts', schema=None) as batch_op:
        batch_op.drop_index('ix_scripts_task_id_active')

    op.drop_table('scripts')
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_attempts_worker_id')
        batch_op.drop_index('ix_attempts_project_id_status')

    op.drop_table('attempts')
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_index('ix_rollouts_task_id')
        batch_op.drop_index('ix_rollouts_run_id_step')
        batch_op.drop_index('ix_rollouts_queue', sqlite_where=sa.text("status IN ('queuing', 'requeuing')"), postgresql_where=sa.text("status IN ('queuing', 'requeuing')"))
        batch_op.drop_index('ix_rollouts_project_id_status_created_at')
        batch_op.drop_index('ix_rollouts_group_id')

    op.drop_table('rollouts')
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_index('ix_groups_run_id_step')

    op.drop_table('groups')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_project_id_dataset_split')

    op.drop_table('tasks')
    op.drop_table('steps')
    with op.batch_alter_table('run_events', schema=None) as batch_op:
        batch_op.drop_index('ix_run_events_run_id_seq')

    op.drop_table('run_events')
    with op.batch_alter_table('checkpoints', schema=None) as batch_op:
        batch_op.drop_index('ix_checkpoints_project_id_name_created_at')

    op.drop_table('checkpoints')
    with op.batch_alter_table('artifact_links', schema=None) as batch_op:
        batch_op.drop_index('ix_artifact_links_sha256_project_id')
        batch_op.drop_index('ix_artifact_links_owner')

    op.drop_table('artifact_links')
    op.drop_table('workers')
    op.drop_table('validators')
    with op.batch_alter_table('status_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_status_changes_entity')

    op.drop_table('status_changes')
    with op.batch_alter_table('signals', schema=None) as batch_op:
        batch_op.drop_index('ix_signals_project_id_subject_id_time')

    op.drop_table('signals')
    with op.batch_alter_table('samples', schema=None) as batch_op:
        batch_op.drop_index('ix_samples_project_id_dataset')

    op.drop_table('samples')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('uq_runs_active_concurrency_key', sqlite_where=sa.text("status IN ('running', 'paused') AND concurrency_key IS NOT NULL"), postgresql_where=sa.text("status IN ('running', 'paused') AND concurrency_key IS NOT NULL"))
        batch_op.drop_index('ix_runs_project_id_status')
        batch_op.drop_index('ix_runs_parent_run_id')

    op.drop_table('runs')
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.drop_index('ix_resources_project_id_updated_at')

    op.drop_table('resources')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index('ix_decisions_project_id_subject_id')
        batch_op.drop_index('ix_decisions_project_id_evaluated_at')

    op.drop_table('decisions')
    op.drop_table('artifacts')
    op.drop_table('api_tokens')
    op.drop_table('projects')
