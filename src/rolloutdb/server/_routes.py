"""The route table: every route of ``/api/v1`` and the Store call it makes. Paths name their parameters as
the call does, so a request maps onto the call one to one (see ``_operations``). Within a prefix, routes with
a fixed word (``/rollouts/dequeue``) come before those taking an id there."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, JsonValue
from pydantic import Strict as StrictType

from ..records import (ApiToken, Artifact, ArtifactLink, Attempt, Claim, Decision, Event, IssuedToken,
                       QueueSummary, Resources, Rollout, Run, RunComparison, RunEvent, Script, Span, Trajectory)
from ..records import FlywheelReport, ModelCheckpoint, Signal, StatusChange, SummaryRow, Task, Validator, Worker
from ..store.artifacts import GC_GRACE, GcResult
from ..store.attempts import Attempts
from ..store.catalog import Tasks, Validators
from ..store.checkpoints import CheckpointRows
from ..store.advisor import Advice
from ..store.decisions import DecisionRows, SignalRows
from ..store.domains import Domain
from ..store.groups import Groups
from ..store.events import MAX_READ
from ..store.flywheel import DEFAULT_ALPHA, DEFAULT_BOOTSTRAP, DEFAULT_CONFIDENCE, DEFAULT_EPSILON, DEFAULT_HOLDOUT
from ..store.jobs import DEFAULT_STALE_AFTER, JobStart, JobStatus
from ..store.recording import RecordingResult
from ..store.resources import Resources as ResourcesArea
from ..store.rewards import DEFAULT_BATCH, EvaluationResult, RewardPeriod, RewardStats
from ..store.retention import PurgeResult
from ..store.rollouts import MAX_CLAIM, Rollouts
from ..store.base import DEFAULT_LIMIT
from ..store.runs import Runs
from ..store.samples import SampleRows
from ..store.scripts import ScriptRows
from ..store.spans import Spans
from ..store.steps import Steps
from ..store.tokens import ROLES, Tokens
from ..store.turns import Turns
from ..store.workers import Workers
from ._operations import (Operation, Page, Paging, RecordFields, SpanScope, Strict, StrictBody, editable_area,
                          input_model, readable_area, update_model)


def not_a_flag(value: Any) -> Any:
    """A value as it is, but for true or false, which a lenient duration would read as 1 or 0 seconds."""
    if isinstance(value, bool):
        raise ValueError(f"a number of seconds or an ISO 8601 duration, got {value}")
    return value


MAX_WAIT_SECONDS = 60.0  # a wait holds one of the server's threads: a client waiting longer asks again


class Reason(StrictBody):
    reason: str | None = Field(None, description="Why, for the log and the status history.")


class DequeueRequest(StrictBody):
    limit: int = Field(1, description=f"Claim at most this many rollouts (0 to {MAX_CLAIM:,}).")
    worker_id: str | None = None


class WaitRequest(StrictBody):
    rollout_ids: list[str]
    timeout: float = Field(MAX_WAIT_SECONDS, ge=0, le=MAX_WAIT_SECONDS,
                           description="Seconds to wait at most; the finished ones are returned then.")


class AttemptStart(StrictBody):
    worker_id: str | None = None


class ResourcesAdd(StrictBody):
    named_resources: dict[str, JsonValue]
    id: str | None = None


class ResourcesReplace(StrictBody):
    named_resources: dict[str, JsonValue]


class Heartbeat(StrictBody):
    stats: dict[str, JsonValue] | None = None


class JobLookup(Strict):
    stale_after: float = Field(DEFAULT_STALE_AFTER, description="Seconds without a heartbeat after which a running "
                                                                "job counts as stale.")


class LogWindow(Strict):
    limit: int = Field(100, description="The last this many rows, or this many after `since`.")
    since: int | None = Field(None, description="Only rows after this sequence number.")


class JobBegin(Strict):
    name: str
    stages: Any = Field(None, description="The plan: [[name, share], ...] with shares adding up to 100.")
    key: str | None = Field(None, description="One active job per key.")
    kind: str = "job"
    config: dict[str, JsonValue] | None = None
    stale_after: float = Field(DEFAULT_STALE_AFTER, description="Seconds without a heartbeat after which a running "
                                                                "job of this name is taken over.")


LogRow = input_model(RunEvent, "LogRow", frozenset({"time", "level", "stage", "progress", "message", "data"}),
                     base=Strict)


class JobWrite(Strict):
    progress: float
    stage: str | None = None
    message: str | None = None
    state: JsonValue = None
    logs: list[LogRow] = []
    status: str | None = Field(None, description="The job's end: completed, failed, paused or cancelled.")
    error: str | None = None


class EventWindow(Strict):
    after: int = Field(0, description="Only events after this id.")
    topics: list[str] | None = Field(None, description="Only events of these topics (repeat the parameter).")
    run: str | None = Field(None, description="Only events of this run: name or id.")
    limit: int = Field(100, description=f"At most this many events (1 to {MAX_READ:,}).")


class RunPair(Strict):
    a: str = Field(description="Run A: name or id.")
    b: str = Field(description="Run B: name or id; the differences are B - A.")


class ValidatorSave(StrictBody):
    name: str
    kind: str
    config: dict[str, JsonValue] | None = None


class ScriptRecord(StrictBody):
    rollout_id: str = Field(description="A successful rollout of a task: its turns' actions are the script's.")
    name: str
    description: str | None = None
    device: str | None = None
    model: str | None = None


class ScriptReport(StrictBody):
    success: bool
    seconds: float = Field(description="How long the replay took.")


class DecisionFields(RecordFields):
    """One decision of a batch, as ``store.decisions.log`` takes it (the store checks it: what is required, what is
    declared)."""

    domain: str | None = None
    subject_id: str | None = None
    action: str | None = None
    reason: str | None = None
    state: JsonValue = None
    context: JsonValue = None
    policy_version: str | None = None
    propensity: float | None = None
    at: datetime | None = Field(None, description="When it was taken (default: now).")
    id: str | None = Field(None, description="Yours: logged again under it, it is stored once.")


class SignalFields(RecordFields):
    """One signal of a batch, as ``store.signals.add`` takes it (the store checks it)."""

    subject_id: str | None = None
    kind: str | None = None
    value: float | None = None
    at: datetime | None = Field(None, description="When it happened (default: now).")
    domain: str | None = None
    data: JsonValue = None
    id: str | None = Field(None, description="Yours: added again under it, it is stored once.")


LenientTime = Annotated[datetime | None, StrictType(False)]  # JSON spells a time as text


class DecisionLog(StrictBody):
    """``store.decisions.log``'s arguments."""

    domain: str
    subject_id: str
    action: str
    reason: str | None = None
    state: JsonValue = None
    context: JsonValue = None
    policy_version: str | None = None
    propensity: float | None = None
    at: LenientTime = Field(None, description="When it was taken (ISO 8601, with a zone; default: now).")
    id: str | None = Field(None, description="Yours: logged again under it, it is stored once.")


