"""Turns: the steps of an agent inside one rollout (observation, thinking, action, result, reward)."""

from __future__ import annotations

from ..records import Turn
from ..schema import turns
from .base import EditableArea


class Turns(EditableArea[Turn]):
    table = turns
    record = Turn
    noun = "turn"
    filterable = frozenset({"id", "rollout_id", "attempt_id", "turn_index", "done", "success", "created_at"})
    sortable = frozenset({"turn_index", "created_at", "reward", "duration_seconds"})
    updatable = frozenset({"action_result", "reward", "done", "success", "error", "metrics", "duration_seconds"})
    parents = {"rollout_id": "rollouts", "attempt_id": "attempts"}
    default_sort = "turn_index"
