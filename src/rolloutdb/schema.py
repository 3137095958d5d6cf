"""The whole RolloutDB data model (DESIGN.md §4) as one SQLAlchemy Core schema.

Alembic migrations in ``rolloutdb/migrations`` must produce exactly these tables;
``tests/test_migrations.py`` checks that autogenerate finds no difference on every backend.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive, as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: RolloutDB stores UTC, pass a timezone-aware datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


Json = JSON().with_variant(JSONB(), "postgresql")
# An auto-incrementing 64-bit key; SQLite only auto-increments INTEGER PRIMARY KEY.
Serial = BigInteger().with_variant(Integer(), "sqlite")
ID_LENGTH = 128


def _id() -> Column:
    return Column("id", String(ID_LENGTH), primary_key=True)


def _project() -> Column:
    return Column("project_id", String(ID_LENGTH), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False)


def _id_per_project() -> list[Column]:
    """The key of rows whose ids people choose (a host name, "default"): each project has its own ids."""
    return [
        Column("id", String(ID_LENGTH), primary_key=True),
        Column("project_id", String(ID_LENGTH), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    ]


def _ref(name: str, target: str, *, ondelete: str = "CASCADE", nullable: bool = True) -> Column:
    return Column(name, String(ID_LENGTH), ForeignKey(target, ondelete=ondelete), nullable=nullable)


def _times(*names: str) -> list[Column]:
    """Timestamp columns; created_at and updated_at are always set."""
    return [Column(name, UTCDateTime(), nullable=name not in ("created_at", "updated_at")) for name in names]


projects = Table(
    "projects",
    metadata,
    _id(),
    Column("name", String(200), nullable=False, unique=True),
    Column("settings", Json, nullable=False),
    *_times("created_at"),
)

runs = Table(
    "runs",
    metadata,
    _id(),
    _project(),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    _ref("parent_run_id", "runs.id", ondelete="SET NULL"),
    Column("parent_step", Integer),
    Column("config", Json, nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", Float, nullable=False),
    Column("stage", String(200)),
    Column("stages", Json, nullable=False),
    Column("message", Text),
    Column("error", Text),
    Column("concurrency_key", String(200)),
    Column("control", String(16)),
    Column("state", Json),
    Column("total_steps", Integer),
    Column("metadata", Json, nullable=False),
    Column("owner", String(128)),  # the recorder session that records into the run, if any
    *_times("created_at", "updated_at", "started_at", "ended_at", "heartbeat_at"),
    UniqueConstraint("project_id", "name"),
    Index("ix_runs_project_id_status", "project_id", "status"),
    Index("ix_runs_parent_run_id", "parent_run_id"),
    # At most one active (running or paused) job per concurrency key, enforced by the database.
    Index(
        "uq_runs_active_concurrency_key",
        "project_id",
        "concurrency_key",
        unique=True,
        sqlite_where=text("status IN ('running', 'paused') AND concurrency_key IS NOT NULL"),
        postgresql_where=text("status IN ('running', 'paused') AND concurrency_key IS NOT NULL"),
    ),
)

run_events = Table(
    "run_events",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    _project(),
    _ref("run_id", "runs.id", nullable=False),
    Column("time", UTCDateTime(), nullable=False),
    Column("level", String(16), nullable=False),
    Column("stage", String(200)),
    Column("progress", Float),
    Column("message", Text),
    Column("data", Json),
    Index("ix_run_events_run_id_seq", "run_id", "seq"),
)

status_changes = Table(
    "status_changes",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    _project(),
    Column("entity_type", String(16), nullable=False),
    Column("entity_id", String(ID_LENGTH), nullable=False),
    Column("old_status", String(16)),
    Column("new_status", String(16), nullable=False),
    Column("changed_at", UTCDateTime(), nullable=False),
    Column("reason", Text),
    Index("ix_status_changes_entity", "entity_type", "entity_id", "seq"),
)

# The change feed (issue 15): one row per thing a live view follows, written in the transaction that makes the
# change; its id orders the feed and is what a subscriber resumes after (``store.events``).
events = Table(
    "events",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    _project(),
    Column("topic", String(16), nullable=False),
    Column("run_id", String(ID_LENGTH)),  # no foreign key: the feed outlives a deleted run
    Column("entity_id", String(ID_LENGTH)),
    Column("time", UTCDateTime(), nullable=False),
    Column("data", Json, nullable=False),
    Index("ix_events_project_id_id", "project_id", "id"),
)

# How far ``purge`` has trimmed a project's feed: events up to this id are gone, so a follower resuming after a
# smaller id would miss some (``FeedTrimmedError``). Ids are shared by all projects: the kept ones cannot tell.
event_trims = Table(
    "event_trims",
    metadata,
    Column("project_id", String(ID_LENGTH), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("trimmed_through", Serial, nullable=False),
)

steps = Table(
    "steps",
    metadata,
    _id(),
    _project(),
    _ref("run_id", "runs.id", nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("metrics", Json, nullable=False),
    *_times("created_at", "updated_at", "started_at", "ended_at"),
    UniqueConstraint("run_id", "number"),
)

validators = Table(
    "validators",
    metadata,
    _id(),
    _project(),
    Column("name", String(200), nullable=False),
    Column("kind", String(100), nullable=False),
    Column("config", Json, nullable=False),
    *_times("created_at", "updated_at"),
    UniqueConstraint("project_id", "name"),
)

tasks = Table(
    "tasks",
    metadata,
    _id(),
    _project(),
    Column("external_id", String(200), nullable=False),
    Column("instruction", Text),
    Column("input", Json),
    Column("dataset", String(200)),
    Column("split", String(100)),
    Column("tags", Json, nullable=False),
    _ref("validator_id", "validators.id", ondelete="SET NULL"),
    Column("metadata", Json, nullable=False),
    *_times("created_at", "updated_at"),
    UniqueConstraint("project_id", "external_id"),
    Index("ix_tasks_project_id_dataset_split", "project_id", "dataset", "split"),
)

groups = Table(
    "groups",
    metadata,
    _id(),
    _project(),
    _ref("run_id", "runs.id"),
    Column("step", Integer),
    Column("source", String(16), nullable=False),
    _ref("task_id", "tasks.id", ondelete="SET NULL"),
    Column("size", Integer),
    Column("status", String(16), nullable=False),
    Column("rollout_count", Integer, nullable=False),
    Column("completed_count", Integer, nullable=False),
    Column("success_count", Integer, nullable=False),
    Column("reward_mean", Float),
    Column("reward_std", Float),
    Column("metadata", Json, nullable=False),
    *_times("created_at", "updated_at", "started_at", "ended_at"),
    Index("ix_groups_run_id_step", "run_id", "step"),
)

# Resource ids are named by users (Agent Lightning's "default"), so each project has its own.
resources = Table(
    "resources",
    metadata,
    *_id_per_project(),
    Column("version", Integer, nullable=False),
    Column("resources", Json, nullable=False),
    *_times("created_at", "updated_at"),
    Index("ix_resources_project_id_updated_at", "project_id", "updated_at"),
)

# Rollouts a worker can claim: the queue index's condition, and the queue query's word for word.
QUEUE_PREDICATE = text("status IN ('queuing', 'requeuing')")
# Finished rollouts (states.TERMINAL["rollout"]), which purge deletes: the purge index's condition and its queries'.
FINISHED_PREDICATE = text("status IN ('succeeded', 'failed', 'cancelled')")

rollouts = Table(
    "rollouts",
    metadata,
    _id(),
    _project(),
    _ref("run_id", "runs.id"),
    Column("step", Integer),
    _ref("group_id", "groups.id"),
    _ref("task_id", "tasks.id", ondelete="SET NULL"),
    Column("input", Json),
    Column("mode", String(16)),
    Column("status", String(16), nullable=False),
    Column("resources_id", String(ID_LENGTH)),
    # The script the rollout replays. No foreign key: scripts point at rollouts (their source), and the cycle
    # would have to be broken to create and drop the tables; the store checks the script exists on write.
    Column("script_id", String(ID_LENGTH)),
    Column("config", Json, nullable=False),
    Column("attempt_count", Integer, nullable=False),
    Column("reward", Float),
    Column("success", Boolean),
    Column("validation", Json),
    Column("metrics", Json, nullable=False),
    Column("metadata", Json, nullable=False),
    Column("error", Text),
    *_times("created_at", "updated_at", "started_at", "ended_at", "queued_at"),
    Index("ix_rollouts_project_id_status_created_at", "project_id", "status", "created_at"),
    # The queue: claimable rollouts, longest waiting first (a requeued rollout goes to the back).
    Index(
        "ix_rollouts_queue",
        "project_id",
        "queued_at",
        sqlite_where=QUEUE_PREDICATE,
        postgresql_where=QUEUE_PREDICATE,
    ),
    # What purge goes through: finished rollouts, oldest first.
    Index(
        "ix_rollouts_finished",
        "project_id",
        "ended_at",
        "id",
        sqlite_where=FINISHED_PREDICATE,
        postgresql_where=FINISHED_PREDICATE,
    ),
    Index("ix_rollouts_group_id", "group_id"),
    Index("ix_rollouts_run_id_step", "run_id", "step"),
    Index("ix_rollouts_task_id", "task_id"),
    Index("ix_rollouts_script_id", "script_id"),
)

attempts = Table(
    "attempts",
    metadata,
    _id(),
    _project(),
    _ref("rollout_id", "rollouts.id", nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("worker_id", String(ID_LENGTH)),
    Column("next_span_sequence", Integer, nullable=False),
    Column("metadata", Json, nullable=False),
    *_times("created_at", "updated_at", "started_at", "ended_at", "last_heartbeat_at"),
    UniqueConstraint("rollout_id", "sequence"),
    Index("ix_attempts_project_id_status", "project_id", "status"),
    Index("ix_attempts_worker_id", "worker_id"),
)

workers = Table(
    "workers",
    metadata,
    *_id_per_project(),
    Column("status", String(16), nullable=False),
    Column("heartbeat_stats", Json),
    Column("current_rollout_id", String(ID_LENGTH)),
    Column("current_attempt_id", String(ID_LENGTH)),
    Column("metadata", Json, nullable=False),
    *_times("created_at", "updated_at", "last_heartbeat_at", "last_dequeue_at", "last_busy_at", "last_idle_at"),
)

turns = Table(
    "turns",
    metadata,
    _id(),
    _project(),
    _ref("rollout_id", "rollouts.id", nullable=False),
    _ref("attempt_id", "attempts.id"),
    Column("turn_index", Integer, nullable=False),
    Column("kind", String(16)),
    Column("observation", Json),
    Column("thinking", Text),
    Column("action", Json),
    Column("action_result", Json),
    Column("model_response", Json),
    Column("reward", Float),
    Column("done", Boolean),
    Column("duration_seconds", Float),
    Column("success", Boolean),
    Column("error", Text),
    Column("metrics", Json, nullable=False),
    Column("tokens", Json),
    Column("logprobs", Json),
    *_times("created_at"),
    Index("ix_turns_rollout_id_turn_index", "rollout_id", "turn_index"),
    Index("ix_turns_attempt_id", "attempt_id"),  # deleting an attempt looks its turns up (ON DELETE CASCADE)
)

spans = Table(
    "spans",
    metadata,
    _id(),
    _project(),
    _ref("rollout_id", "rollouts.id", nullable=False),
    _ref("attempt_id", "attempts.id", nullable=False),
    Column("sequence_id", Integer, nullable=False),
    Column("trace_id", String(ID_LENGTH), nullable=False),
    Column("span_id", String(ID_LENGTH), nullable=False),
    Column("parent_id", String(ID_LENGTH)),
    Column("name", String(500), nullable=False),
    Column("status", Json),
    Column("attributes", Json, nullable=False),
    Column("events", Json, nullable=False),
    Column("links", Json, nullable=False),
    Column("context", Json),
    Column("parent", Json),
    Column("resource", Json),
    Column("start_time", UTCDateTime()),
    Column("end_time", UTCDateTime()),
    *_times("created_at"),
    UniqueConstraint("rollout_id", "attempt_id", "sequence_id"),
    Index("ix_spans_rollout_id_attempt_id_span_id", "rollout_id", "attempt_id", "span_id"),
    Index("ix_spans_attempt_id", "attempt_id"),  # deleting an attempt looks its spans up (ON DELETE CASCADE)
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column(
        "project_id",
        String(ID_LENGTH),
        ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(200), nullable=False),
    Column("compression", String(16)),
    # "file": a blob at location (a path); "url": at location (a URL, fsspec's); "database": artifact_chunks
    Column("storage", String(16), nullable=False),
    Column("location", Text),
    # The bytes stored (compressed or re-encoded; as put otherwise); NULL for artifacts put before it was kept.
    Column("stored_size", BigInteger),
    # Re-encoded content: the media type it was put with (media_type is the stored form's); NULL otherwise.
    Column("original_media_type", String(200)),
    # Last put (or link): gc keeps an unlinked artifact put within its grace period, for a writer about to link it.
    *_times("created_at", "touched_at"),
)

# The content of artifacts stored in the database, in chunks: written and read one chunk at a time.
artifact_chunks = Table(
    "artifact_chunks",
    metadata,
    Column("project_id", String(ID_LENGTH), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
    ForeignKeyConstraint(
        ["sha256", "project_id"],
        ["artifacts.sha256", "artifacts.project_id"],
        ondelete="CASCADE",
        name="fk_artifact_chunks_artifact",
    ),
)

artifact_links = Table(
    "artifact_links",
    metadata,
    _id(),
    Column("project_id", String(ID_LENGTH), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("owner_type", String(16), nullable=False),
    Column("owner_id", String(ID_LENGTH), nullable=False),
    Column("role", String(100), nullable=False),
    *_times("created_at"),
    ForeignKeyConstraint(
        ["sha256", "project_id"],
        ["artifacts.sha256", "artifacts.project_id"],
        ondelete="CASCADE",
        name="fk_artifact_links_artifact",
    ),
    Index("ix_artifact_links_owner", "owner_type", "owner_id"),
    Index("ix_artifact_links_sha256_project_id", "sha256", "project_id"),
)

# The script's active version: one per (task, name), which the database enforces.
ACTIVE_SCRIPT_PREDICATE = text("active")

scripts = Table(
    "scripts",
    metadata,
    _id(),
    _project(),
    _ref("task_id", "tasks.id", ondelete="SET NULL"),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("actions", Json, nullable=False),
    Column("total_steps", Integer, nullable=False),
    _ref("source_rollout_id", "rollouts.id", ondelete="SET NULL"),
    Column("version", Integer, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("device", String(200)),
    Column("model", String(200)),
    Column("replay_count", Integer, nullable=False),
    Column("success_count", Integer, nullable=False),
    Column("mean_execution_seconds", Float),
    Column("metadata", Json, nullable=False),
    *_times("created_at", "updated_at"),
    UniqueConstraint("project_id", "task_id", "name", "version"),
    UniqueConstraint("project_id", "task_id", "name", "checksum"),  # the same actions are one version
    Index(
        "uq_scripts_active",
        "project_id",
        "task_id",
        "name",
        unique=True,
        sqlite_where=ACTIVE_SCRIPT_PREDICATE,
        postgresql_where=ACTIVE_SCRIPT_PREDICATE,
    ),
    Index("ix_scripts_task_id_active", "task_id", "active"),
    Index("ix_scripts_source_rollout_id", "source_rollout_id"),  # deleting a rollout unlinks its scripts
)

# The flywheel's why-log (issue 18): one row per decision a policy took in a domain ("memory": insert, update,
# ignore, delete), with the state it saw and the probability it gave the action (for off-policy estimates); the
# reward rules fill reward, outcome and evaluated_at, again whenever new signals arrive (store.rewards.evaluate).
decisions = Table(
    "decisions",
    metadata,
    _id(),
    _project(),
    Column("domain", String(100), nullable=False),
    Column("subject_id", String(ID_LENGTH), nullable=False),
    Column("action", String(100), nullable=False),
    Column("reason", Text),
    Column("state", Json),
    Column("context", Json),
    Column("policy_version", String(100)),
    Column("propensity", Float),
    Column("reward", Float),
    Column("outcome", Json),
    *_times("created_at", "evaluated_at"),
    Index("ix_decisions_project_id_subject_id", "project_id", "subject_id"),
    Index("ix_decisions_project_id_evaluated_at", "project_id", "evaluated_at"),
    Index("ix_decisions_project_id_domain_created_at", "project_id", "domain", "created_at"),
)

# Outcomes of a domain's subjects (a memory was hit, its quality changed, someone gave feedback): ``time`` is when
# it happened, ``recorded_at`` when it was stored, so that evaluation finds the decisions a late signal changes.
signals = Table(
    "signals",
    metadata,
    _id(),
    _project(),
    Column("domain", String(100), nullable=False),
    Column("subject_id", String(ID_LENGTH), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("value", Float, nullable=False),
    Column("data", Json),
    Column("time", UTCDateTime(), nullable=False),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Index("ix_signals_project_id_domain_subject_id_time", "project_id", "domain", "subject_id", "time"),
    Index("ix_signals_project_id_domain_recorded_at", "project_id", "domain", "recorded_at"),
)

samples = Table(
    "samples",
    metadata,
    _id(),
    _project(),
    Column("source", String(100), nullable=False),
    Column("source_id", String(ID_LENGTH)),
    Column("state", Json),
    Column("action", Json),
    Column("reward", Float),
    Column("next_state", Json),
    Column("done", Boolean, nullable=False),
    Column("dataset", String(200)),
    *_times("created_at"),
    Column("propensity", Float),  # the probability the logging policy gave the action
    Column("policy_version", String(100)),
    Column("decided_at", UTCDateTime()),  # when the decision the sample comes from was taken
    Index("ix_samples_project_id_dataset", "project_id", "dataset"),
    Index("uq_samples_source", "project_id", "source", "source_id", unique=True),  # one sample per decision
)

# The version of a policy or model in use: one per name, which the database enforces.
ACTIVE_CHECKPOINT_PREDICATE = text("active")

checkpoints = Table(
    "checkpoints",
    metadata,
    _id(),
    _project(),
    _ref("run_id", "runs.id"),
    Column("step", Integer),
    Column("name", String(200), nullable=False),
    Column("uri", Text, nullable=False),
    Column("metrics", Json, nullable=False),
    Column("latest", Boolean, nullable=False),
    *_times("created_at"),
    Column("version", Integer, nullable=False),  # counts up per name
    Column("active", Boolean, nullable=False),  # the version in use: one per name at most
    Column("sha256", String(64)),  # the artifact holding the weights, when the store keeps them
    *_times("activated_at", "window_start", "window_end"),  # window: the data it was trained on
    Index("ix_checkpoints_project_id_name_created_at", "project_id", "name", "created_at"),
    UniqueConstraint("project_id", "name", "version"),
    Index("uq_checkpoints_active", "project_id", "name", unique=True, sqlite_where=ACTIVE_CHECKPOINT_PREDICATE,
          postgresql_where=ACTIVE_CHECKPOINT_PREDICATE),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _id(),
    _project(),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    *_times("created_at", "expires_at", "last_used_at", "revoked_at"),
)