class SignalAdd(StrictBody):
    """``store.signals.add``'s arguments."""

    subject_id: str
    kind: str
    value: float = 1.0
    at: LenientTime = Field(None, description="When it happened (ISO 8601, with a zone; default: now).")
    domain: str = "memory"
    data: JsonValue = None
    id: str | None = Field(None, description="Yours: added again under it, it is stored once.")


class DomainDeclaration(StrictBody):
    domain: str
    actions: list[str]
    signals: list[str]


class DecisionListing(Strict):
    domain: str | None = None
    subject_id: str | None = None
    action: str | None = None
    policy_version: str | None = None
    evaluated: bool | None = Field(None, description="Only those evaluated (true) or not yet (false).")
    since: datetime | None = Field(None, description="Only those taken since then (ISO 8601, with a zone).")
    limit: int = Field(DEFAULT_LIMIT, description="At most this many decisions.")
    offset: int = 0


class RewardEvaluation(Strict):
    domain: str = "memory"
    rules: dict[str, JsonValue] | None = Field(None, description="Reward rules as a dict (a TOML file's tables); "
                                                                 "default: the built-in memory rules.")
    as_of: datetime | None = Field(None, description="Evaluate as of then (ISO 8601, with a zone); default: now.")
    batch_size: int = Field(DEFAULT_BATCH, description="Decisions per batch (a checkpoint after each).")
    job: str | None = Field(None, description="The job's name: a paused one is resumed; default: a new one.")
    force: bool = Field(False, description="Evaluate every due decision again, not only those with new signals.")


