"""RolloutDB: the experience store for agent reinforcement learning."""

from .errors import (
    AmbiguousIdError,
    ConflictError,
    InvalidInputError,
    InvalidTransitionError,
    JobCancelled,
    JobInterrupted,
    JobPaused,
    NotFoundError,
    RolloutDBError,
    SchemaOutOfDateError,
    StoreUnavailableError,
)
from .records import (
    Attempt,
    Group,
    Rollout,
    RolloutConfig,
    Run,
    RunEvent,
    StatusChange,
    Step,
    Task,
    Turn,
    Validator,
)
from .states import AttemptStatus, GroupStatus, RolloutStatus, RunStatus, StepStatus
from .recorder import FlushResult, Recorder, RecorderHealth
from .store.recording import RecordingResult, Rejection
from .store import Store, connect

__version__ = "0.1.0"

__all__ = [
    "AmbiguousIdError",
    "Attempt",
    "AttemptStatus",
    "ConflictError",
    "FlushResult",
    "Group",
    "GroupStatus",
    "InvalidInputError",
    "InvalidTransitionError",
    "JobCancelled",
    "JobInterrupted",
    "JobPaused",
    "NotFoundError",
    "Rollout",
    "RolloutConfig",
    "RolloutDBError",
    "RolloutStatus",
    "Run",
    "Recorder",
    "RecorderHealth",
    "RecordingResult",
    "Rejection",
    "RunEvent",
    "RunStatus",
    "SchemaOutOfDateError",
    "StatusChange",
    "Step",
    "StepStatus",
    "Store",
    "StoreUnavailableError",
    "Task",
    "Turn",
    "Validator",
    "connect",
]
