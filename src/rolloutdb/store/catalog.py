"""The task catalogue: tasks (with external ids, dataset, split and tags) and their validators."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, or_, select

from ..errors import InvalidInputError, NotFoundError
from ..records import Task, Validator
from ..schema import tasks, validators
from .base import EditableArea, as_object, mappings


class Validators(EditableArea[Validator]):
    table = validators
    record = Validator
    noun = "validator"
    filterable = frozenset({"id", "name", "kind", "created_at"})
    sortable = frozenset({"name", "kind", "created_at", "updated_at"})
    updatable = frozenset({"kind", "config"})
    conflicts = {"uq_validators_project_id_name": "a validator named {name!r} already exists in project {project!r}"}

    def save(self, name: str, kind: str, config: Mapping[str, Any] | None = None) -> Validator:
        """The validator with this name, created on first save (later saves return it unchanged)."""
        with self._store.writing() as connection:
            return self.save_one_validator(connection, {"name": name, "kind": kind,
                                            "config": {} if config is None else as_object(config)})

    def save_one_validator(self, connection: Connection, fields: Mapping[str, Any]) -> Validator:
        record = self.new_record(fields)
        self.insert_rows(connection, [self.to_row(record)], unless_taken=("project_id", "name"))
        return self.to_record(connection.execute(select(validators).where(
            validators.c.project_id == self._store.project_id, validators.c.name == record.name)).mappings().one())


class Tasks(EditableArea[Task]):
    table = tasks
    record = Task
    noun = "task"
    filterable = frozenset({"id", "external_id", "dataset", "split", "validator_id", "instruction", "created_at"})
    sortable = frozenset({"external_id", "dataset", "split", "created_at", "updated_at"})
    updatable = frozenset({"instruction", "input", "dataset", "split", "tags", "validator_id", "metadata"})
    parents = {"validator_id": "validators"}
    conflicts = {"uq_tasks_project_id_external_id":
                 "a task with external id {external_id!r} already exists in project {project!r}"}

    def save(self, new_tasks: Iterable[Mapping[str, Any]]) -> list[Task]:
        """Save tasks when a dataset is loaded, idempotently: a task whose ``external_id`` is stored
        already keeps its row (and id). ``validator`` may be given as ``{"name", "kind", "config"}``
        and is saved the same way. Returns the stored tasks in the given order."""
        with self._store.writing() as connection:
            return [self.save_one(connection, fields) for fields in mappings("task", new_tasks)]

    def save_one(self, connection: Connection, fields: Mapping[str, Any]) -> Task:
        fields = dict(fields)
        validator = fields.pop("validator", None)
        if validator is not None:
            fields["validator_id"] = self._store.validators.save_one_validator(connection, mappings("validator", [validator])[0]).id
        record = self.new_record(fields)
        self.insert_rows(connection, [self.to_row(record)], unless_taken=("project_id", "external_id"))
        return self._by_external_id(connection, record.external_id)

    def load(self, *, dataset: str | None = None, split: str | None = None,
             tags: Iterable[str] | None = None) -> list[Task]:
        """The stored task set: tasks of a dataset and split that carry all the given tags."""
        filters = {key: value for key, value in (("dataset", dataset), ("split", split)) if value is not None}
        if tags is not None:
            given = None if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable) else list(tags)
            if given is None or not all(isinstance(tag, str) for tag in given):
                raise InvalidInputError(f"tags are a list of strings, got {tags!r:.80}")
            tags = given
        return _with_tags(self.query(sort="external_id", limit=None, **filters), tags)

    def by_id_or_external_id(self, connection: Connection, key: str) -> Task:
        """The task with this id or, failing that, this external id."""
        self._check_key(key)
        row = connection.execute(select(tasks).where(
            tasks.c.project_id == self._store.project_id, or_(tasks.c.id == key, tasks.c.external_id == key))
            .order_by((tasks.c.id == key).desc()).limit(1)).mappings().first()
        if row is None:
            raise NotFoundError(f"no task with id or external id {key!r} in project {self._store.project!r}")
        return self.to_record(row)

    def _by_external_id(self, connection: Connection, external_id: str) -> Task:
        return self.to_record(connection.execute(select(tasks).where(
            tasks.c.project_id == self._store.project_id, tasks.c.external_id == external_id)).mappings().one())


def _with_tags(records: list[Task], tags: Iterable[str] | None) -> list[Task]:
    wanted = set(tags or ())
    return [task for task in records if wanted <= set(task.tags)]