class FlywheelRun(StrictBody):
    domain: str = "memory"
    days: float | None = Field(None, description="Learn from the decisions taken in the last this many days "
                                                 "(default: all that are evaluated).")
    rules: dict[str, JsonValue] | None = Field(None, description="Reward rules as a dict (a TOML file's tables); "
                                                                 "default: the built-in memory rules.")
    train: bool = Field(False, description="Train a candidate, estimate it off-policy, checkpoint it, activate it "
                                           "if better.")
    epsilon: float = Field(DEFAULT_EPSILON, description="The candidate's exploration rate.")
    alpha: float = Field(DEFAULT_ALPHA, description="Ridge regularisation.")
    holdout: float = Field(DEFAULT_HOLDOUT, description="The share of samples kept to estimate the candidate on.")
    bootstrap: int = Field(DEFAULT_BOOTSTRAP, description="Bootstrap resamples of the confidence intervals.")
    confidence: float = Field(DEFAULT_CONFIDENCE, description="The intervals' confidence.")
    seed: int = Field(0, description="The holdout split and the resamples.")


class AdviceRequest(StrictBody):
    domain: str = "memory"
    state: dict[str, JsonValue] = Field(description="The state: its features, as the policy was trained on them.")


class PolicyListing(Strict):
    domain: str = "memory"
    limit: int = Field(DEFAULT_LIMIT, description="At most this many versions.")
    offset: int = 0


class PolicyDomain(Strict):
    domain: str = "memory"


class PolicyRollback(StrictBody):
    domain: str = "memory"


class PolicyVersion(StrictBody):
    domain: str = "memory"
    version: int


class RewardPeriods(Strict):
    domain: str = "memory"
    every: str = Field("day", description="day or hour (UTC).")
    since: datetime | None = Field(None, description="Only decisions taken since then (ISO 8601, with a zone).")


class RewardStatistics(Strict):
    domain: str = "memory"
    since: datetime | None = Field(None, description="Only decisions taken since then (ISO 8601, with a zone).")
    policy_version: str | None = None


class TaskKey(Strict):
    task: str = Field(description="The task: its id or external id.")


class ScriptListing(Strict):
    task: str | None = Field(None, description="Only this task's scripts: its id or external id.")
    name: str | None = None
    active: bool | None = Field(None, description="Only the active versions (true) or the others (false).")
    limit: int = Field(DEFAULT_LIMIT, description="At most this many scripts.")
    offset: int = 0


class SummaryRequest(Strict):
    by: str = Field("task", description="task or day.")
    run: str | None = Field(None, description="Only this run's rollouts: name or id.")
    since: datetime | None = Field(None, description="Only rollouts created since then (ISO 8601, with a zone).")


class TaskSet(Strict):
    dataset: str | None = None
    split: str | None = None
    tags: list[str] | None = Field(None, description="Only tasks carrying all of them (repeat the parameter).")


class SequenceIdRequest(StrictBody):
    pairs: list[Annotated[tuple[str, str], StrictType(False)]] = Field(  # JSON has no tuples: a pair is an array
        description="(rollout id, attempt id or latest), one id reserved for each.")


class UpdateReason(Strict):
    reason: str | None = Field(None, description="Why, for the status history.")


AttemptUpdateItem = input_model(  # as JSON gives it, for the store to check: what is left out does not change
    Attempt, "AttemptUpdateItem", Attempts.updatable | {"rollout_id"},
    attempt_id=(str, Field("latest", description="The attempt: its id, or latest.")))


class SpanOptions(Strict):
    unique_span_ids: bool = Field(False, description="Skip a span whose span_id its attempt has already, too.")


class RecordingOptions(Strict):
    heartbeat: bool = Field(True, description="Mark the runs written to as alive (false: a journal's replay).")


