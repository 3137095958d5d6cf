"""Recording: what a training loop reports — runs, steps, groups, rollouts, turns and their results —
applied in batches through the store's own operations, so that status rules, history and statistics are
the same whoever writes. The recorder's writer calls ``store.recording.apply``; so will the HTTP server.

Every operation can be applied twice with the same effect (a batch resent after a lost answer, a journal
replayed): rows are keyed by the ids the recorder chose, a run by its name and the recorder session that
holds it, a status that is already reached is no change. A batch is one transaction; when the database
refuses part of it, each operation is tried on its own and only the refused ones are reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, JsonValue, Strict, TypeAdapter, ValidationError, create_model, with_config
from pydantic_core import SchemaValidator
from typing_extensions import TypedDict
from sqlalchemy import Connection, Table, select
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

from .. import states
from ..errors import ConflictError, InvalidInputError, NotFoundError, RolloutDBError, StoreUnavailableError
from ..records import DecisionContent, Flag, JsonDict, Record, SignalContent, Time, TurnContent, Whole
from ..schema import groups, rollouts, steps, turns
from ..states import GroupStatus, RolloutStatus, RunStatus, StepStatus
from .artifacts import DEFAULT_QUALITY, ROLES, Screenshot
from .base import KEYS_PER_QUERY, validation_message
from .hooks import savepoint
from .jobs import DEFAULT_STALE_AFTER, FINISHED
from .runs import close_open_parts

if TYPE_CHECKING:
    from . import Store

ID = Annotated[str, Field(min_length=1, max_length=128)]
NAME = Annotated[str, Field(min_length=1, max_length=200)]
# The recorder stamps its operations itself, when the training loop makes them: a start or an end is the loop's
# time, not the writer's, which may write it seconds later. They reach ``apply`` as JSON (through its pipe and
# journal), so their times come as ISO text. An end without one (a journal of an older recorder) ends when written.
RecordedTime = Annotated[Time, Strict(False)]


class RunStart(Record):
    """Start recording run ``name``, or take it over (see ``Recording.apply``). The ``session`` (one per
    recorder) then holds the run: the other operations name it with the run, and are refused for a run their
    session does not hold (its start was refused, or another recorder took it over)."""

    op: Literal["run.start"] = "run.start"
    session: ID
    id: ID
    name: NAME
    kind: Literal["train", "eval", "baseline"] = "train"
    config: JsonDict = Field(default_factory=dict)
    total_steps: Whole | None = Field(default=None, ge=0)
    parent: NAME | None = None
    parent_step: Whole | None = Field(default=None, ge=0)
    resume: Flag | None = None
    stale_after: float = Field(default=DEFAULT_STALE_AFTER, gt=0)
    started_at: RecordedTime


class RunChange(Record):
    """Merge ``metadata`` into the run's; set its saved ``state`` when given."""

    op: Literal["run.update"] = "run.update"
    session: ID
    run: NAME
    metadata: JsonDict = Field(default_factory=dict)
    state: JsonValue = None


class RunEnd(Record):
    """End the run, or pause it (a pause requested from outside, or Ctrl-C). What it left open is closed."""

    op: Literal["run.end"] = "run.end"
    session: ID
    run: NAME
    status: Literal["completed", "failed", "cancelled", "paused"]
    error: str | None = None
    message: str | None = None
    ended_at: RecordedTime | None = None  # when the loop ended or paused it; what it left open ends then too


class StepStart(Record):
    op: Literal["step.start"] = "step.start"
    session: ID
    run: NAME
    number: Whole = Field(ge=0)
    started_at: RecordedTime


class StepChange(Record):
    """Merge ``metrics`` into the step's; change its status when given."""

    op: Literal["step.update"] = "step.update"
    session: ID
    run: NAME
    number: Whole = Field(ge=0)
    metrics: JsonDict = Field(default_factory=dict)
    status: Literal["completed", "failed"] | None = None
    ended_at: RecordedTime | None = None  # with a status


