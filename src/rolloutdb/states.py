"""Statuses of every entity that has one, and the transitions each state machine allows (DESIGN.md §4);
the kinds of runs and turns, the modes of rollouts and the roles of API tokens."""

from __future__ import annotations

from enum import StrEnum


class TokenRole(StrEnum):
    """What an API token may do, each role what the ones before it may and more: read; write (record, claim,
    change rows); manage the project's tokens and purge its rows."""

    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class GroupStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RolloutStatus(StrEnum):
    QUEUING = "queuing"
    PREPARING = "preparing"
    RUNNING = "running"
    REQUEUING = "requeuing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptStatus(StrEnum):
    PREPARING = "preparing"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    UNRESPONSIVE = "unresponsive"


# Not state machines: one line each.
RunKind = StrEnum("RunKind", {"TRAIN": "train", "EVAL": "eval", "BASELINE": "baseline", "JOB": "job"})
RolloutMode = StrEnum("RolloutMode", {"TRAIN": "train", "VAL": "val", "TEST": "test"})
# What one turn of a GUI agent was (its step type): it thought, acted, looked (a screenshot), failed, checked its
# work or finished.
TurnKind = StrEnum("TurnKind", {"THINKING": "thinking", "ACTION": "action", "SCREENSHOT": "screenshot", "ERROR": "error",
                                "VALIDATION": "validation", "COMPLETION": "completion"})


R, S, G, RO, A = RunStatus, StepStatus, GroupStatus, RolloutStatus, AttemptStatus

TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    "run": {
        R.PENDING: frozenset({R.RUNNING, R.FAILED, R.CANCELLED}),
        R.RUNNING: frozenset({R.PAUSED, R.COMPLETED, R.FAILED, R.CANCELLED}),
        R.PAUSED: frozenset({R.RUNNING, R.CANCELLED}),
    },
    "step": {
        S.PENDING: frozenset({S.RUNNING, S.COMPLETED, S.FAILED}),
        S.RUNNING: frozenset({S.COMPLETED, S.FAILED}),
        # A step cut short (its process died) runs again when the run is resumed.
        S.FAILED: frozenset({S.RUNNING}),
    },
    "group": {
        G.PENDING: frozenset({G.RUNNING, G.COMPLETED, G.FAILED, G.CANCELLED}),
        G.RUNNING: frozenset({G.COMPLETED, G.FAILED, G.CANCELLED}),
    },
    "rollout": {
        RO.QUEUING: frozenset({RO.PREPARING, RO.RUNNING, RO.SUCCEEDED, RO.FAILED, RO.CANCELLED}),
        RO.PREPARING: frozenset({RO.RUNNING, RO.REQUEUING, RO.SUCCEEDED, RO.FAILED, RO.CANCELLED}),
        # A new attempt started by hand (attempts.start) prepares the rollout again.
        RO.RUNNING: frozenset({RO.PREPARING, RO.REQUEUING, RO.SUCCEEDED, RO.FAILED, RO.CANCELLED}),
        RO.REQUEUING: frozenset({RO.PREPARING, RO.RUNNING, RO.FAILED, RO.CANCELLED}),
    },
    "attempt": {
        A.PREPARING: frozenset({A.RUNNING, A.SUCCEEDED, A.FAILED, A.TIMEOUT, A.UNRESPONSIVE}),
        A.RUNNING: frozenset({A.SUCCEEDED, A.FAILED, A.TIMEOUT, A.UNRESPONSIVE}),
        # An unresponsive attempt that sends a span is running again.
        A.UNRESPONSIVE: frozenset({A.RUNNING, A.SUCCEEDED, A.FAILED, A.TIMEOUT}),
    },
}

STATUS_ENUMS: dict[str, type[StrEnum]] = {
    "run": RunStatus,
    "step": StepStatus,
    "group": GroupStatus,
    "rollout": RolloutStatus,
    "attempt": AttemptStatus,
}

# Statuses after which the entity has started / ended (sets started_at / ended_at).
ACTIVE = {R.RUNNING, S.RUNNING, G.RUNNING, RO.PREPARING, RO.RUNNING, A.RUNNING}
TERMINAL: dict[str, frozenset[str]] = {
    kind: frozenset(str(s) for s in enum) - set(TRANSITIONS[kind]) for kind, enum in STATUS_ENUMS.items()
}
TERMINAL["step"] |= {S.FAILED}  # a failed step has ended, even though a resumed run may run it again


def allowed(entity_type: str, old: str, new: str) -> bool:
    """Whether ``old -> new`` is a legal status change (staying in the same status is not a change)."""
    return new in TRANSITIONS[entity_type].get(old, frozenset())

