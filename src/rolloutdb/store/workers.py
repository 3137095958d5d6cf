"""Workers: the processes that claim rollouts. Heartbeats come from the worker; its status follows
its attempts (busy while one runs, idle after a result, unknown after a timeout or silence)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..errors import InvalidInputError
from ..records import Claim, Id, Worker
from ..schema import workers
from ..states import AttemptStatus as A
from .base import Area, build_record, validation_message
from .hooks import before_commit, writes_only
from ._statements import Prepared


_WORKER_ID = TypeAdapter(Id, config=ConfigDict(strict=True))


def checked_worker_id(worker_id: Any) -> str:
    """``worker_id`` if it can name a worker (what ``Worker.id`` holds); else InvalidInputError."""
    try:
        return _WORKER_ID.validate_python(worker_id)
    except ValidationError as exc:
        raise InvalidInputError(f"worker_id: {validation_message(exc)}") from None


class Workers(Area[Worker]):
    table = workers
    record = Worker
    noun = "worker"
    filterable = frozenset({"id", "status", "current_rollout_id", "last_heartbeat_at", "created_at"})
    sortable = frozenset({"id", "status", "created_at", "updated_at", "last_heartbeat_at", "last_dequeue_at",
                          "last_busy_at", "last_idle_at", "current_rollout_id", "current_attempt_id"})
    updatable = frozenset({"heartbeat_stats", "metadata"})
    default_sort = "id"

    def __init__(self, store) -> None:
        super().__init__(store)
        self._upserts: dict[tuple[str, frozenset[str]], Prepared] = {}  # built once per set of changed columns

    def heartbeat(self, worker_id: str, stats: Mapping[str, Any] | None = None) -> Worker:
        """Record a worker heartbeat (registering the worker on first contact), with optional stats."""
        checked_worker_id(worker_id)
        now = self._store.now()
        changes: dict[str, Any] = {"last_heartbeat_at": now}
        if stats is not None:
            changes["heartbeat_stats"] = build_record(Worker, {"id": worker_id, "heartbeat_stats": stats},
                                                      self.noun).heartbeat_stats
        with self._store.writing() as connection:
            self._upsert(connection, worker_id, changes, now)
            return self.to_record(self.fetch_row(connection, worker_id))

    def update(self, id: str, **changes: Any) -> Worker:
        """Change a worker's heartbeat stats or metadata (its status follows its attempts)."""
        self._check_updatable(changes)
        with self._store.writing() as connection:
            return self.update_row(connection, id, changes, None)

    def _upsert(self, connection: Connection, worker_id: str, changes: Mapping[str, Any], now: datetime) -> None:
        """Insert the worker or update ``changes`` on it, in one statement."""
        columns = frozenset(changes)
        statement = self._upserts.get((connection.dialect.name, columns))
        if statement is None:
            dialect_insert = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
            statement = dialect_insert(workers)
            statement = statement.on_conflict_do_update(
                index_elements=["id", "project_id"],
                set_={name: statement.excluded[name] for name in (*columns, "updated_at")},
            )
            statement = self._upserts[(connection.dialect.name, columns)] = Prepared(statement)
        statement.run(connection, {"id": worker_id, "project_id": self._store.project_id, "status": "unknown",
                                       "metadata": {}, "created_at": now, **changes, "updated_at": now})

    def _follow(self, connection: Connection, worker_id: str, changes: Mapping[str, Any], now: datetime) -> None:
        """Queue what the transaction's attempts imply for the worker, written once per worker just before
        the commit (a batch of spans moves one worker through several attempts). Later changes of a
        column win, as if each had been written in turn."""
        queued = before_commit(connection, self._write_followed, dict)
        earlier, _ = queued.get(worker_id, ({}, now))
        queued[worker_id] = ({**earlier, **changes}, now)

    @writes_only
    def _write_followed(self, connection: Connection,
                        queued: dict[str, tuple[dict[str, Any], datetime]]) -> None:
        for worker_id, (changes, now) in queued.items():
            self._upsert(connection, worker_id, changes, now)

    def follow_attempt(self, connection: Connection, attempt: Mapping[str, Any], now: datetime) -> None:
        status = attempt["status"]
        if status in (A.SUCCEEDED, A.FAILED):
            changes = {"status": "idle", "last_idle_at": now, "current_rollout_id": None, "current_attempt_id": None}
        elif status in (A.TIMEOUT, A.UNRESPONSIVE):
            changes = {"status": "unknown", "last_idle_at": now, "current_rollout_id": None,
                       "current_attempt_id": None}
        else:
            changes = {"status": "busy", "last_busy_at": now, "current_rollout_id": attempt["rollout_id"],
                       "current_attempt_id": attempt["id"]}
        self._follow(connection, attempt["worker_id"], changes, now)

    def after_dequeue(self, connection: Connection, worker_id: str, claims: Sequence[Claim], now: datetime) -> None:
        if claims:
            last = claims[-1].attempt  # a worker works on one attempt at a time: the last one it took
            self._follow(connection, worker_id, {"status": "busy", "last_busy_at": now, "last_dequeue_at": now,
                                                 "current_rollout_id": last.rollout_id,
                                                 "current_attempt_id": last.id}, now)
        else:
            self._follow(connection, worker_id, {"status": "idle", "last_idle_at": now, "last_dequeue_at": now}, now)
