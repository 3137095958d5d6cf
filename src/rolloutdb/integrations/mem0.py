"""mem0's history database as ``memory`` decisions, so that an existing mem0 deployment feeds the flywheel without
a change to its code.

mem0 keeps every memory operation in the ``history`` table of a SQLite file (``mem0.memory.storage.SQLiteManager``,
by default ``~/.mem0/history.db``): id, memory_id, old_memory, new_memory, event (ADD, UPDATE, DELETE, NONE),
created_at (the memory's), updated_at (the operation's, for an update or delete), is_deleted, actor_id, role. Each
row becomes a decision on its memory: ADD → insert, UPDATE → update, DELETE → delete, NONE → ignore, taken at
updated_at (else created_at), with the texts and the actor in its context, their lengths in its state, and its id
made from the project's name and the history row's, so that importing the file again adds only the rows that are
new (and importing it into another project too makes ids of its own). Only the public
Store API is used: a store through a server imports the same way.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

ACTIONS = {"ADD": "insert", "UPDATE": "update", "DELETE": "delete", "NONE": "ignore"}
COLUMNS = ("id", "memory_id", "old_memory", "new_memory", "event", "created_at", "updated_at", "is_deleted",
           "actor_id", "role")
ID_PREFIX = "mem0-"


@dataclass
class Mem0Import:
    """What an import did: history rows read, decisions new to the store, rows skipped (and why)."""

    read: int = 0
    imported: int = 0
    skipped: list[str] = field(default_factory=list)


def import_mem0_history(store: Any, path: str | os.PathLike, *, policy_version: str = "mem0",
                        batch_size: int = 1000) -> Mem0Import:
    """Import the ``history`` table of the mem0 SQLite file at ``path`` into ``store`` as ``memory`` decisions
    (``policy_version`` names mem0's extractor as the policy that took them), ``batch_size`` rows per write.
    InvalidInputError for a file that is not a mem0 history database."""
    result = Mem0Import()
    batch: list[dict[str, Any]] = []
    for row in _history_rows(Path(path)):
        result.read += 1
        decision = _decision(row, policy_version, store.project)
        if isinstance(decision, str):
            result.skipped.append(decision)
            continue
        batch.append(decision)
        if len(batch) >= batch_size:
            result.imported += len(store.decisions.log_many(batch))
            batch = []
    if batch:
        result.imported += len(store.decisions.log_many(batch))
    return result


def _history_rows(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise InvalidInputError(f"no mem0 history database at {str(path)!r}")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InvalidInputError(f"cannot open {str(path)!r} as SQLite: {exc}") from None
    try:
        try:
            present = {row[1] for row in connection.execute("PRAGMA table_info(history)")}
        except sqlite3.DatabaseError as exc:
            raise InvalidInputError(f"{str(path)!r} is not a SQLite database: {exc}") from None
        missing = [column for column in COLUMNS[:7] if column not in present]
        if missing:
            raise InvalidInputError(f"{str(path)!r} is not a mem0 history database: its history table "
                                    + ("is missing" if not present else f"lacks {', '.join(missing)}"))
        wanted = [column if column in present else f"NULL AS {column}" for column in COLUMNS]
        cursor = connection.execute(f"SELECT {', '.join(wanted)} FROM history ORDER BY rowid")  # noqa: S608 - fixed names
        while rows := cursor.fetchmany(1000):
            yield from (dict(zip(COLUMNS, row)) for row in rows)
    finally:
        connection.close()


def _decision(row: dict[str, Any], policy_version: str, project: str) -> dict[str, Any] | str:
    """The decision of one history row, or why it is skipped."""
    action = ACTIONS.get(str(row["event"]).upper()) if row["event"] is not None else None
    if action is None:
        return f"history row {row['id']!r}: unknown event {row['event']!r} (mem0's are {', '.join(ACTIONS)})"
    if not row["id"] or not row["memory_id"]:
        return f"history row {row['id']!r}: no id or memory_id"
    at = _time(row["updated_at"]) or _time(row["created_at"])
    if at is None:
        return f"history row {row['id']!r}: no readable time (created_at {row['created_at']!r})"
    old, new = row["old_memory"], row["new_memory"]
    return {
        "id": decision_id(project, row["id"]), "domain": "memory", "subject_id": str(row["memory_id"]), "action": action,
        "reason": f"mem0 {str(row['event']).upper()}", "at": at, "policy_version": policy_version,
        "state": {"old_length": None if old is None else len(old), "new_length": None if new is None else len(new)},
        "context": {"source": "mem0", "history_id": row["id"], "old_memory": old, "new_memory": new,
                    "actor_id": row["actor_id"], "role": row["role"], "is_deleted": bool(row["is_deleted"]),
                    "memory_created_at": row["created_at"]},
    }


def decision_id(project: str, history_id: Any) -> str:
    """The id of the decision a history row becomes in ``project``: the same each import."""
    return ID_PREFIX + str(uuid.uuid5(uuid.NAMESPACE_URL, f"rolloutdb:{project}:mem0:{history_id}"))


def _time(value: Any) -> datetime | None:
    """mem0's times: ISO 8601 text, with or without a zone (UTC when without), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
