"""Long jobs: stages, progress, logs, and pause / resume / cancel requested from any process.

A job is a run. Its code holds a ``Job`` (``with store.jobs.start(name, stages=...) as job``) and calls
``job.checkpoint()`` now and then; pause and cancel are requests stored in the database that the job
sees at its next checkpoint, after saving its state. Starting a paused job again resumes it with the
stage and state it saved. Progress and log writes are coalesced, so checkpoints are cheap.
"""

from __future__ import annotations

import asyncio
import math
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, select

from ..errors import ConflictError, InvalidInputError, InvalidTransitionError, JobCancelled, JobPaused
from ..records import Record, Run, RunEvent, utcnow
from ..schema import run_events, runs, status_changes
from ..storable import require_storable
from ..states import GroupStatus
from ..states import RunStatus as R
from ._bulk import bulk_insert
from ._feed import publish
from .base import MAX_OFFSET, as_object, build_records, check_key, mappings, seconds, whole_number
from .hooks import savepoint
from .runs import close_open_parts

if TYPE_CHECKING:
    from . import Store

ACTIVE = (R.RUNNING, R.PAUSED)
FINISHED = (R.COMPLETED, R.FAILED, R.CANCELLED)
DEFAULT_STALE_AFTER = 60.0


class JobStatus(Record):
    """A job as seen from outside: the run, and whether its process has gone quiet."""

    run: Run
    stale: bool


class JobStart(Record):
    """What starting a job gives its code: the run as it starts (its saved stage and state when resumed)."""

    run: Run
    resumed: bool


def stage_plan(stages: Iterable[tuple[str, float]] | Mapping[str, float] | None) -> list[dict[str, Any]]:
    """``[("init", 10), ("ddl", 30), ...]`` (shares adding up to 100) as ``[{name, start, end}, ...]``."""
    if stages is None:
        return []
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Iterable):
        raise InvalidInputError(f"stages are (name, share) pairs or a mapping of names to shares, got {stages!r:.80}")
    items = list(stages.items() if isinstance(stages, Mapping) else stages)
    plan, start = [], 0.0
    for item in items:
        pair = (item.get("name"), item.get("share")) if isinstance(item, Mapping) else item
        name, share = pair if isinstance(pair, (tuple, list)) and len(pair) == 2 else (None, None)
        if (not isinstance(name, str) or not name or not isinstance(share, (int, float)) or isinstance(share, bool)
                or not 0 < share < math.inf):
            raise InvalidInputError(f"each stage needs a name and a positive share of 100, got {item!r:.80}")
        plan.append({"name": name, "start": start, "end": start + float(share)})
        start += float(share)
    if abs(start - 100.0) > 1e-6:
        raise InvalidInputError(f"stage shares must add up to 100, they add up to {start:g}")
    if len({stage["name"] for stage in plan}) != len(plan):
        raise InvalidInputError("stage names must be unique")
    return plan


