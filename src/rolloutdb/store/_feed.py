"""Writing the change feed (``store.events`` reads it): each change queues its events in its own transaction,
written just before it commits, so a change and its events commit or roll back together."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, bindparam, func, select

from ..schema import events
from ._bulk import bulk_insert
from ._statements import Prepared
from .hooks import before_commit, writes_only

NOTIFY = Prepared(select(func.pg_notify(bindparam("channel", type_=String), "")))


def channel(project_id: str) -> str:
    """The PostgreSQL notification channel of a project's events: a valid identifier for any project id."""
    return "rolloutdb_events_" + hashlib.sha256(project_id.encode()).hexdigest()[:32]


def publish(connection: Connection, project_id: str, new: Sequence[Mapping[str, Any]]) -> None:
    """Queue events (topic, run_id, entity_id, time, data) to be written just before the transaction commits.

    On PostgreSQL, the transaction must have written something before (a status change, a locked row): it then
    holds its transaction id before its events take theirs, which ``Cursor`` relies on."""
    before_commit(connection, _write, list).extend({"project_id": project_id, **event} for event in new)


@writes_only
def _write(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """The events, and on PostgreSQL a notification on each project's channel (with the rows, as a rule: one
    transaction writes one project's)."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        bulk_insert(connection, events, rows)
        return
    first, *others = dict.fromkeys(row["project_id"] for row in rows)
    bulk_insert(connection, events, rows, notify=channel(first))
    for project_id in others:
        NOTIFY.first(connection, {"channel": channel(project_id)})


def status_events(entity_type: str, entries: Sequence[tuple[str, str | None, str, str | None]],
                  reason: str | None, now: datetime) -> list[dict[str, Any]]:
    """The events of status changes, given as (entity id, old status, new status, run id)."""
    return [{"topic": entity_type, "run_id": run_id, "entity_id": entity_id, "time": now,
             "data": {"old_status": old, "new_status": new, "reason": reason}}
            for entity_id, old, new, run_id in entries]