class GroupStart(Record):
    """A group of rollouts of one task: ``task_id``, or ``task``, an external id saved on first use."""

    op: Literal["group.start"] = "group.start"
    session: ID
    id: ID
    run: NAME
    step: Whole | None = Field(default=None, ge=0)
    source: Literal["step", "eval", "baseline"] = "step"
    task_id: ID | None = None
    task: NAME | None = None
    size: Whole | None = Field(default=None, ge=1)
    metadata: JsonDict = Field(default_factory=dict)
    created_at: RecordedTime


class RolloutStart(Record):
    op: Literal["rollout.start"] = "rollout.start"
    session: ID
    id: ID
    run: NAME
    group_id: ID | None = None
    step: Whole | None = Field(default=None, ge=0)
    task_id: ID | None = None
    task: NAME | None = None
    input: JsonValue = None
    mode: Literal["train", "val", "test"] | None = None
    metadata: JsonDict = Field(default_factory=dict)
    started_at: RecordedTime


class TurnRecorded(TurnContent):
    """One turn of a rollout (the fields of ``Turn``), and its screenshots by role (the content, as it is: they
    reach ``apply`` as Python bytes, from the recorder's frames), stored once each and linked from the turn."""

    op: Literal["turn"] = "turn"
    id: ID
    rollout_id: ID
    attempt_id: ID | None = None
    turn_index: Whole = Field(ge=0)
    created_at: RecordedTime
    screenshots: dict[Literal[ROLES], bytes] = Field(default_factory=dict)
    screenshot_reencode: Literal["webp"] | None = None  # store them re-encoded (artifacts.put's reencode)
    screenshot_quality: Whole = Field(default=DEFAULT_QUALITY, ge=0, le=100)


class RolloutEnd(Record):
    """A rollout's result: failed when it has an ``error``, succeeded otherwise."""

    op: Literal["rollout.end"] = "rollout.end"
    id: ID
    status: Literal["succeeded", "failed", "cancelled"]
    reward: float | None = None
    success: Flag | None = None
    validation: JsonValue = None
    metrics: JsonDict = Field(default_factory=dict)
    error: str | None = None
    ended_at: RecordedTime | None = None


class DecisionLogged(DecisionContent):
    """A decision of the flywheel's why-log (``at``: when it was taken), from a ``DecisionLogger``. Logged again
    under its id, it is stored once."""

    op: Literal["decision"] = "decision"
    id: ID
    at: RecordedTime


class SignalAdded(SignalContent):
    """A signal of a subject (``at``: when it happened), from a ``DecisionLogger``."""

    op: Literal["signal"] = "signal"
    id: ID
    at: RecordedTime


OPERATION_MODELS = (RunStart, RunChange, RunEnd, StepStart, StepChange, GroupStart, RolloutStart, TurnRecorded,
                    RolloutEnd, DecisionLogged, SignalAdded)
Operation = Annotated[Union[OPERATION_MODELS], Field(discriminator="op")]
OPERATION = TypeAdapter(Operation)
OPERATIONS = TypeAdapter(list[Operation])
# Applied kind by kind in this order, so that every row exists before what refers to it.
ORDER = ("run.start", "step.start", "group.start", "rollout.start", "turn", "rollout.end", "step.update",
         "run.update", "run.end", "decision", "signal")


_TYPED_CONFIG = ConfigDict(**{**Record.model_config, "extra": "ignore", "validate_default": False})


def _typed_fields(model: type[Record]) -> dict[str, Any]:
    """``model``'s fields other than its JSON values, as (annotation, field) pairs; a JSON value with a rule of its
    own (a turn's GUI action) is held to that rule, not walked as JSON."""
    fields = {name: (info.annotation, info) for name, info in model.model_fields.items()
              if info.annotation not in (JsonValue, JsonDict)}
    return fields | {name: (Annotated[(Any, *info.metadata)], None) for name, info in model.model_fields.items()
                     if info.annotation is JsonValue and info.metadata}