class PurgeRequest(StrictBody):
    older_than: Annotated[timedelta | None, StrictType(False), BeforeValidator(not_a_flag)] = Field(
        None, description="Seconds, or an ISO 8601 duration (P7D).")  # JSON has no durations: a number or a string
    keep_last: int | None = None
    dry_run: bool = False


class TokenCreate(Strict):
    role: str = Field(description=f"One of {', '.join(ROLES)}: each may do what the ones before it may.")
    name: str = Field("", description="What the token is for, to recognise it in listings.")
    expires: timedelta | datetime | None = Field(
        None, description="Valid for this long (seconds, or an ISO 8601 duration: P30D) or until this time; "
                          "null: until revoked.")


class TrajectoryOptions(Strict):
    attempt: str | None = Field(None, description="An attempt's id; default: the latest.")


class LinkOwner(Strict):
    """One of them: the turn, step or rollout whose links these are."""

    turn_id: str | None = None
    step_id: str | None = None
    rollout_id: str | None = None


class LinkRequest(StrictBody):
    role: str = Field("attachment", description="screenshot, before, after or attachment.")
    turn_id: str | None = Field(None, description="The owner: one of turn_id, step_id, rollout_id.")
    step_id: str | None = None
    rollout_id: str | None = None


class GcRequest(StrictBody):
    grace: float | Annotated[timedelta, StrictType(False), BeforeValidator(not_a_flag)] = Field(
        GC_GRACE, description="Keep what was put or linked this recently: seconds, or an ISO 8601 duration (PT1H).")


def for_admins(operations: list[Operation]) -> list[Operation]:
    return [dataclasses.replace(operation, role="admin") for operation in operations]


RolloutInput = input_model(Rollout, "RolloutInput")
TaskSave = input_model(Task, "TaskSave", validator=(ValidatorSave | None, Field(
    None, description="Saved by name as validators/save does; the task refers to it.")))
RolloutStart = input_model(Rollout, "RolloutStart", worker_id=(str | None, None))


class StartingWorker(Strict):
    worker_id: str | None = Field(None, description="The worker that runs the first attempts (busy with them).")
RUN_KEY = "{id:path}"  # run names may hold "/": "grpo/eval@19"
JOB = "/jobs/{name_or_id:path}"