class Jobs:
    """The control side: look at jobs and ask them to pause, resume or cancel, from any process."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, name_or_id: str, *, stale_after: float = DEFAULT_STALE_AFTER) -> JobStatus:
        stale_after = seconds("stale_after", stale_after)
        run = self._store.runs.get(name_or_id)
        return JobStatus(run=run, stale=self._is_stale(run.status, run.heartbeat_at, stale_after))

    def query(self, **filters: Any) -> list[Run]:
        """Jobs and training runs (any run) with the usual filters, newest first by default."""
        filters.setdefault("sort", "created_at")
        filters.setdefault("order", "desc")
        return self._store.runs.query(**filters)

    def count(self, **filters: Any) -> int:
        """How many jobs and runs match (the filters of ``query``)."""
        return self._store.runs.count(**filters)

    def request_pause(self, name_or_id: str, reason: str | None = None) -> Run:
        """Ask a running job to pause at its next checkpoint. A job whose process is gone (stale)
        is paused at once: nobody would see the request."""
        with self._store.writing() as connection:
            run = self._store.runs.fetch_row(connection, name_or_id, for_update=True)
            self._require(run, (R.RUNNING,), "pause", "only a running job can be paused")
            if self._is_stale(run["status"], run["heartbeat_at"], DEFAULT_STALE_AFTER):
                return self._end(connection, run, R.PAUSED, reason or "paused while stale", "paused (stale job)")
            return self._request(connection, run, "pause", reason)

    def request_resume(self, name_or_id: str, reason: str | None = None) -> Run:
        """Mark a paused job for resuming: starting its code again (``store.jobs.start(name)``) continues it
        from its saved stage and state. ``jobs.query(control="resume")`` lists the jobs waiting for that."""
        with self._store.writing() as connection:
            run = self._store.runs.fetch_row(connection, name_or_id, for_update=True)
            self._require(run, (R.PAUSED,), "resume", "only a paused job can be resumed")
            return self._request(connection, run, "resume", reason)

    def request_cancel(self, name_or_id: str, reason: str | None = None) -> Run:
        """Cancel a job: a running one stops at its next checkpoint, a pending or paused one at once."""
        with self._store.writing() as connection:
            run = self._store.runs.fetch_row(connection, name_or_id, for_update=True)
            self._require(run, (R.PENDING, R.RUNNING, R.PAUSED), "cancel", "it has already ended")
            if run["status"] != R.RUNNING or self._is_stale(run["status"], run["heartbeat_at"], DEFAULT_STALE_AFTER):
                return self._end(connection, run, R.CANCELLED, reason or "cancelled", "cancelled")
            return self._request(connection, run, "cancel", reason)

    def delete(self, name_or_id: str) -> None:
        """Delete a job that is not running, with its log, steps and history."""
        with self._store.writing() as connection:
            run = self._store.runs.fetch_row(connection, name_or_id, for_update=True)
            if run["status"] == R.RUNNING:
                raise InvalidTransitionError(
                    f"job {run['name']!r} is running: cancel it first (`rolloutdb jobs cancel {run['name']}`)")
            connection.execute(delete(status_changes).where(status_changes.c.project_id == self._store.project_id,
                                                            status_changes.c.entity_type == "run",
                                                            status_changes.c.entity_id == run["id"]))
            connection.execute(delete(runs).where(runs.c.id == run["id"]))

    def logs(self, name_or_id: str, *, limit: int = 100, since: int | None = None) -> list[RunEvent]:
        """The job's log, oldest first: the last ``limit`` rows, or those after sequence ``since``."""
        whole_number("limit", limit, 1, 10_000)
        if since is not None:
            whole_number("since", since, 0, MAX_OFFSET)
        run = self._store.runs.get(name_or_id)
        statement = select(run_events).where(run_events.c.run_id == run.id)
        if since is not None:
            statement = statement.where(run_events.c.seq > since).order_by(run_events.c.seq).limit(limit)
        else:
            statement = statement.order_by(run_events.c.seq.desc()).limit(limit)
        with self._store.reading() as connection:
            rows = connection.execute(statement).mappings().all()
        return sorted((RunEvent.model_validate(dict(row)) for row in rows), key=lambda event: event.seq)

    # -- building blocks ------------------------------------------------------------------------------

    def _is_stale(self, status: str, heartbeat: datetime | None, stale_after: float) -> bool:
        return status == R.RUNNING and (heartbeat is None
                                        or self._store.now() - heartbeat > timedelta(seconds=stale_after))

    @staticmethod
    def _require(run: Mapping[str, Any], statuses: tuple[str, ...], action: str, why: str) -> None:
        if run["status"] not in statuses:
            raise InvalidTransitionError(f"cannot {action} job {run['name']!r}: it is {run['status']}; {why}")

    def _request(self, connection: Connection, run: Mapping[str, Any], control: str, reason: str | None) -> Run:
        self.log_event(connection, run["id"], f"{control} requested" + (f": {reason}" if reason else ""), run)
        return self._store.runs.update_row(connection, run["id"], {"control": control}, None, run)

    def _end(self, connection: Connection, run: Mapping[str, Any], status: str, reason: str, message: str) -> Run:
        self.log_event(connection, run["id"], message, run)
        return self._store.runs.update_row(connection, run["id"], {"status": status, "control": None}, reason, run)

    def log_event(self, connection: Connection, run_id: str, message: str | None, run: Mapping[str, Any]) -> None:
        self._insert_log(connection, run_id, [{"time": self._store.now(), "level": "info", "stage": run["stage"],
                                               "progress": run["progress"], "message": message, "data": None}])

    def _insert_log(self, connection: Connection, run_id: str, lines: list[dict[str, Any]]) -> None:
        """Rows of a job's log (time, level, stage, progress, message, data), and their events in the feed."""
        bulk_insert(connection, run_events, [{"project_id": self._store.project_id, "run_id": run_id, **line}
                                             for line in lines])
        publish(connection, self._store.project_id, [
            {"topic": "log", "run_id": run_id, "entity_id": run_id, "time": line["time"],
             "data": {name: value for name, value in line.items() if name != "time"}} for line in lines])

    def start(self, name: str, *, stages: Any = None, key: str | None = None, kind: str = "job",
              config: Mapping[str, Any] | None = None, stale_after: float = DEFAULT_STALE_AFTER,
              write_interval: float = 0.25) -> Job:
        """Start the job ``name``, or resume it if it is paused (or running but silent for longer than
        ``stale_after`` seconds: its process died). ``stages`` is the plan, ``[("init", 10), ("load", 60),
        ("index", 30)]`` with shares adding up to 100; ``key`` allows one active job per key.
        Use it as a context manager: ``with store.jobs.start(name, stages=...) as job``; see ``Job``."""
        write_interval = seconds("write_interval", write_interval)
        started = self.begin(name, stages=stages, key=key, kind=kind, config=config, stale_after=stale_after)
        return Job(self, started.run, resumed=started.resumed, write_interval=write_interval)

    def begin(self, name: str, *, stages: Any = None, key: str | None = None, kind: str = "job",
              config: Mapping[str, Any] | None = None, stale_after: float = DEFAULT_STALE_AFTER) -> JobStart:
        """``start``'s write: the job's run created, or taken over to be resumed (a job's code uses ``start``)."""
        check_key("job", name, called="name")  # looked up before its record is made, which would check it
        plan = stage_plan(stages)
        stale_after = seconds("stale_after", stale_after)
        with self._store.writing() as connection:
            run = self._store.runs.find_row(connection, name)
            now = self._store.now()
            if run is None:
                record = self._store.runs.new_record({
                    "name": name, "kind": kind, "config": {} if config is None else as_object(config), "stages": plan,
                    "concurrency_key": key, "status": R.RUNNING, "started_at": now, "heartbeat_at": now})
                self._insert_claiming_key(connection, record)
                run = self._store.runs.fetch_row(connection, record.id)
                self.log_event(connection, run["id"], "started", run)
                resumed = False
            else:
                run = self._resume(connection, run, plan, key, stale_after)
                resumed = True
        return JobStart(run=Run.model_validate(dict(run)), resumed=resumed)

    def write(self, name_or_id: str, *, progress: float, stage: str | None = None, message: str | None = None,
              state: Any = None, logs: Sequence[Mapping[str, Any]] = (), status: str | None = None,
              error: str | None = None) -> str | None:
        """A running job's own write, in one transaction (what ``Job`` sends, coalesced): its progress, stage,
        message, state and heartbeat, rows for its log (each with its time, level, message and optionally data,
        stage and progress), and with ``status`` its end (completed, failed, paused or cancelled; ``error``
        for a failure). Returns what the job must do at this checkpoint: ``"pause"``, ``"cancel"`` or None.
        A job another process has ended already (taken for stale) keeps its end: only the log is written."""
        if status is not None and status not in (*FINISHED, R.PAUSED):
            raise InvalidInputError(f"a job ends as {', '.join((*FINISHED, R.PAUSED))}, not {status!r:.80}")
        lines = [row.model_dump(exclude={"seq", "project_id", "run_id"}) for row in build_records(
            RunEvent, [{"run_id": "", **line} for line in mappings("log row", logs)], "log row")]
        changes: dict[str, Any] = {"progress": progress, "stage": stage, "message": message,
                                   "heartbeat_at": self._store.now(), "state": state}
        if status is not None:
            changes.update(status=status, control=None, **({"error": error} if error is not None else {}))
        with self._store.writing() as connection:
            run = self._store.runs.fetch_row(connection, name_or_id, for_update=True)
            if lines:
                self._insert_log(connection, run["id"], lines)
            if status is None:
                # A request, or a pause/cancel another process already applied (it took the job for stale).
                control = {R.PAUSED: "pause", R.CANCELLED: "cancel"}.get(run["status"], run["control"])
                if run["status"] != R.RUNNING:
                    return control
            updated = self._store.runs.update_row(connection, run["id"], changes, message if status else None, run)
            publish(connection, self._store.project_id, [{
                "topic": "job", "run_id": run["id"], "entity_id": run["id"], "time": updated.updated_at,
                "data": {"progress": updated.progress, "stage": updated.stage, "message": updated.message,
                         "status": updated.status}}])
        return None if status is not None else control

    def start_async(self, name: str, **options: Any) -> AsyncJob:
        """``start()`` for asyncio code: ``async with store.jobs.start_async(name, ...) as job``."""
        return AsyncJob(self, name, options)

    def _insert_claiming_key(self, connection: Connection, record: Run) -> None:
        try:
            with savepoint(connection):
                self._store.runs.insert_record(connection, record)
        except ConflictError:
            holder = connection.execute(select(runs.c.name, runs.c.status).where(
                runs.c.project_id == self._store.project_id, runs.c.concurrency_key == record.concurrency_key,
                runs.c.status.in_(ACTIVE))).first()
            if holder is None:
                raise
            raise ConflictError(
                f"job {holder.name!r} is {holder.status} with concurrency key {record.concurrency_key!r}: "
                "only one job per key can be active; wait for it, or cancel it") from None

    def _resume(self, connection: Connection, run: Mapping[str, Any], plan: list[dict[str, Any]],
                key: str | None, stale_after: float) -> Mapping[str, Any]:
        changes: dict[str, Any] = {}
        if plan and not run["stages"]:
            changes["stages"] = plan
        if key is not None and run["concurrency_key"] is None:
            changes["concurrency_key"] = key
        return self.take_over(connection, run, changes, stale_after)

    def take_over(self, connection: Connection, run: Mapping[str, Any], changes: Mapping[str, Any],
                   stale_after: float) -> Mapping[str, Any]:
        """Continue an existing run in this process (a job started again, a recorder with the run's name):
        a pending or paused run starts, a running one whose process went quiet for ``stale_after`` seconds
        is taken over (what it left running is closed as interrupted); a finished or live run is refused."""
        status = run["status"]
        if status in FINISHED:
            raise ConflictError(f"job {run['name']!r} has already {'ended as ' + status}: start it under a new "
                                f"name, or delete it first (`rolloutdb jobs delete {run['name']}` is not undoable)")
        if status == R.RUNNING and not self._is_stale(status, run["heartbeat_at"], stale_after):
            age = (self._store.now() - run["heartbeat_at"]).total_seconds()
            raise ConflictError(f"job {run['name']!r} is already running (last heartbeat {age:.0f}s ago)")
        message = {R.PENDING: "started", R.PAUSED: "resumed", R.RUNNING: "resumed after its process went quiet"}
        if status == R.RUNNING:
            close_open_parts(self._store, connection, run["id"], GroupStatus.CANCELLED,
                             "interrupted: the process recording it went quiet")
        changes = {"control": None, "heartbeat_at": self._store.now(), **changes}
        if status != R.RUNNING:
            changes["status"] = R.RUNNING
        updated = self._store.runs.update_row(connection, run["id"], changes, message[status])
        self.log_event(connection, run["id"], message[status], run)
        return updated.model_dump()


