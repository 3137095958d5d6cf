"""RolloutDB: the experience store for agent reinforcement learning."""

import importlib
from typing import Any

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
from .states import AttemptStatus, GroupStatus, RolloutStatus, RunStatus, StepStatus

# The rest is imported on first use, so that `import rolloutdb` (and `rolloutdb --help`) does not load the
# database and validation libraries before something needs them.
_IMPORTED_ON_USE = {
    **dict.fromkeys(("Attempt", "Group", "Rollout", "RolloutConfig", "Run", "RunEvent", "StatusChange", "Step",
                     "Task", "Turn", "Validator"), "records"),
    **dict.fromkeys(("FlushResult", "Recorder", "RecorderHealth"), "recorder"),
    **dict.fromkeys(("RecordingResult", "Rejection"), "store.recording"),
    **dict.fromkeys(("Store", "connect"), "store"),
}


def __getattr__(name: str) -> Any:
    module = _IMPORTED_ON_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_IMPORTED_ON_USE})


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
