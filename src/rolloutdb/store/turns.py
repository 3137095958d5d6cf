"""Turns: the steps of an agent inside one rollout (observation, thinking, action, result, reward); a GUI agent's
also with their step type (``kind``) and a structured action (``records.GuiAction``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ..errors import InvalidInputError
from ..records import Turn
from ..schema import turns
from .base import EditableArea


class Turns(EditableArea[Turn]):
    table = turns
    record = Turn
    noun = "turn"
    filterable = frozenset({"id", "rollout_id", "attempt_id", "turn_index", "kind", "done", "success", "created_at"})
    sortable = frozenset({"turn_index", "created_at", "reward", "duration_seconds"})
    updatable = frozenset({"action_result", "reward", "done", "success", "error", "metrics", "duration_seconds"})
    parents = {"rollout_id": "rollouts", "attempt_id": "attempts"}
    default_sort = "turn_index"

    def insert_rows(self, connection: Connection, rows: Sequence[Mapping[str, Any]],
                     now: datetime | None = None) -> None:
        # A turn's attempt, when it names one, is an attempt of the turn's rollout.
        for rollout_id, attempt_id in {(row["rollout_id"], row["attempt_id"]) for row in rows
                                       if row.get("attempt_id") is not None}:
            attempt = self._store.attempts.fetch_row(connection, attempt_id)
            if attempt["rollout_id"] != rollout_id:
                raise InvalidInputError(f"attempt {attempt_id!r} is an attempt of rollout {attempt['rollout_id']!r}, "
                                        f"not of the turn's rollout {rollout_id!r}")
        super().insert_rows(connection, rows, now)