class Job:
    """The job's side: stages, progress, checkpoints. Use as a context manager (``store.jobs.start(...)``)."""

    def __init__(self, jobs: Jobs, run: Run, *, resumed: bool, write_interval: float) -> None:
        self._jobs = jobs  # a local store's, or a remote one's: the job writes through ``jobs.write``
        self.id, self.name = run.id, run.name
        self.resumed = resumed
        self.state: Any = run.state  # what the job saved at its last checkpoint (None for a new job)
        self._plan = {stage["name"]: stage for stage in run.stages}
        self._stage: str | None = run.stage
        self._progress = run.progress
        self._message: str | None = run.message
        self._events: list[dict[str, Any]] = []
        self._write_interval = write_interval
        self._last_write = float("-inf")
        self._control: str | None = None

    @property
    def stage_name(self) -> str | None:
        return self._stage

    @property
    def progress_percent(self) -> float:
        return self._progress

    def stage(self, name: str, message: str | None = None) -> None:
        """Enter a stage of the plan; progress moves to the stage's start."""
        if self._plan and name not in self._plan:
            raise InvalidInputError(f"unknown stage {name!r}; the plan has {', '.join(self._plan)}")
        self._stage = name
        self._set_progress(self._plan[name]["start"] if self._plan else self._progress)
        self._log(message or f"stage {name}")
        self._write(force=True)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Progress within the current stage (0 to 1); overall progress never goes back."""
        if not 0.0 <= fraction <= 1.0:
            raise InvalidInputError(f"progress is a fraction of the stage between 0 and 1, got {fraction}")
        stage = self._plan.get(self._stage or "")
        self._set_progress(stage["start"] + fraction * (stage["end"] - stage["start"]) if stage else 100 * fraction)
        if message is not None:
            self._log(message)
        self._write()

    def checkpoint(self, state: Any = None, message: str | None = None) -> None:
        """Save progress, state and a log row (if ``message``), then stop here if a pause or cancel
        was requested: raises JobPaused or JobCancelled after the state is saved."""
        if state is not None:
            require_storable("state", state)
            self.state = state
        if message is not None:
            self._log(message)
        self._write()
        if self._control in ("pause", "cancel"):
            self._stop(self._control)

    def log(self, message: str, *, level: str = "info", data: Any = None) -> None:
        self._log(message, level, data)
        self._write()

    # -- ending ---------------------------------------------------------------------------------------

    def __enter__(self) -> Job:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            self._finish(R.COMPLETED, "completed", progress=100.0)
            return False
        if isinstance(exc, (JobPaused, JobCancelled)):
            return True  # the job stopped as asked: leaving the block is the normal way out
        summary = "".join(traceback.format_exception(exc_type, exc, tb, limit=-3))
        self._finish(R.FAILED, f"failed: {exc_type.__name__}: {exc}", error=f"{exc_type.__name__}: {exc}\n{summary}")
        return False

    def _stop(self, control: str) -> None:
        status, error = (R.PAUSED, JobPaused) if control == "pause" else (R.CANCELLED, JobCancelled)
        self._finish(status, "paused at checkpoint" if control == "pause" else "cancelled at checkpoint")
        raise error(f"job {self.name!r} was {status} at a checkpoint"
                    + (f" in stage {self._stage!r}" if self._stage else "") + "; its state is saved")

    def _finish(self, status: str, message: str, *, progress: float | None = None, error: str | None = None) -> None:
        if progress is not None:
            self._set_progress(progress)
        self._log(message, "error" if error else "info")
        self._write(force=True, final={"status": status, **({"error": error} if error else {})})

    # -- writing, coalesced ------------------------------------------------------------------------

    def _set_progress(self, value: float) -> None:
        self._progress = max(self._progress, min(100.0, value))

    def _log(self, message: str, level: str = "info", data: Any = None) -> None:
        require_storable("message", message)
        require_storable("data", data)
        self._message = message
        self._events.append({"time": utcnow(), "level": level, "stage": self._stage, "progress": self._progress,
                             "message": message, "data": data})

    def _write(self, *, force: bool = False, final: Mapping[str, Any] | None = None) -> None:
        """One transaction: progress, stage, state, heartbeat and queued log rows; read the control.
        Skipped when the last write is more recent than ``write_interval``, unless forced."""
        if not force and time.monotonic() - self._last_write < self._write_interval:
            return
        self._last_write = time.monotonic()
        events, self._events = self._events, []
        try:
            control = self._jobs.write(self.id, progress=self._progress, stage=self._stage, message=self._message,
                                       state=self.state, logs=events, **(final or {}))
        except BaseException:
            self._events = events + self._events  # not written: sent with the next write
            raise
        if final is None:
            self._control = control


class AsyncJob:
    """``Job`` for asyncio code: the same calls, awaited, run off the event loop.

    ``async with store.jobs.start_async(name, stages=...) as job: await job.checkpoint(state=...)``"""

    def __init__(self, jobs: Jobs, name: str, options: Mapping[str, Any]) -> None:
        self._jobs, self._name, self._options = jobs, name, options
        self._job: Job | None = None

    @property
    def job(self) -> Job:
        if self._job is None:
            raise InvalidInputError("use the async job inside `async with store.jobs.start_async(...) as job:`")
        return self._job

    @property
    def state(self) -> Any:
        return self.job.state

    @property
    def resumed(self) -> bool:
        return self.job.resumed

    async def __aenter__(self) -> AsyncJob:
        self._job = await asyncio.to_thread(self._jobs.start, self._name, **self._options)
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return await asyncio.to_thread(self.job.__exit__, exc_type, exc, tb)

    async def stage(self, name: str, message: str | None = None) -> None:
        await asyncio.to_thread(self.job.stage, name, message)

    async def progress(self, fraction: float, message: str | None = None) -> None:
        await asyncio.to_thread(self.job.progress, fraction, message)

    async def checkpoint(self, state: Any = None, message: str | None = None) -> None:
        await asyncio.to_thread(self.job.checkpoint, state, message)

    async def log(self, message: str, *, level: str = "info", data: Any = None) -> None:
        await asyncio.to_thread(self.job.log, message, level=level, data=data)
