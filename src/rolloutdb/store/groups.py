"""Groups: several rollouts of one task (GRPO-style), at a training step, in an eval or a baseline."""

from __future__ import annotations

from ..records import Group
from ..schema import groups
from .base import EditableArea


class Groups(EditableArea[Group]):
    table = groups
    record = Group
    noun = "group"
    entity_type = "group"
    filterable = frozenset({"id", "run_id", "step", "source", "task_id", "status", "created_at"})
    sortable = frozenset({"created_at", "updated_at", "step", "reward_mean", "success_count"})
    updatable = frozenset({"status", "size", "metadata"})
    parents = {"run_id": "runs", "task_id": "tasks"}
