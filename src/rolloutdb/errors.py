"""The exceptions RolloutDB raises. Every message says what was wrong and what to do."""

from __future__ import annotations


class RolloutDBError(Exception):
    """Base class of every error RolloutDB raises on purpose."""


class NotFoundError(RolloutDBError, LookupError):
    """The entity asked for does not exist (in this project)."""


class ConflictError(RolloutDBError):
    """The write collides with existing data (a duplicate name, an active job with the same key)."""


class InvalidTransitionError(RolloutDBError):
    """A status change that the entity's state machine does not allow."""


class InvalidInputError(RolloutDBError, ValueError):
    """Malformed input: an unknown field, a bad value, an unknown filter or sort field."""


class NotDeclaredError(InvalidInputError):
    """A flywheel domain, action or signal kind that is not declared (the message lists those that are)."""


class MissingFeaturesError(InvalidInputError):
    """A state given to a policy lacks features the policy was trained on (or gives one of the wrong kind)."""


class NotReplayableError(InvalidInputError):
    """A script was asked for from a rollout it cannot come from: one that did not succeed, has no task, or
    took no action."""


class AmbiguousIdError(InvalidInputError):
    """A short id (the start of an id) that more than one row's id starts with."""


class InvalidBundleError(InvalidInputError):
    """A bundle that cannot be imported: corrupted, truncated, not a bundle, or from a newer schema."""


class SchemaOutOfDateError(RolloutDBError):
    """The database schema is older (or newer) than this version of RolloutDB expects."""


class StoreUnavailableError(RolloutDBError):
    """The database cannot be reached or opened."""


class DatabaseNotFoundError(StoreUnavailableError):
    """There is no database at the URL, and the call may not create one (reads never do)."""


class FeedTrimmedError(RolloutDBError):
    """The change feed was asked for events after an id that ``purge`` has trimmed past: some of the events
    after it are gone. Resync (read the current state again) and follow from now on. ``trimmed_through``: the
    id purge deleted events up to, where known (not through a server)."""

    def __init__(self, message: str, trimmed_through: int | None = None) -> None:
        super().__init__(message)
        self.trimmed_through = trimmed_through


class AuthenticationError(RolloutDBError):
    """A server that requires an API token got none, or one that is unknown, revoked or expired."""


class PermissionDeniedError(RolloutDBError):
    """The API token is valid but may not do this: its role is too low, or the rows are another project's."""


class JobInterrupted(RolloutDBError):
    """A job stopped at a checkpoint because another process asked it to; its state is saved."""


class JobPaused(JobInterrupted):
    """The job was paused at a checkpoint; starting it again resumes from its saved stage and state."""


class JobCancelled(JobInterrupted):
    """The job was cancelled at a checkpoint."""


class ServerError(RolloutDBError):
    """A RolloutDB server failed to answer (an internal error: see its log), or what answered is not one."""