def _typed_part(model: type[Record]) -> SchemaValidator:
    """A validator of ``model``'s fields other than its JSON values, which lets the rest of a record by."""
    return create_model(f"{model.__name__}Typed", __config__=_TYPED_CONFIG, **_typed_fields(model)).__pydantic_validator__


_TYPED_PARTS = {model.model_fields["op"].default: _typed_part(model) for model in OPERATION_MODELS}
# A turn's content fields other than its JSON values, each checked only when given: what ``check_turn_content``
# checks on the recorder's hottest call. A TypedDict, not a model, and its fields' rules without their defaults:
# no instance to build, and a field not given is not even in the result (half the cost).
def _given_fields(model: type[Record]) -> SchemaValidator:
    """A validator of ``model``'s typed fields that checks only those given (see above)."""
    return TypeAdapter(with_config(_TYPED_CONFIG)(TypedDict(
        f"{model.__name__}Typed", {name: Annotated[(annotation, *info.metadata)] if info is not None and info.metadata
                                   else annotation for name, (annotation, info) in _typed_fields(model).items()},
        total=False))).validator


_TURN_CONTENT = _given_fields(TurnContent)
_GIVEN_FIELDS = {"decision": _given_fields(DecisionLogged), "signal": _given_fields(SignalAdded)}


def check_typed_fields(operation: Mapping[str, Any]) -> None:
    """InvalidInputError naming the field unless ``operation``'s values other than its JSON ones are what
    ``apply`` takes (their types and ranges): for the recorder, which refuses a value at the call. Its JSON
    values are left to ``storable.json_text``, which checks them as the recorder encodes them, at no extra cost."""
    try:
        _TYPED_PARTS[operation["op"]].validate_python(operation)
    except ValidationError as exc:
        raise InvalidInputError(f"cannot record this {operation['op']}: {validation_message(exc)}") from None


_SCREENSHOTS = TypeAdapter(TurnRecorded.model_fields["screenshots"].annotation, config=Record.model_config)


def check_screenshots(screenshots: Mapping[str, Any]) -> None:
    """InvalidInputError naming the role unless ``screenshots`` are what a turn's are (bytes by artifact role):
    for the recorder, which refuses them at the call."""
    try:
        _SCREENSHOTS.validate_python(screenshots)
    except ValidationError as exc:
        raise InvalidInputError(f"cannot record this turn: screenshots.{validation_message(exc)}") from None


def check_turn_content(turn: Mapping[str, Any]) -> None:
    """``check_typed_fields`` for a turn whose other fields the recorder set itself (its id, rollout, index and
    time): only the values the loop gave are checked, by ``TurnContent``'s rules."""
    try:
        _TURN_CONTENT.validate_python(turn)
    except ValidationError as exc:
        raise InvalidInputError(f"cannot record this turn: {validation_message(exc)}") from None


def check_given_fields(operation: Mapping[str, Any]) -> None:
    """``check_typed_fields`` for a decision or signal whose required fields the logger set itself: only the values
    given are checked (a decision logger's call, as hot as a turn)."""
    try:
        _GIVEN_FIELDS[operation["op"]].validate_python(operation)
    except ValidationError as exc:
        raise InvalidInputError(f"cannot record this {operation['op']}: {validation_message(exc)}") from None


class Rejection(Record):
    """An operation the store refused: its place in the batch, what it was, and why."""

    index: Whole
    op: str
    subject: str
    error: str
    message: str


class RecordingResult(Record):
    applied: Whole
    rejected: list[Rejection] = Field(default_factory=list)


