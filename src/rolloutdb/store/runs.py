"""Runs: training, eval, baseline and job runs, found by id or by name."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, or_, select

from ..errors import NotFoundError
from ..records import Run
from ..schema import groups, rollouts, runs, steps
from ..states import GroupStatus, RolloutStatus, StepStatus
from ._statements import Prepared
from .base import EditableArea
from .hooks import flush_now

if TYPE_CHECKING:
    from . import Store


def _run_by_name_or_id(for_update: bool) -> Prepared:
    key = bindparam("b_key")
    statement = (select(runs).where(runs.c.project_id == bindparam("b_project"), or_(runs.c.id == key, runs.c.name == key))
                 .order_by((runs.c.id == key).desc()).limit(1))
    return Prepared(statement.with_for_update() if for_update else statement)


# Runs are looked up on hot paths (each recorder batch, each job checkpoint): prepared once.
RUN_BY_NAME_OR_ID = {for_update: _run_by_name_or_id(for_update) for for_update in (False, True)}


class Runs(EditableArea[Run]):
    table = runs
    record = Run
    noun = "run"
    entity_type = "run"
    run_column = "id"
    filterable = frozenset({"id", "name", "kind", "status", "parent_run_id", "concurrency_key", "control", "created_at",
                            "started_at", "ended_at", "stage"})
    sortable = frozenset({"created_at", "updated_at", "started_at", "ended_at", "name", "status", "progress"})
    updatable = frozenset({"status", "progress", "stage", "stages", "message", "error", "config", "control", "state",
                           "total_steps", "metadata", "heartbeat_at", "concurrency_key"})
    parents = {"parent_run_id": "runs"}
    conflicts = {
        "uq_runs_project_id_name": "a run named {name!r} already exists in project {project!r}; pick another name",
        "uq_runs_active_concurrency_key": "another job with concurrency key {concurrency_key!r} is active in project "
                                          "{project!r}: only one job per key can be active",
    }

    def get(self, name_or_id: str) -> Run:
        """The run with this id or, failing that, this name."""
        with self._store.reading() as connection:
            row = self.fetch_row(connection, name_or_id)
        return self.to_record(row)

    def fetch_row(self, connection: Connection, name_or_id: str, *, for_update: bool = False):
        self._check_key(name_or_id)
        row = RUN_BY_NAME_OR_ID[for_update].first(connection, {"b_key": name_or_id, "b_project": self._store.project_id})
        if row is None:
            raise NotFoundError(f"no run with id or name {name_or_id!r} in project {self._store.project!r}")
        return row

    def check_exist(self, connection: Connection, keys) -> None:
        for key in keys:  # a run is referred to by id or name: found as ``fetch_row`` finds it
            self.fetch_row(connection, key)

    def _find_by_name(self, name: str) -> Run | None:
        """The run named ``name``, or None (no error)."""
        with self._store.reading() as connection:
            row = self.find_row(connection, name)
        return None if row is None else self.to_record(row)

    def find_row(self, connection: Connection, name: str, *, for_update: bool = False):
        """The run named ``name`` (locked with ``for_update``), or None."""
        statement = select(runs).where(runs.c.project_id == self._store.project_id, runs.c.name == name)
        return connection.execute(statement.with_for_update() if for_update else statement).mappings().first()



def close_open_parts(store: Store, connection: Connection, run_id: str, outcome: str, reason: str, *,
                     ended_at: datetime | None = None) -> None:
    """Close what a run left open when it ends or its process is gone: running rollouts are cancelled
    (their groups' figures follow), open groups end with ``outcome`` (completed only if every rollout in
    them finished), running steps end completed when the run completed, failed otherwise. They end at
    ``ended_at`` (when the run ended, if it was not now)."""
    stamp = {} if ended_at is None else {"ended_at": ended_at}
    for row in connection.execute(select(rollouts).where(
            rollouts.c.project_id == store.project_id, rollouts.c.run_id == run_id,
            rollouts.c.status == RolloutStatus.RUNNING).with_for_update()).mappings().all():
        store.rollouts.update_row(connection, row["id"], {"status": RolloutStatus.CANCELLED,
                                                       "error": f"interrupted: {reason}", **stamp}, reason, row)
    flush_now(connection)  # the figures of the cancelled rollouts, before judging their groups
    for row in connection.execute(select(groups).where(
            groups.c.project_id == store.project_id, groups.c.run_id == run_id,
            groups.c.status.in_((GroupStatus.PENDING, GroupStatus.RUNNING))).with_for_update()).mappings().all():
        status = outcome
        if outcome == GroupStatus.COMPLETED and not (row["rollout_count"] and
                                                    row["completed_count"] == row["rollout_count"]):
            status = GroupStatus.CANCELLED
        store.groups.update_row(connection, row["id"], {"status": status, **stamp}, reason, row)
    step_status = StepStatus.COMPLETED if outcome == GroupStatus.COMPLETED else StepStatus.FAILED
    for row in connection.execute(select(steps).where(
            steps.c.project_id == store.project_id, steps.c.run_id == run_id,
            steps.c.status == StepStatus.RUNNING).with_for_update()).mappings().all():
        store.steps.update_row(connection, row["id"], {"status": step_status, **stamp}, reason, row)
    flush_now(connection)  # the run's progress, counting the steps just closed
