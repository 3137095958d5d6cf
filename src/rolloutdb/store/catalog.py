"""The task catalogue: tasks (with external ids, dataset, split and tags) and their validators."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from ..records import Task, Validator
from ..schema import tasks, validators
from .base import Area


class Validators(Area[Validator]):
    table = validators
    record = Validator
    noun = "validator"
    filterable = frozenset({"id", "name", "kind", "created_at"})
    sortable = frozenset({"name", "kind", "created_at", "updated_at"})
    updatable = frozenset({"kind", "config"})

    def _conflict_message(self, record: Validator, exc: IntegrityError) -> str:
        return f"a validator named {record.name!r} already exists in project {self._store.project!r}"


class Tasks(Area[Task]):
    table = tasks
    record = Task
    noun = "task"
    filterable = frozenset({"id", "external_id", "dataset", "split", "validator_id", "instruction", "created_at"})
    sortable = frozenset({"external_id", "dataset", "split", "created_at", "updated_at"})
    updatable = frozenset({"instruction", "input", "dataset", "split", "tags", "validator_id", "metadata"})
    parents = {"validator_id": "validators"}

    def _conflict_message(self, record: Task, exc: IntegrityError) -> str:
        return f"a task with external id {record.external_id!r} already exists in project {self._store.project!r}"
