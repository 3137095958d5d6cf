"""RolloutDB: the experience store for agent reinforcement learning."""

from .errors import (
    AmbiguousIdError,
    AuthenticationError,
    ConflictError,
    DatabaseNotFoundError,
    FeedTrimmedError,
    InvalidBundleError,
    InvalidInputError,
    InvalidTransitionError,
    JobCancelled,
    JobInterrupted,
    JobPaused,
    MissingFeaturesError,
    NotDeclaredError,
    NotFoundError,
    NotReplayableError,
    PermissionDeniedError,
    RolloutDBError,
    SchemaOutOfDateError,
    ServerError,
    StoreUnavailableError,
)
from .states import AttemptStatus, GroupStatus, RolloutStatus, RunStatus, StepStatus, TokenRole, TurnKind

# The rest is imported on first use, so that `import rolloutdb` (and `rolloutdb --help`) does not load the
# database and validation libraries before something needs them.
_IMPORTED_ON_USE = {
    **dict.fromkeys(("ApiToken", "Artifact", "ArtifactLink", "Attempt", "Claim", "ComparisonRow", "Event", "Group", "GuiAction", "Project", "Resources",
                     "Rollout",
                     "RolloutConfig", "Run", "RunComparison", "RunEvent", "RunStats", "Span", "StatusChange",
                     "Step", "Task", "Turn", "Validator", "Worker", "QueueSummary", "WorkerActivity", "IssuedToken",
                     "TokenGrant", "Script", "SummaryRow", "Selection", "MessagePolicy", "ExportSummary",
                     "BundleSummary", "ImportSummary", "ArchiveSummary",
                     "Trajectory", "TrajectoryTurn", "TurnArtifact", "Decision", "Signal", "Sample", "ModelCheckpoint",
                     "Estimate", "FlywheelReport"), "records"),
    **dict.fromkeys(("Advice", "Advisor"), "store.advisor"),
    **dict.fromkeys(("Policy",), "policy"),
    **dict.fromkeys(("Domain",), "store.domains"),
    **dict.fromkeys(("EvaluationResult", "RewardPeriod", "RewardStats"), "store.rewards"),
    **dict.fromkeys(("RuleSet", "ActionRule"), "store.reward_rules"),
    **dict.fromkeys(("DecisionLogger", "FlushResult", "Recorder", "RecorderHealth"), "recorder"),
    **dict.fromkeys(("AsyncJob", "Job", "JobStart", "JobStatus"), "store.jobs"),
    **dict.fromkeys(("RecordingResult", "Rejection"), "store.recording"),
    **dict.fromkeys(("PurgeResult",), "store.retention"),
    **dict.fromkeys(("GcResult",), "store.artifacts"),
    **dict.fromkeys(("Store", "connect", "create_project", "list_projects"), "store"),
}


def __getattr__(name: str) -> object:
    import importlib

    module = _IMPORTED_ON_USE.get(name)
    if module is None:
        try:  # a submodule, as `import rolloutdb` then `rolloutdb.store` always found it
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_IMPORTED_ON_USE})


__version__ = "0.1.0"

__all__ = [
    "ActionRule",
    "Advice",
    "Advisor",
    "AmbiguousIdError",
    "ApiToken",
    "ArchiveSummary",
    "Artifact",
    "ArtifactLink",
    "AsyncJob",
    "Attempt",
    "AttemptStatus",
    "AuthenticationError",
    "BundleSummary",
    "Claim",
    "ComparisonRow",
    "ConflictError",
    "DatabaseNotFoundError",
    "FeedTrimmedError",
    "Decision",
    "DecisionLogger",
    "Domain",
    "Estimate",
    "EvaluationResult",
    "Event",
    "ExportSummary",
    "FlushResult",
    "FlywheelReport",
    "GcResult",
    "Group",
    "GroupStatus",
    "GuiAction",
    "ImportSummary",
    "InvalidBundleError",
    "InvalidInputError",
    "InvalidTransitionError",
    "IssuedToken",
    "Job",
    "JobCancelled",
    "JobInterrupted",
    "JobPaused",
    "JobStart",
    "JobStatus",
    "MessagePolicy",
    "MissingFeaturesError",
    "ModelCheckpoint",
    "NotDeclaredError",
    "NotFoundError",
    "NotReplayableError",
    "PermissionDeniedError",
    "Policy",
    "Project",
    "PurgeResult",
    "QueueSummary",
    "Recorder",
    "RecorderHealth",
    "RecordingResult",
    "Rejection",
    "Resources",
    "RewardPeriod",
    "RewardStats",
    "Rollout",
    "RolloutConfig",
    "RolloutDBError",
    "RolloutStatus",
    "RuleSet",
    "Run",
    "RunComparison",
    "RunEvent",
    "RunStats",
    "RunStatus",
    "Sample",
    "SchemaOutOfDateError",
    "Script",
    "Selection",
    "ServerError",
    "Signal",
    "Span",
    "StatusChange",
    "Step",
    "StepStatus",
    "Store",
    "StoreUnavailableError",
    "SummaryRow",
    "Task",
    "TokenGrant",
    "TokenRole",
    "Trajectory",
    "TrajectoryTurn",
    "Turn",
    "TurnArtifact",
    "TurnKind",
    "Validator",
    "Worker",
    "WorkerActivity",
    "connect",
    "create_project",
    "list_projects",
]
