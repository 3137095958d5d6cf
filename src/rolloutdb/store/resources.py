"""Resources: versioned snapshots of named resources (prompts, model endpoints, checkpoints).

The latest snapshot is the one updated most recently."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, select

from ..records import Resources as ResourcesRecord
from ..schema import resources
from .base import Area, as_object, build_record
from ._statements import Prepared

# Looked up by every enqueue without resources of its own: prepared once.
LATEST = Prepared(select(resources).where(resources.c.project_id == bindparam("b_project"))
                  .order_by(resources.c.updated_at.desc(), resources.c.id.desc()).limit(1))


class Resources(Area[ResourcesRecord]):
    table = resources
    record = ResourcesRecord
    noun = "resources"
    filterable = frozenset({"id", "version", "created_at", "updated_at"})
    sortable = frozenset({"created_at", "updated_at", "version", "id"})
    updatable = frozenset({"resources"})

    def add(self, named_resources: Mapping[str, Any], id: str | None = None) -> ResourcesRecord:
        """Store a new snapshot (version 1); it becomes the latest."""
        record = self.new_record({"resources": as_object(named_resources), **({"id": id} if id else {})})
        with self._store.writing() as connection:
            self.insert_record(connection, record)
        return record

    def update(self, id: str, named_resources: Mapping[str, Any]) -> ResourcesRecord:
        """Replace a snapshot's resources: its version goes up by one and it becomes the latest."""
        with self._store.writing() as connection:
            row = self.fetch_row(connection, id, for_update=True)
            now = self._store.now()
            changed = build_record(
                ResourcesRecord,
                {**row, "resources": as_object(named_resources), "version": row["version"] + 1, "updated_at": now},
                self.noun,
            )
            self.update_by_key_statement.run(connection, {"resources": changed.resources, "version": changed.version,
                                                      "updated_at": now, "b_key": id,
                                                      "b_project": self._store.project_id})
            return changed

    def latest(self) -> ResourcesRecord | None:
        """The most recently added or updated snapshot, or None when there is none."""
        with self._store.reading() as connection:
            row = self.latest_row(connection)
        return None if row is None else self.to_record(row)

    def latest_row(self, connection: Connection) -> Mapping[str, Any] | None:
        return LATEST.first(connection, {"b_project": self._store.project_id})