ROUTES: list[Operation] = [
    *editable_area("runs", Runs, key=RUN_KEY),
    *editable_area("steps", Steps),
    *editable_area("groups", Groups),
    *editable_area("validators", Validators, extra=(
        Operation("POST", "/validators/save", "validators.save",
                  "The validator with this name, created on first save (later saves return it unchanged)", Validator,
                  body=ValidatorSave),
    )),
    *editable_area("tasks", Tasks, extra=(
        Operation("POST", "/tasks/save", "tasks.save",
                  "Save tasks idempotently by external id (with their validator); returns them as stored", list[Task],
                  body=list[TaskSave], body_argument="new_tasks"),
        Operation("GET", "/tasks/load", "tasks.load", "The stored task set of a dataset and split, with all the tags",
                  list[Task], query=TaskSet),
    )),
    *editable_area("rollouts", Rollouts, extra=(
        Operation("POST", "/rollouts/enqueue", "rollouts.enqueue_many",
                  "Enqueue rollouts, in this order, at the back of the queue", list[Rollout],
                  body=list[RolloutInput], body_argument="requests", status_code=201),
        Operation("POST", "/rollouts/dequeue", "rollouts.dequeue_many",
                  "Claim the rollouts that have waited longest, each exactly once, with a new attempt",
                  list[Claim], body=DequeueRequest),
        Operation("POST", "/rollouts/start", "rollouts.start",
                  "Create a rollout and its first attempt at once, bypassing the queue", Claim,
                  body=RolloutStart, status_code=201),
        Operation("POST", "/rollouts/start-many", "rollouts.start_many",
                  "Create rollouts and their first attempts at once, in this order, bypassing the queue", list[Claim],
                  query=StartingWorker, body=list[RolloutInput], body_argument="requests", status_code=201),
        Operation("POST", "/rollouts/wait", "rollouts.wait",
                  "Wait until the rollouts finish or the timeout passes; returns the finished ones",
                  list[Rollout], body=WaitRequest, role="reader"),
        Operation("POST", "/rollouts/{rollout_id}/cancel", "rollouts.cancel", "Cancel an unfinished rollout",
                  Rollout, body=Reason),
        Operation("POST", "/rollouts/{rollout_id}/attempts", "attempts.start",
                  "Start a new attempt of an unfinished rollout by hand", Claim, body=AttemptStart, status_code=201),
        Operation("GET", "/rollouts/{rollout_id}/attempts/latest", "attempts.latest",
                  "The rollout's latest attempt, or null before its first", Attempt | None),
        Operation("PATCH", "/rollouts/{rollout_id}/attempts/{attempt_id}", "attempts.update",
                  "Change an attempt (its id, or latest); the rollout follows its latest attempt", Attempt,
                  body=update_model(Attempts)),
        Operation("POST", "/rollouts/{rollout_id}/attempts/{attempt_id}/heartbeat", "attempts.heartbeat",
                  "Record that an attempt (its id, or latest) is alive", Attempt),
    )),
    Operation("POST", "/attempts/update-many", "attempts.update_many",
              "Change several attempts in one transaction, as one after another (all or none); the rollouts "
              "follow their latest attempts", list[Attempt], query=UpdateReason,
              body=list[AttemptUpdateItem], body_argument="updates"),
    *readable_area("attempts", Attempts),
    Operation("POST", "/spans", "spans.add_many",
              "Store spans; returns those that were new (with Prefer: return=minimal, only the fields the store made "
              "for each: id, project_id, attempt_id, sequence_id, created_at)", list[Span],
              query=SpanOptions, body=list[input_model(Span, "SpanInput")], body_argument="new_spans",
              status_code=201, made=("id", "project_id", "attempt_id", "sequence_id", "created_at")),
    Operation("POST", "/spans/sequence-ids", "spans.next_sequence_ids",
              "Reserve the next span sequence id of each (rollout, attempt)", list[int], body=SequenceIdRequest),
    Operation("POST", "/spans/sequence-ids/across-attempts", "spans.next_sequence_ids_across_attempts",
              "Reserve the next span sequence id of each rollout, counted across its attempts", list[int],
              body=SequenceIdRequest),
    *readable_area("spans", Spans, SpanScope),
    *editable_area("turns", Turns),
    Operation("GET", "/resources/latest", "resources.latest", "The latest resources, or null", Resources | None),
    *readable_area("resources", ResourcesArea),
    Operation("POST", "/resources", "resources.add", "Store a new snapshot of resources; it becomes the latest",
              Resources, body=ResourcesAdd, status_code=201),
    Operation("PUT", "/resources/{id}", "resources.update",
              "Replace a snapshot's resources: its version goes up by one and it becomes the latest", Resources,
              body=ResourcesReplace),
    *readable_area("workers", Workers),
    Operation("POST", "/workers/{worker_id}/heartbeat", "workers.heartbeat",
              "Record a worker's heartbeat, registering it on first contact", Worker, body=Heartbeat),
    Operation("PATCH", "/workers/{id}", "workers.update", "Change a worker's heartbeat stats or metadata", Worker,
              body=update_model(Workers)),
    Operation("GET", "/jobs", "jobs.query", "List jobs (every run is one), newest first", Page[Run], query=Paging,
              listing=Run),
    Operation("POST", "/jobs/start", "jobs.begin",
              "Start a job, or take over a paused or stale one to resume it (what jobs.start does first)", JobStart,
              body=JobBegin),
    Operation("POST", f"{JOB}/write", "jobs.write",
              "A running job's own write: progress, stage, state, log rows, or its end; returns pause, cancel or "
              "null", str | None, body=JobWrite),
    Operation("GET", f"{JOB}/logs", "jobs.logs", "A job's log rows, oldest first", list[RunEvent], query=LogWindow),
    Operation("POST", f"{JOB}/pause", "jobs.request_pause", "Ask a running job to pause at its next checkpoint", Run,
              body=Reason),
    Operation("POST", f"{JOB}/resume", "jobs.request_resume", "Mark a paused job for resuming", Run, body=Reason),
    Operation("POST", f"{JOB}/cancel", "jobs.request_cancel", "Cancel a job", Run, body=Reason),
    Operation("GET", JOB, "jobs.get", "A job: its run (status, stage, progress) and whether it is stale", JobStatus,
              query=JobLookup),
    Operation("DELETE", JOB, "jobs.delete", "Delete a job that is not running, with its log and history",
              status_code=204),
    Operation("GET", "/history/{entity_type}/{entity_id:path}", "history",
              "Every status change of a run, step, group, rollout or attempt, oldest first", list[StatusChange]),
    Operation("GET", "/compare", "compare_runs", "Run B against run A, per task and overall", RunComparison,
              query=RunPair),
    Operation("GET", "/events/latest", "events.latest_id", "The id of the project's newest event (0: none yet)",
              int),
    Operation("GET", "/events/past", "events.query",
              "Events after an id, oldest first (the live stream with resumption is GET /api/v1/events)",
              list[Event], query=EventWindow),
    Operation("POST", "/scripts/record", "scripts.record",
              "Record a successful rollout's actions as a new active version of a script of its task (the same "
              "actions again: that version)", Script, body=ScriptRecord, status_code=201),
    Operation("GET", "/scripts/best", "scripts.best",
              "The task's active script with the best success rate (the faster of equals), or null", Script | None,
              query=TaskKey),
    Operation("GET", "/scripts/list", "scripts.list", "Scripts, newest first, of a task, a name, active or not",
              list[Script], query=ScriptListing),
    Operation("POST", "/scripts/{script_id}/activate", "scripts.activate",
              "Make this version the active one of its task and name", Script),
    Operation("POST", "/scripts/{script_id}/report", "scripts.report",
              "Count one replay of the script: its success and how long it took", Script, body=ScriptReport),
    *readable_area("scripts", ScriptRows),
    Operation("POST", "/decisions/domains", "decisions.declare",
              "Declare a flywheel domain with its actions and signal kinds (or add some to one)", Domain,
              body=DomainDeclaration),
    Operation("GET", "/decisions/domains", "decisions.domains", "The declared flywheel domains", list[Domain]),
    Operation("POST", "/decisions/log", "decisions.log", "Log one decision of a policy (the why-log)", Decision,
              body=DecisionLog, status_code=201),
    Operation("POST", "/decisions/batch", "decisions.log_many",
              "Log decisions in one transaction; returns those that were new", list[Decision],
              body=list[DecisionFields], body_argument="decisions", status_code=201),
    Operation("GET", "/decisions/list", "decisions.list", "Decisions, newest first, of a domain, subject, action, "
              "policy version, evaluated or not", list[Decision], query=DecisionListing),
    *readable_area("decisions", DecisionRows),
    Operation("POST", "/signals/add", "signals.add", "Record one signal of a subject", Signal, body=SignalAdd,
              status_code=201),
    Operation("POST", "/signals/batch", "signals.add_many",
              "Record signals in one transaction; returns those that were new", list[Signal],
              body=list[SignalFields], body_argument="signals", status_code=201),
    *readable_area("signals", SignalRows),
    Operation("POST", "/rewards/evaluate", "rewards.evaluate",
              "Evaluate a domain's due decisions by reward rules, as a job (pause, resume, cancel through /jobs)",
              EvaluationResult, body=RewardEvaluation),
    Operation("GET", "/rewards/statistics", "rewards.statistics",
              "Rewards per action and policy version: count, mean, standard deviation, 95% confidence interval",
              list[RewardStats], query=RewardStatistics),
    Operation("GET", "/rewards/over-time", "rewards.over_time",
              "Per UTC day or hour and action: the decisions taken, those evaluated, their mean reward",
              list[RewardPeriod], query=RewardPeriods),
    Operation("POST", "/flywheel/run", "run_flywheel",
              "One turn of the learning flywheel: evaluate rewards, build samples, and with train: train a candidate "
              "policy, estimate it off-policy, checkpoint it, activate it only if better", FlywheelReport,
              body=FlywheelRun),
    Operation("POST", "/flywheel/advise", "advise",
              "The domain's active policy's advice in a state: the action, every action's probability, the drawn "
              "one's (log it with the decision) and the policy version", Advice, body=AdviceRequest),
    *readable_area("samples", SampleRows),
    *readable_area("checkpoints", CheckpointRows),
    Operation("GET", "/policies/list", "policies.list", "The versions of a domain's policy, newest first",
              list[ModelCheckpoint], query=PolicyListing),
    Operation("GET", "/policies/active", "policies.active", "The checkpoint of a domain's active policy, or null",
              ModelCheckpoint | None, query=PolicyDomain),
    Operation("GET", "/policies/latest", "policies.latest", "The checkpoint of a domain's newest policy, or null",
              ModelCheckpoint | None, query=PolicyDomain),
    Operation("POST", "/policies/activate", "policies.activate", "Make a version of a domain's policy the active one",
              ModelCheckpoint, body=PolicyVersion),
    Operation("POST", "/policies/rollback", "policies.rollback",
              "Activate again the version of a domain's policy in use before the active one", ModelCheckpoint,
              body=PolicyRollback),
    Operation("GET", "/summary", "summary",
              "Rollouts per task or per day: counts, success rate, mean turns and duration, errors by type",
              list[SummaryRow], query=SummaryRequest),
    Operation("GET", "/rollouts/{rollout_id}/trajectory", "trajectory",
              "The rollout whole: its turns in order with their artifacts (not their content), and an attempt's spans",
              Trajectory, query=TrajectoryOptions),
    # Content travels as a stream, apart from this table (see _artifacts): POST /artifacts, GET /artifacts/SHA/content.
    Operation("GET", "/artifacts/links", "artifacts.links", "The links from one turn, step or rollout, oldest first",
              list[ArtifactLink], query=LinkOwner),
    Operation("POST", "/artifacts/links", "artifacts.link_many",
              "Link many artifacts from turns, steps or rollouts in one transaction (each linked again: the link there "
              "is); a bad one links none", list[ArtifactLink], body=list[dict[str, JsonValue]], body_argument="links",
              status_code=201),
    Operation("POST", "/artifacts/gc", "artifacts.gc",
              "Delete dangling links, then the artifacts nothing links that were not put or linked within the grace",
              GcResult, body=GcRequest, role="admin"),
    Operation("GET", "/artifacts/{sha256}", "artifacts.get", "An artifact's record (its content: .../content)",
              Artifact),
    Operation("GET", "/artifacts/{sha256}/exists", "artifacts.exists", "Whether the project has this artifact", bool),
    Operation("POST", "/artifacts/{artifact}/links", "artifacts.link",
              "Link an artifact from a turn, step or rollout with a role (linked again: the link there is)",
              ArtifactLink, body=LinkRequest, status_code=201),
    Operation("GET", "/queue", "queue_summary", "The rollout queue at a glance", QueueSummary),
    Operation("POST", "/check-health", "check_health",
              "Mark overdue attempts timeout or unresponsive now; returns how many were marked", int),
    Operation("POST", "/recording", "recording.apply",
              "Apply a batch of the recorder's operations in one transaction; refused ones are reported, not applied",
              RecordingResult, query=RecordingOptions, body=list[dict[str, JsonValue]], body_argument="operations"),
    Operation("POST", "/purge", "purge", "Delete finished rollouts older than older_than or beyond keep_last",
              PurgeResult, body=PurgeRequest, role="admin"),
    # A project's admins manage its tokens; the answer to create holds the secret, which is shown only then.
    *for_admins([
        Operation("POST", "/tokens", "tokens.create", "Make an API token of the project; its secret is in this "
                  "answer only", IssuedToken, body=TokenCreate, status_code=201),
        Operation("POST", "/tokens/{id}/revoke", "tokens.revoke",
                  "Revoke an API token: it is refused from the next request on", ApiToken),
        *readable_area("tokens", Tokens),
    ]),
]
