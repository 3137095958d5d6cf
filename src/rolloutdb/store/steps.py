"""Steps of a training run, numbered from 0 within their run."""

from __future__ import annotations


from sqlalchemy import Connection

from ..records import Step
from ..schema import steps
from .base import EditableArea
from .hooks import before_commit
from .statistics import refresh_progress


class Steps(EditableArea[Step]):
    table = steps
    record = Step
    noun = "step"
    entity_type = "step"
    filterable = frozenset({"id", "run_id", "number", "status", "created_at"})
    sortable = frozenset({"number", "created_at", "updated_at", "started_at", "ended_at"})
    updatable = frozenset({"status", "metrics"})
    parents = {"run_id": "runs"}
    conflicts = {"uq_steps_run_id_number": "run {run_id!r} already has a step {number}"}
    default_sort = "number"

    def _after_status_change(self, connection, changed, reason, now, parents) -> None:
        # A training run's progress counts its completed steps: refreshed just before commit.
        before_commit(connection, self._refresh_progress, set).update(row["run_id"] for row, _ in changed)

    def _refresh_progress(self, connection: Connection, run_ids: set[str]) -> None:
        for run_id in sorted(run_ids):
            refresh_progress(self._store, connection, run_id)
