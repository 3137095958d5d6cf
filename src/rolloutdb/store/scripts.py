"""Scripts: the actions of a successful rollout, recorded to be replayed on its task.

Versions count up per (task, name); identical actions (by checksum) are one version. One version per (task, name)
is active — the newest recorded, or the one ``activate`` chose — and the database holds that rule (a partial unique
index). A replay is a rollout like any other (``script_id`` names the script it replays) whose outcome is
reported to its script: the counts and the running mean time change in one UPDATE, so concurrent reports add up."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Float, and_, cast, func, select, update

from ..errors import InvalidInputError, NotReplayableError
from ..records import Script
from ..schema import attempts, scripts, turns
from ..states import RolloutStatus
from ..storable import canonical_json
from .base import DEFAULT_LIMIT, Area, RowReads, check_key
from .base import seconds as checked_seconds

if TYPE_CHECKING:
    from . import Store


class ScriptRows(Area[Script]):
    """The scripts table, as every area reads one (``store.scripts`` offers these reads and its own writes)."""

    table = scripts
    record = Script
    noun = "script"
    filterable = frozenset({"id", "task_id", "name", "version", "checksum", "active", "device", "model",
                            "source_rollout_id", "replay_count", "created_at", "updated_at"})
    sortable = frozenset({"created_at", "updated_at", "name", "version", "replay_count", "success_count",
                          "mean_execution_seconds"})
    conflicts = {"uq_scripts_active": "another version of script {name!r} became active meanwhile; try again"}


class Scripts(RowReads[Script]):
    """``store.scripts``: record a script from a successful rollout, pick the version to replay, count replays."""

    noun = ScriptRows.noun
    filterable = ScriptRows.filterable

    def __init__(self, store: Store) -> None:
        self._store = store
        self._rows = ScriptRows(store)

    # -- reading (and get, find, query, count) ---------------------------------------------------------

    def list(self, task: str | None = None, *, name: str | None = None, active: bool | None = None,
             limit: int = DEFAULT_LIMIT, offset: int = 0) -> list[Script]:
        """Scripts, newest first: of one task (its id or external id), of one name, only the active (or the
        inactive) versions; ``limit`` and ``offset`` page through them."""
        filters: dict[str, Any] = {key: value for key, value in (("name", name), ("active", active))
                                   if value is not None}
        if task is not None:
            filters["task_id"] = self._task_id(task)
        return self._rows.query(sort="created_at", order="desc", limit=limit, offset=offset, **filters)

    def best(self, task: str) -> Script | None:
        """The active script of ``task`` (its id or external id) with the best success rate, the faster of
        equals; scripts not replayed yet come after those that were. None when the task has no script."""
        rate = cast(scripts.c.success_count, Float) / func.nullif(scripts.c.replay_count, 0)
        statement = (select(scripts)
                     .where(scripts.c.project_id == self._store.project_id, scripts.c.task_id == self._task_id(task),
                            scripts.c.active.is_(True))
                     .order_by(rate.desc().nulls_last(), scripts.c.mean_execution_seconds.asc().nulls_last(),
                               scripts.c.created_at.desc(), scripts.c.id.desc())
                     .limit(1))
        with self._store.reading() as connection:
            row = connection.execute(statement).mappings().first()
        return None if row is None else self._rows.to_record(row)

    # -- writing ---------------------------------------------------------------------------------------

    def record(self, rollout_id: str, *, name: str, description: str | None = None, device: str | None = None,
               model: str | None = None) -> Script:
        """A script of the actions a successful rollout took (its turns that carry an action, in order), as a
        new version of the script ``name`` of the rollout's task, which becomes the active one. Actions recorded
        already under that name give back that version, unchanged. NotReplayableError for a rollout that did not
        succeed, has no task or took no action."""
        check_key("rollout", rollout_id)
        check_key("script", name, called="name")
        with self._store.writing() as connection:
            rollout = self._store.rollouts.fetch_row(connection, rollout_id)
            if rollout["status"] != RolloutStatus.SUCCEEDED or rollout["success"] is False:
                outcome = rollout["status"] if rollout["success"] is not False else "succeeded with success=False"
                raise NotReplayableError(f"rollout {rollout_id!r} {outcome}: a script is recorded from a "
                                         "successful rollout")
            if rollout["task_id"] is None:
                raise NotReplayableError(f"rollout {rollout_id!r} has no task: a script is the way to do a task")
            self._lock_task(connection, rollout["task_id"])  # versions are numbered one recording at a time
            actions = self._actions(connection, rollout_id)
            if not actions:
                raise NotReplayableError(f"rollout {rollout_id!r} has no turn with an action: nothing to replay")
            checksum = hashlib.sha256(canonical_json(actions)).hexdigest()
            same_name = and_(scripts.c.project_id == self._store.project_id,
                             scripts.c.task_id == rollout["task_id"], scripts.c.name == name)
            existing = connection.execute(select(scripts).where(same_name, scripts.c.checksum == checksum)
                                          ).mappings().first()
            if existing is not None:
                return self._rows.to_record(existing)
            latest = connection.execute(select(func.max(scripts.c.version)).where(same_name)).scalar()
            script = self._rows.new_record({
                "task_id": rollout["task_id"], "name": name, "description": description, "actions": actions,
                "total_steps": len(actions), "source_rollout_id": rollout_id, "version": (latest or 0) + 1,
                "checksum": checksum, "active": True, "device": device, "model": model})
            connection.execute(update(scripts).where(same_name, scripts.c.active.is_(True))
                               .values(active=False, updated_at=script.created_at))
            self._rows.insert_record(connection, script)
        return script

    def activate(self, script_id: str) -> Script:
        """Make this version the active one of its (task, name); the one active before is not any more."""
        with self._store.writing() as connection:
            task_id = self._rows.fetch_row(connection, script_id)["task_id"]
            if task_id is not None:  # before any script row: two switches never wait for each other's rows
                self._lock_task(connection, task_id)
            row = self._rows.fetch_row(connection, script_id, for_update=True)
            now = self._store.now()
            connection.execute(update(scripts).where(
                scripts.c.project_id == self._store.project_id, scripts.c.name == row["name"],
                scripts.c.task_id.is_not_distinct_from(row["task_id"]), scripts.c.active.is_(True),
                scripts.c.id != script_id).values(active=False, updated_at=now))
            if not row["active"]:
                connection.execute(update(scripts).where(scripts.c.id == script_id)
                                   .values(active=True, updated_at=now))
                row = {**row, "active": True, "updated_at": now}
        return self._rows.to_record(row)

    def report(self, script_id: str, *, success: bool, seconds: float) -> Script:
        """Count one replay of the script: its replay count, its successes and its mean execution time change
        in one statement, so replays reported at once by many processes all count."""
        if not isinstance(success, bool):
            raise InvalidInputError(f"success must be True or False, got {type(success).__name__} {success!r:.80}")
        took = float(checked_seconds("seconds", seconds))
        check_key("script", script_id)
        count, mean = scripts.c.replay_count, scripts.c.mean_execution_seconds
        statement = (update(scripts)
                     .where(scripts.c.id == script_id, scripts.c.project_id == self._store.project_id)
                     .values(replay_count=count + 1, success_count=scripts.c.success_count + int(success),
                             # A running mean: exact whatever order the reports arrive in.
                             mean_execution_seconds=func.coalesce(mean + (took - mean) / (count + 1), took),
                             updated_at=self._store.now())
                     .returning(*scripts.c))
        with self._store.writing() as connection:
            row = connection.execute(statement).mappings().first()
        if row is None:
            raise self._rows.not_found(script_id)
        return self._rows.to_record(row)

    # -- building blocks -------------------------------------------------------------------------------

    def _lock_task(self, connection: Connection, task_id: str) -> None:
        """Writes to one task's scripts go one at a time: each locks the task's row first (SQLite: the write lock)."""
        self._store.tasks.fetch_row(connection, task_id, for_update=True)

    def check_exist(self, connection: Connection, keys: Any) -> None:
        self._rows.check_exist(connection, keys)  # rollouts name the script they replay

    def _actions(self, connection: Connection, rollout_id: str) -> list[Any]:
        """The actions of the rollout's turns, in order: those of its latest attempt (the one that succeeded) and
        those recorded without an attempt."""
        latest = (select(attempts.c.id).where(attempts.c.rollout_id == rollout_id)
                  .order_by(attempts.c.sequence.desc()).limit(1).scalar_subquery())
        rows = connection.execute(
            select(turns.c.action).where(turns.c.project_id == self._store.project_id,
                                         turns.c.rollout_id == rollout_id,
                                         turns.c.attempt_id.is_(None) | (turns.c.attempt_id == latest))
            .order_by(turns.c.turn_index, turns.c.created_at)).scalars()
        return [action for action in rows if action is not None]

    def _task_id(self, task: str) -> str:
        with self._store.reading() as connection:
            return self._store.tasks.by_id_or_external_id(connection, task).id