def describe(operation: Any) -> str:
    """What an operation was about, for a person reading a rejection."""
    if isinstance(operation, RunStart):
        return f"run {operation.name!r}"
    if isinstance(operation, (RunChange, RunEnd)):
        return f"run {operation.run!r}"
    if isinstance(operation, (StepStart, StepChange)):
        return f"step {operation.number} of run {operation.run!r}"
    if isinstance(operation, GroupStart):
        task = f" (task {operation.task})" if operation.task else ""
        return f"group {operation.id} of run {operation.run!r}{task}"
    if isinstance(operation, (RolloutStart, RolloutEnd)):
        return f"rollout {operation.id}"
    if isinstance(operation, TurnRecorded):
        return f"turn {operation.turn_index} of rollout {operation.rollout_id}"
    if isinstance(operation, DecisionLogged):
        return f"{operation.domain} decision {operation.action!r} on {operation.subject_id!r}"
    if isinstance(operation, SignalAdded):
        return f"{operation.domain} signal {operation.kind!r} of {operation.subject_id!r}"
    if isinstance(operation, Mapping):
        return str(operation.get("op", "record"))
    return type(operation).__name__


REFUSALS = (RolloutDBError, IntegrityError, DataError, ProgrammingError)


class Recording:
    """``store.recording``: apply batches of recorded operations."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def apply(self, operations: Sequence[Operation | Mapping[str, Any]], *, heartbeat: bool = True) -> RecordingResult:
        """Apply a batch in one transaction; operations the store refuses are reported, not applied, and do
        not hold back the others (those that depend on a refused one are refused too, saying so).

        ``run.start`` creates the run, or continues it by the job's rules: a paused run is resumed, a
        running one whose process went quiet for ``stale_after`` seconds is taken over (what it left
        running is closed as interrupted), a finished or live one is refused. ``resume=True`` requires the
        run to exist, ``resume=False`` requires it not to.

        ``heartbeat`` marks the runs written to as alive; a replay of records kept by a recorder that is gone
        (its journal) passes False, so that its run can still be taken over."""
        valid, rejected = self._validate(operations)
        try:
            with self._store.writing() as connection:
                self._apply(connection, [operation for _, operation in valid], heartbeat)
        except StoreUnavailableError:
            raise  # the store away (its database, its blob folder) refuses nothing: the batch waits for it
        except REFUSALS:
            with self._store.writing() as connection:
                for index, operation in valid:
                    try:
                        with savepoint(connection):
                            self._apply(connection, [operation], heartbeat)
                    except StoreUnavailableError:
                        raise
                    except REFUSALS as exc:
                        rejected.append(_rejection(index, operation, exc))
        rejected.sort(key=lambda rejection: rejection.index)
        return RecordingResult(applied=len(operations) - len(rejected), rejected=rejected)

    # -- building blocks ------------------------------------------------------------------------------

    @staticmethod
    def _validate(operations: Sequence[Any]) -> tuple[list[tuple[int, Any]], list[Rejection]]:
        try:
            return list(enumerate(OPERATIONS.validate_python(list(operations)))), []
        except ValidationError:
            pass
        valid, rejected = [], []
        for index, raw in enumerate(operations):
            try:
                valid.append((index, OPERATION.validate_python(raw)))
            except ValidationError as exc:
                rejected.append(Rejection(index=index, op=str(raw.get("op", "?")) if isinstance(raw, Mapping) else "?",
                                          subject=describe(raw), error="InvalidInputError",
                                          message=validation_message(exc)))
        return valid, rejected

    def _apply(self, connection: Connection, operations: list[Any], heartbeat: bool) -> None:
        by_kind: dict[str, list[Any]] = {kind: [] for kind in ORDER}
        for operation in operations:
            by_kind[operation.op].append(operation)
        context = _Context(self._store, connection, heartbeat)
        for start in by_kind["run.start"]:
            self._start_run(context, start)
        for start in by_kind["step.start"]:
            self._start_step(context, start)
        self._insert_groups(context, by_kind["group.start"])
        self._insert_rollouts(context, by_kind["rollout.start"])
        self._insert_turns(context, by_kind["turn"])
        self._end_rollouts(context, by_kind["rollout.end"])
        for change in by_kind["step.update"]:
            self._change_step(context, change)
        for change in by_kind["run.update"]:
            self._change_run(context, change)
        for end in by_kind["run.end"]:
            self._end_run(context, end)
        if by_kind["decision"]:
            self._store.decisions.write_in(connection, [operation.model_dump(exclude={"op"})
                                                         for operation in by_kind["decision"]])
        if by_kind["signal"]:
            self._store.signals.write_in(connection, [operation.model_dump(exclude={"op"})
                                                       for operation in by_kind["signal"]])
        if not heartbeat:
            return
        now = self._store.now()
        for run in context.runs.values():  # a sign of life, for stale-run detection
            if run["status"] == RunStatus.RUNNING:
                self._store.runs.update_by_key_statement.run(connection, {"heartbeat_at": now, "b_key": run["id"],
                                                                 "b_project": self._store.project_id})

    def _start_run(self, context: _Context, start: RunStart) -> None:
        store, connection = self._store, context.connection
        existing = store.runs.find_row(connection, start.name)
        if existing is None:
            if start.resume:
                raise NotFoundError(f"no run named {start.name!r} in project {store.project!r} to resume")
            parent = context.run(start.parent, start.session)["id"] if start.parent else None
            record = store.runs.new_record({
                "id": start.id, "name": start.name, "kind": start.kind, "config": start.config,
                "total_steps": start.total_steps, "parent_run_id": parent, "parent_step": start.parent_step,
                "status": RunStatus.RUNNING, "created_at": start.started_at, "started_at": start.started_at,
                "heartbeat_at": store.now() if context.heartbeat else start.started_at,
                "owner": start.session})
            store.runs.insert_record(connection, record)
        elif existing["owner"] != start.session:  # the same session starting it again changes nothing
            if start.resume is False:
                raise ConflictError(f"a run named {start.name!r} already exists in project {store.project!r}; "
                                    "pick another name, or pass resume=True to record into it")
            changes: dict[str, Any] = {"owner": start.session}
            if start.total_steps is not None:
                changes["total_steps"] = start.total_steps
            store.jobs.take_over(connection, existing, changes, start.stale_after)
        context.runs.pop(start.name, None)

    def _start_step(self, context: _Context, start: StepStart) -> None:
        run = context.run(start.run, start.session)
        existing = context.step(run["id"], start.number)
        if existing is None:
            self._store.steps.insert_record(context.connection, self._store.steps.new_record({
                "run_id": run["id"], "number": start.number, "status": StepStatus.RUNNING,
                "created_at": start.started_at, "started_at": start.started_at}))
        elif existing["status"] == StepStatus.FAILED:  # cut short before a resume: it runs again
            self._store.steps.update_row(context.connection, existing["id"], {
                "status": StepStatus.RUNNING, "ended_at": None}, "run again", existing)

    def _insert_groups(self, context: _Context, starts: list[GroupStart]) -> None:
        new = context.unknown(groups, starts)
        records = [self._store.groups.new_record({
            "id": start.id, "run_id": context.run(start.run, start.session)["id"], "step": start.step,
            "source": start.source,
            "task_id": context.task(start.task_id, start.task), "size": start.size, "metadata": start.metadata,
            "status": GroupStatus.PENDING, "created_at": start.created_at}) for start in new]
        if records:
            self._store.groups.insert_records(context.connection, records)

    def _insert_rollouts(self, context: _Context, starts: list[RolloutStart]) -> None:
        new = context.unknown(rollouts, starts)
        # Running from the start: a recorded rollout is never waiting work in the queue.
        records = [self._store.rollouts.new_record({
            "id": start.id, "run_id": context.run(start.run, start.session)["id"], "group_id": start.group_id,
            "step": start.step, "task_id": context.task(start.task_id, start.task), "input": start.input,
            "mode": start.mode, "metadata": start.metadata, "status": RolloutStatus.RUNNING,
            "created_at": start.started_at, "started_at": start.started_at}) for start in new]
        if records:
            self._store.rollouts.insert_records(context.connection, records)

    def _insert_turns(self, context: _Context, recorded: list[TurnRecorded]) -> None:
        new = context.unknown(turns, recorded)
        if new:  # validated already, field for field a Turn: their values go in as they are
            project = self._store.project_id
            rows = [{**vars(turn), "project_id": project} for turn in new]
            for row in rows:
                del row["op"], row["screenshots"], row["screenshot_reencode"], row["screenshot_quality"]
            self._store.turns.insert_rows(context.connection, rows)
            self._store.artifacts.put_screenshots_in(context.connection, [
                Screenshot(content, turn.id, role, turn.screenshot_reencode, turn.screenshot_quality)
                for turn in new for role, content in turn.screenshots.items()])

    def _end_rollouts(self, context: _Context, ends: list[RolloutEnd]) -> None:
        """Rollouts' results: read, locked and written together (one statement each, not one per rollout)."""
        if len({end.id for end in ends}) < len(ends):  # the same rollout twice: one after the other
            for end in ends:
                self._end_rollouts(context, [end])
            return
        rows = context.rows(rollouts, [end.id for end in ends], for_update=True)
        updates = []
        for end in ends:
            if end.id not in rows:
                raise self._store.rollouts.not_found(end.id)
            if rows[end.id]["status"] != end.status:  # else applied before
                updates.append((rows[end.id], end.model_dump(exclude={"op", "id"} if end.ended_at
                                                             else {"op", "id", "ended_at"})))
        if updates:
            self._store.rollouts.update_rows(context.connection, updates, "finished")

    def _change_step(self, context: _Context, change: StepChange) -> None:
        run = context.run(change.run, change.session)
        step = context.step(run["id"], change.number, for_update=True)
        if step is None:
            raise NotFoundError(f"run {change.run!r} has no step {change.number}")
        changes: dict[str, Any] = {"metrics": {**step["metrics"], **change.metrics}}
        if change.status is not None and change.status != step["status"]:
            changes["status"] = change.status
            if change.ended_at is not None:
                changes["ended_at"] = change.ended_at
        self._store.steps.update_row(context.connection, step["id"], changes, None, step)

    def _change_run(self, context: _Context, change: RunChange) -> None:
        run = context.run(change.run, change.session, for_update=True)
        changes: dict[str, Any] = {"metadata": {**run["metadata"], **change.metadata}}
        if "state" in change.model_fields_set:
            changes["state"] = change.state
        context.runs[change.run] = self._store.runs.update_row(context.connection, run["id"], changes, None,
                                                            run).model_dump()

    def _end_run(self, context: _Context, end: RunEnd) -> None:
        run = context.run(end.run, end.session, for_update=True)
        if run["status"] == end.status:
            return  # applied before
        outcome = {"completed": GroupStatus.COMPLETED, "failed": GroupStatus.FAILED}.get(end.status,
                                                                                       GroupStatus.CANCELLED)
        close_open_parts(self._store, context.connection, run["id"], outcome,
                         end.message or f"run {end.status}", ended_at=end.ended_at)
        run = self._store.runs.fetch_row(context.connection, run["id"], for_update=True)  # progress refreshed
        changes: dict[str, Any] = {"status": end.status, "error": end.error, "control": None}
        if end.ended_at is not None and end.status in states.TERMINAL["run"]:  # a paused run has not ended
            changes["ended_at"] = end.ended_at
        if end.message is not None:
            changes["message"] = end.message
        if end.status == RunStatus.COMPLETED and not run["total_steps"]:
            changes["progress"] = 100.0  # nothing to count: done is all of it
        reason = end.message or ("recorder finished" if end.status in FINISHED else "paused")
        context.runs[end.run] = self._store.runs.update_row(context.connection, run["id"], changes, reason,
                                                         run).model_dump()
        if end.status == RunStatus.PAUSED or end.message:
            self._store.jobs.log_event(context.connection, run["id"], end.message or "paused", context.runs[end.run])


