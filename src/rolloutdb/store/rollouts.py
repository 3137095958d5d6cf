"""Rollouts: one episode of an agent on an input, possibly in a group of a run's step."""

from __future__ import annotations

from ..records import Rollout
from ..schema import rollouts
from .base import Area


class Rollouts(Area[Rollout]):
    table = rollouts
    record = Rollout
    noun = "rollout"
    entity_type = "rollout"
    filterable = frozenset({"id", "run_id", "step", "group_id", "task_id", "mode", "status", "resources_id",
                            "created_at", "started_at", "ended_at", "success"})
    sortable = frozenset({"created_at", "updated_at", "started_at", "ended_at", "reward", "step", "status"})
    updatable = frozenset({"status", "reward", "success", "validation", "metrics", "metadata", "error", "config",
                           "resources_id", "mode", "input"})
    parents = {"run_id": "runs", "group_id": "groups", "task_id": "tasks"}
