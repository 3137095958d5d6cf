"""Steps of a training run, numbered from 0 within their run."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from ..records import Step
from ..schema import steps
from .base import Area


class Steps(Area[Step]):
    table = steps
    record = Step
    noun = "step"
    entity_type = "step"
    filterable = frozenset({"id", "run_id", "number", "status", "created_at"})
    sortable = frozenset({"number", "created_at", "updated_at", "started_at", "ended_at"})
    updatable = frozenset({"status", "metrics"})
    parents = {"run_id": "runs"}
    default_sort = "number"

    def _conflict_message(self, record: Step, exc: IntegrityError) -> str:
        return f"run {record.run_id!r} already has a step {record.number}"
