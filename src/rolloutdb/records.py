"""Typed records (Pydantic 2) for every entity of the data model; one field per column of ``schema``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, Strict,
                      ValidationError, model_validator)
from pydantic_core import PydanticCustomError

from .ids import new_id
from .states import (AttemptStatus, GroupStatus, RolloutMode, RolloutStatus, RunKind, RunStatus, StepStatus,
                     TokenRole, TurnKind)


def python_scalar(value: Any) -> Any:
    """A NumPy scalar as the Python int, float or bool it holds (``np.int64(3)`` is 3, ``np.bool_(True)`` is
    True, as a training loop's values often are); anything else as it is."""
    return value.item() if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 else value


def _text(value: Any) -> Any:
    """Text as it is; anything else refused (a choice otherwise takes bytes, decoding them)."""
    if isinstance(value, str):
        return value
    raise PydanticCustomError("string_type", "Input should be a valid string")


# Values are taken as the type they are, never converted (``Record`` is strict): a number (float field) is
# an int or a float; a whole number (int field) is an int, not a float (3.0 neither), a bool or a string; a
# flag is True or False, not 0/1 or "yes"; a time is a timezone-aware datetime, not text or a number; text
# and ids are str. NumPy scalars count as the Python values they hold. Statuses, kinds and modes take their
# enum members or their string values (``Choice``).
E = TypeVar("E")
Choice = Annotated[E, Strict(False), BeforeValidator(_text)]
Whole = Annotated[int, BeforeValidator(python_scalar)]
Flag = Annotated[bool, BeforeValidator(python_scalar)]
Time = AwareDatetime
JsonDict = dict[str, JsonValue]
Id = Annotated[str, Field(min_length=1, max_length=128)]  # what an id column holds
# What an INTEGER column holds on every backend (PostgreSQL's is 32 bits): larger values are refused by name.
Int32 = Annotated[Whole, Field(ge=-(2 ** 31), le=2 ** 31 - 1)]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Record(BaseModel):
    """Base of all records: unknown fields are an error, values are validated on assignment and are not
    converted from another type (the rule above ``Choice``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True, use_enum_values=True,
                              strict=True)


class _Created(Record):
    id: Id = Field(default_factory=new_id)
    project_id: str = ""
    created_at: Time = Field(default_factory=utcnow)


class _Updated(_Created):
    updated_at: Time = Field(default_factory=utcnow)


class _Lifetime(_Updated):
    started_at: Time | None = None
    ended_at: Time | None = None


class Project(Record):
    id: Id = Field(default_factory=new_id)
    name: str = Field(min_length=1, max_length=200)
    settings: JsonDict = Field(default_factory=dict)
    created_at: Time = Field(default_factory=utcnow)


class Run(_Lifetime):
    name: str = Field(min_length=1, max_length=200)
    kind: Choice[RunKind] = RunKind.TRAIN
    parent_run_id: str | None = None
    parent_step: Int32 | None = None
    config: JsonDict = Field(default_factory=dict)
    status: Choice[RunStatus] = RunStatus.PENDING
    progress: float = Field(default=0.0, ge=0.0, le=100.0)
    stage: str | None = None
    stages: list[JsonDict] = Field(default_factory=list)
    message: str | None = None
    error: str | None = None
    concurrency_key: str | None = Field(default=None, max_length=200)
    control: Literal["pause", "resume", "cancel"] | None = None
    state: JsonValue = None
    total_steps: Int32 | None = Field(default=None, ge=0)
    metadata: JsonDict = Field(default_factory=dict)
    owner: str | None = Field(default=None, max_length=128)
    heartbeat_at: Time | None = None


class RunEvent(Record):
    seq: Whole | None = None
    project_id: str = ""
    run_id: str
    time: Time = Field(default_factory=utcnow)
    level: Literal["debug", "info", "warning", "error"] = "info"
    stage: str | None = None
    progress: float | None = None
    message: str | None = None
    data: JsonValue = None


class StatusChange(Record):
    seq: Whole | None = None
    project_id: str = ""
    entity_type: Literal["run", "step", "group", "rollout", "attempt"]
    entity_id: str
    old_status: str | None
    new_status: str
    changed_at: Time = Field(default_factory=utcnow)
    reason: str | None = None


class Event(Record):
    """One entry of the change feed live views follow (``store.events``): ``topic`` says what changed.

    job: a job's progress, stage and message (data: progress, stage, message, status); log: a row of a job's
    log (data: level, stage, progress, message, data); run, step, group, rollout, attempt: a status change
    (data: old_status, new_status, reason). ``run_id``: the run it belongs to, when there is one."""

    id: Whole | None = None
    project_id: str = ""
    topic: Literal["job", "log", "run", "step", "group", "rollout", "attempt"]
    run_id: str | None = None
    entity_id: str | None = None
    time: Time = Field(default_factory=utcnow)
    data: JsonDict = Field(default_factory=dict)


class EventTrim(Record):
    """How far ``purge`` has trimmed a project's change feed: resuming after an id below it is refused
    (``FeedTrimmedError``), as the events in between are gone."""

    project_id: str = ""
    trimmed_through: Whole


class Step(_Lifetime):
    run_id: str
    number: Int32 = Field(ge=0)
    status: Choice[StepStatus] = StepStatus.PENDING
    metrics: JsonDict = Field(default_factory=dict)


class Validator(_Updated):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=100)
    config: JsonDict = Field(default_factory=dict)


class Task(_Updated):
    external_id: str = Field(min_length=1, max_length=200)
    instruction: str | None = None
    input: JsonValue = None
    dataset: str | None = None
    split: str | None = None
    tags: list[str] = Field(default_factory=list)
    validator_id: str | None = None
    metadata: JsonDict = Field(default_factory=dict)


class Group(_Lifetime):
    run_id: str | None = None
    step: Int32 | None = Field(default=None, ge=0)
    source: Literal["step", "eval", "baseline"] = "step"
    task_id: str | None = None
    size: Int32 | None = Field(default=None, ge=1)
    status: Choice[GroupStatus] = GroupStatus.PENDING
    rollout_count: Int32 = 0
    completed_count: Int32 = 0
    success_count: Int32 = 0
    reward_mean: float | None = None
    reward_std: float | None = None
    metadata: JsonDict = Field(default_factory=dict)


class RolloutConfig(Record):
    """How a rollout is retried and when its attempts count as dead."""

    max_attempts: Whole = Field(default=1, ge=1)
    timeout_seconds: float | None = Field(default=None, gt=0)
    unresponsive_seconds: float | None = Field(default=None, gt=0)
    retry_condition: list[Literal["failed", "timeout", "unresponsive"]] = Field(default_factory=list)


class Rollout(_Lifetime):
    run_id: str | None = None
    step: Int32 | None = Field(default=None, ge=0)
    group_id: str | None = None
    task_id: str | None = None
    input: JsonValue = None
    mode: Choice[RolloutMode] | None = None
    status: Choice[RolloutStatus] = RolloutStatus.QUEUING
    resources_id: str | None = None
    script_id: str | None = None  # the script the rollout replays
    config: RolloutConfig = Field(default_factory=RolloutConfig)
    attempt_count: Int32 = 0
    reward: float | None = None
    success: Flag | None = None
    validation: JsonValue = None
    metrics: JsonDict = Field(default_factory=dict)
    metadata: JsonDict = Field(default_factory=dict)
    error: str | None = None
    queued_at: Time | None = None


class Attempt(_Lifetime):
    rollout_id: str
    sequence: Int32 = Field(ge=1)
    status: Choice[AttemptStatus] = AttemptStatus.PREPARING
    worker_id: Id | None = None
    next_span_sequence: Int32 = 1
    metadata: JsonDict = Field(default_factory=dict)
    last_heartbeat_at: Time | None = None


class Worker(Record):
    id: Id
    project_id: str = ""
    status: Literal["idle", "busy", "unknown"] = "unknown"
    heartbeat_stats: JsonDict | None = None
    current_rollout_id: str | None = None
    current_attempt_id: str | None = None
    metadata: JsonDict = Field(default_factory=dict)
    created_at: Time = Field(default_factory=utcnow)
    updated_at: Time = Field(default_factory=utcnow)
    last_heartbeat_at: Time | None = None
    last_dequeue_at: Time | None = None
    last_busy_at: Time | None = None
    last_idle_at: Time | None = None


GUI_ACTION_TYPES = ("tap", "double_tap", "long_press", "swipe", "drag", "type", "scroll", "key", "launch", "wait",
                    "back", "home", "done")
COORDINATES = ("x", "y", "x2", "y2")
# The bounds inside, the NumPy scalar outside: so they are checked by the validator's core, not in Python.
Coordinate = Annotated[Annotated[float, Field(ge=0, allow_inf_nan=False)], BeforeValidator(python_scalar)]
# What each action type needs besides its type: any one of the alternatives, each a set of fields.
_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    **dict.fromkeys(("tap", "double_tap", "long_press"), (("x", "y"), ("element",))),
    "swipe": (("x2", "y2"), ("direction",)), "drag": (("x2", "y2"),), "type": (("text",),),
    "scroll": (("direction",),), "key": (("key",),), "launch": (("app",),),
}


class GuiAction(Record):
    """A phone- or computer-use agent's action, as a turn's ``action`` holds it: ``type``; where, in screen pixels
    from the top left (``x``, ``y``; a swipe or drag's end ``x2``, ``y2``, or its ``direction``); the ``text``
    typed, the ``key`` pressed, the ``app`` launched, the target ``element`` (its id, text or description), the
    ``seconds`` waited. Other keys are kept as given (JSON)."""

    # Defaults (None) are valid: not validated, as a turn's action is checked in the training loop's call.
    model_config = ConfigDict(extra="allow", validate_default=False)

    type: Literal[GUI_ACTION_TYPES]
    x: Coordinate | None = None
    y: Coordinate | None = None
    x2: Coordinate | None = None
    y2: Coordinate | None = None
    direction: Literal["up", "down", "left", "right"] | None = None
    text: str | None = None
    key: str | None = None
    app: str | None = None
    element: JsonValue = None
    seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _complete(self) -> GuiAction:
        given = {name for name, value in self.__dict__.items() if value is not None}
        for first, second in (("x", "y"), ("x2", "y2")):  # a point is both of its coordinates
            if (first in given) != (second in given):
                raise PydanticCustomError("gui_action", "a point needs both {first} and {second}",
                                          {"field": second if first in given else first, "first": first,
                                           "second": second})
        needs = _NEEDS.get(self.type)
        if needs is not None and not any(given.issuperset(fields) for fields in needs):
            wanted = " or ".join(" and ".join(fields) for fields in needs)
            raise PydanticCustomError("gui_action", "a {type} action needs {wanted}",
                                      {"field": needs[0][0], "type": self.type, "wanted": wanted})
        return self


def is_gui_action(value: Any) -> bool:
    """Whether a turn's action has the GUI shape, and is held to ``GuiAction``: an object whose ``type`` is a GUI
    action's, or that has a ``type`` and coordinates. Any other action (text, a list, an object without a
    ``type``, or whose ``type`` is not a GUI action's and that has no coordinates) is free-form, kept as given."""
    return type(value) is dict and "type" in value and (
        value["type"] in GUI_ACTION_TYPES or not value.keys().isdisjoint(COORDINATES))


def _checked_action(value: Any) -> Any:
    """A turn's action as given, once a GUI-shaped one is a valid ``GuiAction`` (else its first problem, naming
    the key: see ``store.base.validation_message``)."""
    if is_gui_action(value):
        try:
            GuiAction.model_validate(value)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            field = ".".join(map(str, error["loc"])) or error.get("ctx", {}).get("field", "")
            raise PydanticCustomError("gui_action", "{message}", {"field": field, "message": error["msg"]}) from None
    return value


# A turn's action: anything JSON holds; a GUI-shaped one must be a valid GuiAction (``is_gui_action``).
Action = Annotated[JsonValue, AfterValidator(_checked_action)]


class TurnContent(Record):
    """What one turn of an agent holds: what it saw, thought and did, what came of it, and its reward. ``kind``:
    the step type of a GUI agent's turn."""

    kind: Choice[TurnKind] | None = None
    observation: JsonValue = None
    thinking: str | None = None
    action: Action = None
    action_result: JsonValue = None
    model_response: JsonValue = None
    reward: float | None = None
    done: Flag | None = None
    duration_seconds: float | None = Field(default=None, ge=0)
    success: Flag | None = None
    error: str | None = None
    metrics: JsonDict = Field(default_factory=dict)
    tokens: JsonValue = None
    logprobs: JsonValue = None


class Turn(_Created, TurnContent):
    rollout_id: str
    attempt_id: str | None = None
    turn_index: Int32 = Field(ge=0)


class Span(_Created):
    # The free-form fields are checked when they are encoded for the database (a value JSON cannot
    # hold is refused there, with its field), not value by value here: spans come in bulk. For the
    # same reason defaults are not validated: none is an enum to turn into its value, all are valid.
    model_config = ConfigDict(validate_default=False)

    rollout_id: str
    attempt_id: str
    sequence_id: Int32 = Field(ge=0)
    trace_id: str
    span_id: str
    parent_id: str | None = None
    name: str
    status: Any = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    events: list[Any] = Field(default_factory=list)
    links: list[Any] = Field(default_factory=list)
    context: Any = None
    parent: Any = None
    resource: Any = None
    start_time: Time | None = None
    end_time: Time | None = None


class Resources(_Updated):
    version: Int32 = Field(default=1, ge=1)
    resources: JsonDict = Field(default_factory=dict)


class Artifact(Record):
    """Content stored once per project by the sha256 of what was put. Compressed content reads back as put; re-encoded
    content (a screenshot put with ``reencode="webp"``) reads back in its stored form, whose media type
    ``media_type`` is, ``original_media_type`` naming what was put (``sha256`` and ``size`` are always the put
    content's: the same screenshot put again is this one)."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    project_id: str = ""
    size: Whole = Field(ge=0)
    media_type: str = "application/octet-stream"
    compression: Literal["gzip", "zstd"] | None = None
    storage: Literal["database", "file", "url"] = "database"
    location: str | None = None  # storage "file": the blob's path; "url": its URL (fsspec's)
    stored_size: Whole | None = Field(default=None, ge=0)  # the bytes stored; None: put before it was kept
    original_media_type: str | None = None  # re-encoded: the media type put; None: stored as put
    created_at: Time = Field(default_factory=utcnow)
    touched_at: Time | None = None  # last put or link (gc's grace period counts from it)

    @property
    def content_size(self) -> int:
        """The bytes ``open`` and ``read`` give: the stored form's when re-encoded, else ``size``."""
        return self.stored_size if self.original_media_type is not None and self.stored_size is not None else self.size


class ArtifactChunk(Record):
    """One piece of an artifact stored in the database (``seq`` from 0); read back in order."""

    project_id: str = ""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    seq: Int32 = Field(ge=0)
    data: bytes


class ArtifactLink(_Created):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    owner_type: Literal["turn", "step", "rollout", "checkpoint"]
    owner_id: Id
    role: Literal["screenshot", "before", "after", "attachment"] = "attachment"


class TurnArtifact(Record):
    """An artifact linked from a turn, as a trajectory lists it: what it is and its role, not its content."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Literal["screenshot", "before", "after", "attachment"]
    media_type: str
    size: Whole = Field(ge=0)
    compression: Literal["gzip", "zstd"] | None = None


class TrajectoryTurn(Turn):
    """A turn with the artifacts linked from it (oldest link first)."""

    artifacts: list[TurnArtifact] = Field(default_factory=list)


class Trajectory(Record):
    """A rollout read whole (``store.trajectory``): its turns in order with their artifacts, and the spans of
    one attempt (the latest by default; None, and no spans, before its first)."""

    rollout: Rollout
    attempt: Attempt | None
    turns: list[TrajectoryTurn]
    spans: list[Span]


class Script(_Updated):
    """A task's actions as one successful rollout took them, to replay; versions per (task, name)."""

    task_id: str | None = None
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    actions: list[JsonValue] = Field(default_factory=list)
    total_steps: Int32 = Field(default=0, ge=0)
    source_rollout_id: str | None = None
    version: Int32 = Field(default=1, ge=1)
    checksum: str = Field(pattern=r"^[0-9a-f]{64}$")
    active: Flag = True
    device: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    replay_count: Int32 = Field(default=0, ge=0)
    success_count: Int32 = Field(default=0, ge=0)
    mean_execution_seconds: float | None = None
    metadata: JsonDict = Field(default_factory=dict)

    @property
    def success_rate(self) -> float | None:
        """The share of its replays that succeeded; None before the first."""
        return self.success_count / self.replay_count if self.replay_count else None


Name = Annotated[str, Field(min_length=1, max_length=100)]  # a domain, an action, a policy version
Number = Annotated[float, Field(allow_inf_nan=False), BeforeValidator(python_scalar)]  # a finite float (or int)


class DecisionContent(Record):
    """What a policy decided in a domain, and why: what ``store.decisions.log`` and a ``DecisionLogger`` take."""

    domain: Name = "memory"
    subject_id: Id
    action: Name
    reason: str | None = None
    state: JsonValue = None
    context: JsonValue = None
    policy_version: Name | None = None
    propensity: Annotated[Number, Field(gt=0, le=1)] | None = None


class Decision(_Created, DecisionContent):
    """One decision of a policy in a domain (the flywheel's why-log): the action taken on a subject, why, the state
    it saw, and the probability the policy gave that action; the reward rules fill reward, outcome and
    evaluated_at. ``created_at`` is when it was taken."""

    reward: Number | None = None
    outcome: JsonValue = None
    evaluated_at: Time | None = None


class SignalContent(Record):
    """An outcome of a domain's subject: what ``store.signals.add`` and a ``DecisionLogger`` take."""

    domain: Name = "memory"
    subject_id: Id
    kind: Annotated[str, Field(min_length=1, max_length=32)]
    value: Number = 1.0
    data: JsonValue = None


class Signal(SignalContent):
    """An outcome of a domain's subject (a hit, a new quality score, feedback): ``time`` is when it happened,
    ``recorded_at`` when the store got it."""

    id: Id = Field(default_factory=new_id)
    project_id: str = ""
    time: Time = Field(default_factory=utcnow)
    recorded_at: Time = Field(default_factory=utcnow)


class Sample(_Created):
    source: str
    source_id: str | None = None
    state: JsonValue = None
    action: JsonValue = None
    reward: float | None = None
    next_state: JsonValue = None
    done: Flag = False
    dataset: str | None = None
    propensity: float | None = Field(None, gt=0, le=1)  # the probability the logging policy gave the action
    policy_version: str | None = None
    decided_at: Time | None = None  # when the decision the sample comes from was taken


class ModelCheckpoint(_Created):
    """A saved policy or model (weights at a URI, with its metrics); not a job's checkpoint (a save point)."""

    run_id: str | None = None
    step: Int32 | None = None
    name: str
    uri: str
    metrics: JsonDict = Field(default_factory=dict)
    latest: Flag = True
    version: Int32 = Field(1, ge=1)  # counts up per name
    active: Flag = False  # the version in use (``store.checkpoints.activate``): one per name at most
    sha256: str | None = None  # the artifact holding the weights, when the store keeps them
    activated_at: Time | None = None
    window_start: Time | None = None  # the data it was trained on: from ...
    window_end: Time | None = None  # ... to


class ApiToken(Record):
    """An API token of a project (``store.tokens``). The secret is shown once, when it is made; the database
    keeps only its SHA-256 (``token_hash``), which records read back do not carry and no output shows."""

    id: Id = Field(default_factory=new_id)
    project_id: str = ""
    name: str = Field("", max_length=200)
    token_hash: str | None = Field(None, exclude=True, repr=False)
    role: Choice[TokenRole] = TokenRole.READER
    created_at: Time = Field(default_factory=utcnow)
    expires_at: Time | None = None
    last_used_at: Time | None = None
    revoked_at: Time | None = None


class IssuedToken(Record):
    """A token just made: its record, and the secret to hand to its user; the secret is not kept anywhere."""

    token: ApiToken
    secret: str


class TokenGrant(Record):
    """What a valid secret grants: its token, and the name of the token's project."""

    token: ApiToken
    project: str


class Claim(Record):
    """A rollout together with the attempt just created for it (by dequeue, start or a manual attempt)."""

    rollout: Rollout
    attempt: Attempt


class RunStats(Record):
    """How a run did on a set of tasks: finished rollouts, success rate, mean reward and mean turns."""

    rollouts: Whole
    success_rate: float | None
    reward_mean: float | None
    turns_mean: float | None


class SummaryRow(Record):
    """The rollouts of one task or one day (``store.summary``): how many, how many finished, and of those the
    success rate (by their success flag; without one, whether they succeeded), mean turns and mean duration;
    the rollouts' errors and their turns' errors counted by type (an error's text up to its first colon), most
    frequent first."""

    key: str  # the task's external id ("(no task)" for rollouts without one), or the day (YYYY-MM-DD, UTC)
    task_id: str | None = None
    rollouts: Whole
    finished: Whole
    success_rate: float | None
    turns_mean: float | None
    duration_mean_seconds: float | None
    errors: dict[str, int]
    turn_errors: dict[str, int] = Field(default_factory=dict)  # errors of the rollouts' turns (a GUI agent's steps)


class ComparisonRow(Record):
    """One task (or, with ``task_id`` None, all tasks) in two runs, and B minus A."""

    task_id: str | None
    task: str
    a: RunStats | None
    b: RunStats | None
    success_rate_delta: float | None
    reward_mean_delta: float | None
    turns_mean_delta: float | None


class RunComparison(Record):
    run_a: Run
    run_b: Run
    overall: ComparisonRow
    tasks: list[ComparisonRow]


class WorkerActivity(Record):
    """A worker, and when it was last heard of: its own heartbeat or a span of one of its attempts."""

    worker: Worker
    last_seen_at: Time | None


class QueueSummary(Record):
    """The rollout queue at a glance."""

    rollouts_by_status: dict[str, int]
    waiting: Whole  # queuing or requeuing
    oldest_queued_at: Time | None
    attempts_by_status: dict[str, int]  # attempts of unfinished rollouts
    workers: list[WorkerActivity]


# -- training data out (store.export) -------------------------------------------------------------------


class Selection(Record):
    """Which stored rollouts ``store.export`` turns into training data; every condition given must hold."""

    runs: list[str] | None = None  # run names or ids
    include_children: bool = False  # also the eval and baseline runs of those runs
    step_min: Int32 | None = None
    step_max: Int32 | None = None
    mode: list[Choice[RolloutMode]] | None = None
    status: list[Choice[RolloutStatus]] = Field(default_factory=lambda: [RolloutStatus.SUCCEEDED,
                                                                         RolloutStatus.FAILED])
    success_only: bool = False
    min_reward: float | None = None
    tasks: list[str] | None = None  # task external ids or ids
    dataset: str | None = None
    split: str | None = None
    tags: list[str] | None = None  # the task carries every one
    latest_attempt: bool = True  # the turns and spans of the rollout's latest attempt only
    per_task: Whole | None = Field(default=None, ge=1)  # at most this many rollouts (pairs) per task, first stored first
    dedupe: bool = False  # one row per identical trajectory
    min_margin: float = Field(default=0.0, ge=0)  # preference pairs: least reward difference (ties never pair)
    ended_before: Time | None = None  # rollouts that ended before this time (what ``rolloutdb archive`` takes)


class MessagePolicy(Record):
    """How a trajectory becomes chat messages (see README "Training data")."""

    observations: Literal["user", "tool"] = "user"
    thinking: Literal["inline", "drop"] = "inline"  # inline: <think>...</think> before the action
    spans: bool = True  # an LLM span's GenAI prompt/completion attributes, when the rollout has them
    system: str | None = None  # a system message first


class ExportSummary(Record):
    """What ``store.export`` wrote: rows, the rollouts they came from, and the rollouts left out, by reason."""

    format: str
    path: str
    rows: Whole
    rollouts: Whole  # rollouts that gave at least one row
    skipped: dict[str, int]
    images: Whole  # screenshots written beside the file or embedded


# -- bundles (store.export_bundle, store.import_bundle, store.archive) ------------------------------------------


class BundleSummary(Record):
    """What ``store.export_bundle`` wrote: the rows of each table, the artifacts' contents, the file's size."""

    path: str
    schema_revision: str
    rows: dict[str, int]  # by table, every table of a bundle named (0 when it has none)
    blobs: Whole  # artifact contents
    bytes: Whole  # of the bundle: the tar file, or the folder's files


class ImportSummary(Record):
    """What ``store.import_bundle`` did: by table, the rows it added and those it kept (present already)."""

    path: str
    inserted: dict[str, int]
    kept: dict[str, int]
    blobs: Whole  # artifact contents stored (not there before)


class ArchiveSummary(Record):
    """What ``store.archive`` did: the bundle it wrote and verified, then what the purge deleted."""

    bundle: BundleSummary
    cutoff: Time  # rollouts that ended before it were archived
    purged_rollouts: Whole
    purged_attempts: Whole
    purged_spans: Whole
    purged_turns: Whole


class Estimate(Record):
    """A policy's value estimated off-policy: the point estimate and its confidence interval."""

    value: float
    low: float
    high: float


class FlywheelReport(Record):
    """What one turn of the flywheel did (``store.run_flywheel``): decisions evaluated, samples built, and, when it
    trained, the candidate policy's off-policy estimates against the decisions logged, its checkpoint and whether
    it became the active policy (``verdict`` says why or why not)."""

    domain: str
    window_start: Time | None = None  # the decisions taken from ... (None: all)
    window_end: Time  # ... until
    evaluated: Whole = 0  # decisions whose reward was computed (again)
    samples: Whole = 0  # samples built (again)
    trained: bool = False
    training_samples: Whole = 0
    holdout_samples: Whole = 0  # samples the candidate was evaluated on, not trained on
    logging: Estimate | None = None  # what the logged decisions earned, per decision
    ips: Estimate | None = None  # the candidate, by inverse propensity scoring
    dr: Estimate | None = None  # the candidate, doubly robust
    incumbent: Estimate | None = None  # the policy active before, doubly robust on the same samples
    gain: Estimate | None = None  # dr - incumbent (with none: dr - logging), paired
    checkpoint_id: str | None = None
    version: int | None = None  # the candidate's version
    activated: bool = False
    policy_version: str | None = None  # the domain's active policy after the run
    verdict: str = ""