class _Context:
    """What one application of a batch looks up more than once: runs by name, tasks by external id."""

    def __init__(self, store: Store, connection: Connection, heartbeat: bool) -> None:
        self.store, self.connection, self.heartbeat = store, connection, heartbeat
        self.runs: dict[str, dict[str, Any]] = {}
        self._tasks: dict[str, str] = {}

    def run(self, name: str, session: str, *, for_update: bool = False) -> dict[str, Any]:
        """The run named ``name``, which ``session`` must hold."""
        if for_update or name not in self.runs:
            row = self.store.runs.find_row(self.connection, name, for_update=for_update)
            if row is None:
                raise NotFoundError(f"no run named {name!r} in project {self.store.project!r}: "
                                    "its run.start was not recorded")
            self.runs[name] = dict(row)
        if self.runs[name]["owner"] != session:
            raise ConflictError(f"run {name!r} is not recorded by this recorder: its start was refused, or another "
                                "recorder took the run over")
        return self.runs[name]

    def step(self, run_id: str, number: int, *, for_update: bool = False) -> Mapping[str, Any] | None:
        statement = select(steps).where(steps.c.project_id == self.store.project_id, steps.c.run_id == run_id,
                                        steps.c.number == number)
        return self.connection.execute(statement.with_for_update() if for_update else statement).mappings().first()

    def task(self, task_id: str | None, external_id: str | None) -> str | None:
        """The task's id: given, or found (saved on first use) by its external id."""
        if task_id is not None or external_id is None:
            return task_id
        if external_id not in self._tasks:
            self._tasks[external_id] = self.store.tasks.save_one(self.connection, {"external_id": external_id}).id
        return self._tasks[external_id]

    def unknown(self, table: Table, operations: list[Any]) -> list[Any]:
        """The operations whose row (by id) is not stored yet: what was applied before is not applied again."""
        known = {row["id"] for row in self._by_ids(table, [operation.id for operation in operations], [table.c.id])}
        return [operation for operation in operations if operation.id not in known]

    def rows(self, table: Table, ids: list[str], *, for_update: bool = False) -> dict[str, Mapping[str, Any]]:
        """The stored rows with these ids, by id."""
        return {row["id"]: row for row in self._by_ids(table, ids, list(table.c), for_update)}

    def _by_ids(self, table: Table, ids: list[str], columns: list[Any], for_update: bool = False) -> list[Any]:
        found: list[Any] = []
        for start in range(0, len(ids), KEYS_PER_QUERY):
            statement = select(*columns).where(table.c.project_id == self.store.project_id,
                                               table.c.id.in_(ids[start:start + KEYS_PER_QUERY]))
            found += self.connection.execute(statement.with_for_update() if for_update else statement).mappings()
        return found


def first_line(exc: BaseException) -> str:
    """The first line of what an error says (the driver's own message for a database error)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]


def _rejection(index: int, operation: Any, exc: Exception) -> Rejection:
    message = first_line(exc)
    error = (type(exc).__name__ if isinstance(exc, RolloutDBError)
             else "ConflictError" if isinstance(exc, IntegrityError) else "InvalidInputError")
    return Rejection(index=index, op=operation.op, subject=describe(operation), error=error, message=message)


__all__ = ["GroupStart", "check_given_fields", "check_screenshots", "check_turn_content", "check_typed_fields", "Operation", "RecordingResult", "Recording", "Rejection", "RolloutEnd", "RolloutStart",
           "RunChange", "RunEnd", "RunStart", "StepChange", "StepStart", "TurnRecorded", "DecisionLogged", "SignalAdded"]
