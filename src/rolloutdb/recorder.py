"""The training recorder: a training loop records runs, steps, groups, rollouts and turns at the cost of
a queue put; a background writer batches them into the database.

Recording never breaks training. When the database is down or slow the writer keeps the records (in
memory, then in an append-only journal file), warns once, and writes them when it is back. A record
the database rejects is reported with its reason and does not hold back the others.

    with rolloutdb.Recorder(run="grpo-1", config=hparams, total_steps=100) as recorder:
        for i in range(100):
            with recorder.step(i) as step:
                group = step.group(task="add-1", size=4)
                rollout = group.rollout(input=prompt)
                rollout.turn(observation=obs, action=act, reward=0.0)
                rollout.finish(reward=1.0, success=True)
                step.log(loss=0.3)
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import re
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic_core import to_jsonable_python
from pydantic import JsonValue
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError

from .errors import JobCancelled, JobInterrupted, JobPaused, StoreUnavailableError
from .ids import new_id
from .records import Record, Run, Task
from .schema import groups, rollouts, steps, turns
from .states import GroupStatus, RolloutStatus, RunStatus, StepStatus
from .store import Store, connect
from .store.base import insert_ignoring_conflicts, record_status_changes, status_change_row
from .store.bulk import bulk_insert
from .store.statistics import refresh_groups, refresh_progress, refresh_steps

log = logging.getLogger("rolloutdb.recorder")
INSERTS = ("step", "group", "rollout", "turn")  # in foreign-key order
TABLES = {"step": steps, "group": groups, "rollout": rollouts, "turn": turns}
TIME_FIELD = re.compile(r"(_at|^time)$")


class RolloutResult(Record):
    """What ``RolloutHandle.finish`` reports, checked in the writer before it goes to the database."""

    id: str
    group_id: str
    step: int | None
    status: Literal["succeeded", "failed"]
    reward: float | None
    success: bool | None
    validation: JsonValue
    metrics: dict[str, JsonValue]
    error: str | None


FINISH_RUNNING_ROLLOUT = update(rollouts).where(rollouts.c.id == bindparam("b_id"),
                                               rollouts.c.status == RolloutStatus.RUNNING)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RecorderHealth:
    """What the recorder has done so far. ``pending`` are in memory, ``spilled`` in the journal file."""

    pending: int
    spilled: int
    written: int
    failed: int
    connected: bool
    last_error: str | None


class Recorder:
    """Records one training run (and its eval and baseline runs) from a training loop.

    ``target`` is a database URL, a Store, or None for the configured default. Calls never block on the
    database and never raise because of it; see ``health()``.
    """

    def __init__(
        self,
        target: str | Store | None = None,
        *,
        run: str,
        config: Mapping[str, Any] | None = None,
        total_steps: int | None = None,
        project: str = "default",
        flush_interval: float = 1.0,
        flush_size: int = 2000,
        max_pending: int = 100_000,
        journal_dir: str | Path = ".rolloutdb-journal",
        control_interval: float = 1.0,
    ) -> None:
        self._writer = _Writer(target, project, flush_interval, flush_size, max_pending,
                               Path(journal_dir) / f"{_safe_name(run)}.jsonl")
        self.run = RunHandle(self._writer, run, "train", config=config, total_steps=total_steps)
        self._finished = False
        self._control_interval = control_interval
        self._last_control_check = float("-inf")
        weakref.finalize(self, self._writer.stop)  # a recorder dropped without close() still writes out

    # -- the training run -------------------------------------------------------------------------

    def step(self, number: int, *, state: Any = None) -> StepHandle:
        """Start training step ``number`` (the previous one, if still open, is completed).

        Each step is a checkpoint of the run as a job: ``state`` (JSON) is saved for a resume, and a
        pause or cancel requested from outside (``rolloutdb jobs pause RUN``) raises JobPaused or
        JobCancelled here, after everything recorded so far is written."""
        if state is not None:
            self._writer.put(("run_update", self.run.id, {"state": state}))
        self.run.close_step()
        self._obey_control()
        return self.run.step(number)

    @property
    def current_step(self) -> StepHandle | None:
        """The step that is open (started and not finished yet), if any."""
        return self.run.open_step

    @property
    def saved_state(self) -> Any:
        """The state the run saved at its last checkpoint (for a resumed run), or None."""
        run = self._writer.read_run(self.run.name)
        return run.state if run else None

    def _obey_control(self) -> None:
        """Stop here if someone asked the run to pause or cancel. Reading the request needs the database;
        when it is away, training simply goes on."""
        now = time.monotonic()
        if now - self._last_control_check < self._control_interval:
            return
        self._last_control_check = now
        run = self._writer.read_run(self.run.name)
        if run is None or run.control not in ("pause", "cancel"):
            return
        if not self.flush():
            return  # the records could not be written: do not stop with them in limbo
        status = RunStatus.PAUSED if run.control == "pause" else RunStatus.CANCELLED
        self._writer.store_if_reachable().runs.update(
            run.id, status=status, control=None, message=f"{status} at step checkpoint",
            reason=f"{run.control} requested")
        self._finished = True
        raise (JobPaused if status == RunStatus.PAUSED else JobCancelled)(
            f"run {self.run.name!r} was {status} before a step; start it again to resume")

    def eval(self, step: int | None = None, name: str | None = None) -> RunHandle:
        """An eval run linked to this training run (at ``step``), with the same group/rollout API."""
        label = name or f"{self.run.name}/eval" + (f"@{step}" if step is not None else "")
        return RunHandle(self._writer, label, "eval", parent=self.run, parent_step=step)

    def baseline(self, name: str | None = None) -> RunHandle:
        """A baseline run linked to this training run (typically before training starts)."""
        return RunHandle(self._writer, name or f"{self.run.name}/baseline", "baseline", parent=self.run)

    def log(self, **metrics: Any) -> None:
        """Merge hyperparameters or run-level metrics into the run's metadata."""
        self._writer.put(("run_update", self.run.id, {"metadata": metrics}))

    # -- lifecycle ------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write everything recorded so far; False if the database did not take it within ``timeout``."""
        return self._writer.flush(timeout)

    def health(self) -> RecorderHealth:
        return self._writer.health()

    def finish(self, status: str = RunStatus.COMPLETED, error: str | None = None) -> None:
        """End the training run (completed, failed or cancelled), closing its last step."""
        if not self._finished:
            self._finished = True
            self.run.finish(status, error)

    def close(self, timeout: float | None = 30.0) -> None:
        """Complete the run (unless ``finish`` was called), write everything and stop the writer.
        Whatever the database cannot take in ``timeout`` stays in the journal for the next recorder."""
        self.finish()
        self._writer.stop(timeout)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        stopped = isinstance(exc, JobInterrupted)
        if exc is not None and not stopped:
            self.finish(RunStatus.FAILED, f"{exc_type.__name__}: {exc}")
        self.close()
        return stopped  # paused or cancelled from outside: leaving the block is the normal way out


class RunHandle:
    """A run being recorded: groups of rollouts (eval, baseline) or steps (training)."""

    def __init__(self, writer: _Writer, name: str, kind: str, *, config: Mapping[str, Any] | None = None,
                 total_steps: int | None = None, parent: RunHandle | None = None,
                 parent_step: int | None = None) -> None:
        self._writer, self.name, self.kind = writer, name, kind
        self.id = new_id()
        self._open_step: StepHandle | None = None
        writer.put(("run", self.id, {"name": name, "kind": kind, "config": dict(config or {}),
                                     "total_steps": total_steps, "parent": parent.id if parent else None,
                                     "parent_step": parent_step, "started_at": _now()}))

    def step(self, number: int) -> StepHandle:
        self.close_step()
        self._open_step = StepHandle(self, number)
        return self._open_step

    @property
    def open_step(self) -> StepHandle | None:
        return self._open_step

    def close_step(self) -> None:
        """Complete the open step, if any."""
        if self._open_step is not None:
            self._open_step.finish()
            self._open_step = None

    def group(self, task: Task | str | None = None, *, size: int | None = None,
              metadata: Mapping[str, Any] | None = None) -> GroupHandle:
        """A group of rollouts on one task outside any step (eval, baseline)."""
        return GroupHandle(self, None, self.kind if self.kind in ("eval", "baseline") else "step", task, size,
                           metadata)

    def finish(self, status: str = RunStatus.COMPLETED, error: str | None = None) -> None:
        if self._open_step is not None:
            self._open_step.finish(status=StepStatus.FAILED if status == RunStatus.FAILED else StepStatus.COMPLETED)
            self._open_step = None
        self._writer.put(("run_status", self.id, {"status": status, "error": error}))

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(RunStatus.FAILED if exc else RunStatus.COMPLETED, f"{exc_type.__name__}: {exc}" if exc else None)



class StepHandle:
    """One training step: its groups, its metrics; completed on ``finish`` or when the next one starts."""

    def __init__(self, run: RunHandle, number: int) -> None:
        self.run, self.number, self._done = run, number, False
        run._writer.put(("step", run.id, {"id": new_id(), "number": number, "status": StepStatus.RUNNING,
                                          "metrics": {}, "started_at": _now()}))

    def group(self, task: Task | str | None = None, *, source: str = "step", size: int | None = None,
              metadata: Mapping[str, Any] | None = None) -> GroupHandle:
        return GroupHandle(self.run, self.number, source, task, size, metadata)

    def log(self, **metrics: Any) -> None:
        """Merge metrics (loss, learning rate, ...) into the step's metrics."""
        self.run._writer.put(("step_update", self.run.id, {"number": self.number, "metrics": metrics}))

    def finish(self, status: str = StepStatus.COMPLETED, **metrics: Any) -> None:
        if not self._done:
            self._done = True
            self.run._writer.put(("step_update", self.run.id, {"number": self.number, "metrics": metrics,
                                                               "status": status}))

    def __enter__(self) -> StepHandle:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(StepStatus.FAILED if exc else StepStatus.COMPLETED)


class GroupHandle:
    """Several rollouts of one task; the store keeps its counts and reward statistics."""

    def __init__(self, run: RunHandle, step: int | None, source: str, task: Task | str | None,
                 size: int | None, metadata: Mapping[str, Any] | None) -> None:
        self.run, self.step, self.id = run, step, new_id()
        self._task_id, self._task_external_id = (task.id, None) if isinstance(task, Task) else (None, task)
        run._writer.put(("group", run.id, {"id": self.id, "step": step, "source": source, "size": size,
                                           "task_id": self._task_id, "task": self._task_external_id,
                                           "status": GroupStatus.PENDING, "metadata": dict(metadata or {})}))

    def rollout(self, input: Any = None, *, mode: str | None = None,
                metadata: Mapping[str, Any] | None = None) -> RolloutHandle:
        return RolloutHandle(self, input, mode, metadata)


class RolloutHandle:
    """One episode: its turns in order, then its result."""

    def __init__(self, group: GroupHandle, input: Any, mode: str | None, metadata: Mapping[str, Any] | None) -> None:
        self.group, self.id, self._turns, self._done = group, new_id(), 0, False
        self._writer = group.run._writer
        self._writer.put(("rollout", group.run.id, {
            "id": self.id, "step": group.step, "group_id": group.id, "task_id": group._task_id,
            "task": group._task_external_id, "input": input, "mode": mode, "status": RolloutStatus.RUNNING,
            "metadata": dict(metadata or {}), "started_at": _now()}))

    def turn(self, observation: Any = None, action: Any = None, *, thinking: str | None = None,
             model_response: Any = None, action_result: Any = None, reward: float | None = None,
             done: bool | None = None, duration_seconds: float | None = None, success: bool | None = None,
             error: str | None = None, metrics: Mapping[str, Any] | None = None, tokens: Any = None,
             logprobs: Any = None) -> None:
        self._writer.put(("turn", self.group.run.id, {
            "id": new_id(), "rollout_id": self.id, "turn_index": self._turns, "observation": observation,
            "thinking": thinking, "action": action, "action_result": action_result, "model_response": model_response,
            "reward": reward, "done": done, "duration_seconds": duration_seconds, "success": success, "error": error,
            "metrics": dict(metrics or {}), "tokens": tokens, "logprobs": logprobs, "created_at": _now()}))
        self._turns += 1

    def finish(self, reward: float | None = None, *, success: bool | None = None, validation: Any = None,
               metrics: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        """The result. A rollout with an ``error`` failed; otherwise it succeeded (``success`` says
        whether the agent solved the task)."""
        if self._done:
            return
        self._done = True
        self._writer.put(("rollout_finish", self.group.run.id, {
            "id": self.id, "group_id": self.group.id, "step": self.group.step,
            "status": RolloutStatus.FAILED if error else RolloutStatus.SUCCEEDED, "reward": reward,
            "success": success, "validation": validation, "metrics": dict(metrics or {}), "error": error}))

    def __enter__(self) -> RolloutHandle:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(error=f"{exc_type.__name__}: {exc}" if exc else None)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:100] or "run"


class _Writer:
    """The background thread that turns queued records into batched transactions."""

    def __init__(self, target: str | Store | None, project: str, interval: float, size: int, max_pending: int,
                 journal: Path) -> None:
        self._target, self._project = target, project
        self._store: Store | None = target if isinstance(target, Store) else None
        self._interval, self._size, self._max_pending = interval, size, max_pending
        self._queue: collections.deque = collections.deque()  # append/popleft are atomic: no lock for callers
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._journal = journal
        self._run_ids: dict[str, str] = {}  # recorder's run id -> the id stored (an existing run keeps its own)
        self._task_ids: dict[str, str] = {}  # task external id -> id, as committed
        self._new_task_ids: dict[str, str] = {}
        self._run_ops: dict[str, tuple] = {}  # kept so that a journal always names the runs its records belong to
        self._enqueued = self._written = self._failed = self._spilled = 0
        self._connected, self._last_error, self._warned = self._store is not None, None, False
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="rolloutdb-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    # -- caller side: a deque append and a counter ---------------------------------------------------

    def put(self, op: tuple) -> None:
        if op[0] == "run":
            self._run_ops[op[1]] = op
        self._queue.append(op)
        self._enqueued += 1
        if len(self._queue) >= self._size:
            self._wake.set()

    def flush(self, timeout: float | None) -> bool:
        target = self._enqueued
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._written + self._failed < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining if remaining is not None else 1.0)
        return True

    def stop(self, timeout: float | None = 30.0) -> None:
        if self._stopping:
            return
        written = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if not written:
            self._spill(list(self._queue))  # what the database did not take waits in the journal
            self._queue.clear()
        if self._store is not None and not isinstance(self._target, Store):
            self._store.close()

    def health(self) -> RecorderHealth:
        return RecorderHealth(pending=len(self._queue), spilled=self._spilled, written=self._written,
                              failed=self._failed, connected=self._connected, last_error=self._last_error)

    # -- writer side ------------------------------------------------------------------------------

    def _loop(self) -> None:
        backoff = self._interval
        while not self._stopping:
            self._wake.wait(backoff)
            self._wake.clear()
            try:
                self._write_journal()
                while self._queue and not self._stopping:
                    self._write_batch()
                backoff = self._interval
            except Exception as exc:  # the writer must outlive anything the database does
                if not _is_outage(exc):
                    log.exception("rolloutdb recorder: unexpected error; records are kept and retried")
                self._went_down(exc)
                self._bound_memory()
                backoff = min(max(backoff * 2, 0.05), 5.0)
            with self._idle:
                self._idle.notify_all()

    def _write_batch(self) -> None:
        batch = [self._queue[i] for i in range(min(len(self._queue), self._size))]
        rejected = self._apply(batch)
        for _ in batch:
            self._queue.popleft()
        self._written += len(batch) - rejected
        self._failed += rejected

    def _apply(self, batch: list[tuple]) -> int:
        """Write a batch in one transaction; returns how many records the database rejected."""
        store = self._connect()
        try:
            with store._write() as connection:
                self._apply_in(store, connection, batch)
            rejected = 0
            self._task_ids.update(self._new_task_ids)
        except Exception as exc:
            if _is_outage(exc):
                raise
            rejected = self._apply_one_by_one(store, batch)
        self._came_back()
        return rejected

    def _apply_one_by_one(self, store: Store, batch: list[tuple]) -> int:
        """A batch the database refused: write what it accepts, report the rest with the reason."""
        rejected = 0
        for op in batch:
            try:
                with store._write() as connection:
                    self._apply_in(store, connection, [op])
            except Exception as exc:
                if _is_outage(exc):
                    raise
                self._report(op, exc)
                rejected += 1
        return rejected

    def _report(self, op: tuple, exc: Exception) -> None:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        self._last_error = f"{op[0]} rejected: {reason}"
        log.error("rolloutdb recorder: the database rejected a %s record: %s", op[0], reason)

    def _apply_in(self, store: Store, connection: Connection, batch: list[tuple]) -> None:
        self._new_task_ids.clear()  # ids learnt in a transaction count only once it commits
        by_kind: dict[str, list[tuple]] = collections.defaultdict(list)
        for op in batch:
            by_kind[op[0]].append(op)
        for kind, run_local, fields in by_kind["run"]:
            self._ensure_run(store, connection, run_local, fields)
        touched_groups: set[str] = set()
        touched_steps: set[tuple[str, int]] = set()
        now = store.now()
        for kind in INSERTS:
            rows = [self._row(store, connection, kind, op, now) for op in by_kind[kind]]
            if not rows:
                continue
            statement = insert_ignoring_conflicts(connection, TABLES[kind])
            if kind == "turn":  # the bulk of the records: the backend's fast path
                bulk_insert(connection, turns, rows, ignore_conflicts=True)
            else:  # history only for rows really inserted: a resumed run's step 7 is not created twice
                inserted = set(connection.execute(statement.returning(TABLES[kind].c.id), rows).scalars())
                record_status_changes(connection, [status_change_row(
                    store.project_id, kind, row["id"], None, row["status"], now, "recorded")
                    for row in rows if row["id"] in inserted])
            touched_groups.update(row["group_id"] for row in rows if kind == "rollout")
            touched_steps.update((row["run_id"], row["step"]) for row in rows
                                 if kind == "rollout" and row["step"] is not None)
        self._finish_rollouts(store, connection, by_kind["rollout_finish"], now, touched_groups, touched_steps)
        for op in batch:
            if op[0].endswith("_update") or op[0] == "run_status":
                self._update(store, connection, op, touched_steps)
        for run_id in {self._run_ids[op[1]] for op in batch}:  # a sign of life, for stale-job detection
            store.runs._update_by_key.run(connection, {"heartbeat_at": now, "b_key": run_id,
                                                       "b_project": store.project_id})
        refresh_groups(store, connection, touched_groups)
        for run_id in {run for run, _ in touched_steps}:
            refresh_steps(store, connection, run_id, [number for run, number in touched_steps if run == run_id])
            refresh_progress(store, connection, run_id)

    def _ensure_run(self, store: Store, connection: Connection, local_id: str, fields: Mapping[str, Any]) -> None:
        """Get or create the run by name: recording into an existing run (a resumed job) continues it."""
        existing = store.runs._find(connection, fields["name"])
        if existing is None:
            parent = self._run_ids.get(fields["parent"]) if fields["parent"] else None
            record = store.runs._new_record({
                "id": local_id, "name": fields["name"], "kind": fields["kind"], "config": fields["config"],
                "total_steps": fields["total_steps"], "parent_run_id": parent, "parent_step": fields["parent_step"],
                "status": RunStatus.RUNNING, "started_at": fields["started_at"]})
            store.runs._insert(connection, record)
            existing = store.runs._fetch(connection, local_id)
        elif existing["status"] in (RunStatus.PENDING, RunStatus.PAUSED):
            store.runs._update(connection, existing["id"], {"status": RunStatus.RUNNING}, "recording", existing)
        self._run_ids[local_id] = existing["id"]

    def _row(self, store: Store, connection: Connection, kind: str, op: tuple, now: datetime) -> dict[str, Any]:
        row = {**ROW_DEFAULTS[kind], **op[2], "project_id": store.project_id}
        row["created_at"] = row["created_at"] or now
        if kind != "turn":
            row["run_id"] = self._run_ids[op[1]]
            row["updated_at"] = now
        if kind in ("group", "rollout"):
            external = row.pop("task")
            if row["task_id"] is None and external is not None:
                row["task_id"] = self._task_id(store, connection, external)
        if kind == "rollout":
            row.update(attempt_count=0, config={"max_attempts": 1, "retry_condition": []})
        return row

    def _finish_rollouts(self, store: Store, connection: Connection, ops: list[tuple], now: datetime,
                         touched_groups: set[str], touched_steps: set[tuple[str, int]]) -> None:
        """Results of rollouts this recorder started (running until now): one batched UPDATE, no reads."""
        if not ops:
            return
        rows = []
        for _, run_local, fields in ops:
            result = RolloutResult.model_validate(fields)
            rows.append({**result.model_dump(exclude={"id", "group_id", "step"}), "ended_at": now, "updated_at": now,
                         "b_id": result.id})
            touched_groups.add(result.group_id)
            if result.step is not None:
                touched_steps.add((self._run_ids[run_local], result.step))
        connection.execute(FINISH_RUNNING_ROLLOUT, rows)
        record_status_changes(connection, [status_change_row(
            store.project_id, "rollout", row["b_id"], RolloutStatus.RUNNING, row["status"], now, "finished")
            for row in rows])

    def _task_id(self, store: Store, connection: Connection, external_id: str) -> str:
        """The id of the task with this external id, saved on first use; remembered once committed."""
        known = self._task_ids.get(external_id) or self._new_task_ids.get(external_id)
        if known is None:
            known = self._new_task_ids[external_id] = store.tasks._save_one(connection, {"external_id": external_id}).id
        return known

    def _update(self, store: Store, connection: Connection, op: tuple, touched_steps: set[tuple[str, int]]) -> None:
        kind, run_local, fields = op
        run_id = self._run_ids[run_local]
        if kind == "run_status":
            run = store.runs._fetch(connection, run_id, for_update=True)
            if run["status"] != fields["status"]:
                changes = {"status": fields["status"], "error": fields["error"]}
                if fields["status"] == RunStatus.COMPLETED and run["total_steps"]:
                    changes["progress"] = 100.0
                store.runs._update(connection, run_id, changes, "recorder finished", run)
        elif kind == "run_update":
            run = store.runs._fetch(connection, run_id, for_update=True)
            changes = {"metadata": {**run["metadata"], **fields.get("metadata", {})}}
            if "state" in fields:
                changes["state"] = fields["state"]
            store.runs._update(connection, run_id, changes, None, run)
        elif kind == "step_update":
            step = connection.execute(select(steps).where(steps.c.run_id == run_id, steps.c.number == fields["number"])
                                      .with_for_update()).mappings().one()
            changes: dict[str, Any] = {"metrics": {**step["metrics"], **fields["metrics"]}}
            if "status" in fields and fields["status"] != step["status"]:
                changes["status"] = fields["status"]
            store.steps._update(connection, step["id"], changes, None, step)
            touched_steps.add((run_id, fields["number"]))

    # -- when the database is away ----------------------------------------------------------------

    def _connect(self) -> Store:
        if self._store is None:
            self._store = connect(self._target, project=self._project)
        return self._store

    def store_if_reachable(self) -> Store | None:
        """The writer's store when it has one and the database answered last time."""
        return self._store if self._connected else None

    def read_run(self, name: str) -> Run | None:
        """The run as stored, or None when it is not written yet or the database is away."""
        store = self.store_if_reachable()
        try:
            return store.runs._find_by_name(name) if store else None
        except StoreUnavailableError:
            return None

    def _went_down(self, exc: Exception) -> None:
        self._connected = False
        self._last_error = str(exc).strip().splitlines()[0]
        if not self._warned:  # one warning, not one per record
            self._warned = True
            log.warning("rolloutdb recorder: cannot write to the database (%s); keeping records and retrying",
                        self._last_error)

    def _came_back(self) -> None:
        if not self._connected and self._warned:
            log.warning("rolloutdb recorder: the database is back; writing the records it kept")
        self._connected, self._warned = True, False

    def _bound_memory(self) -> None:
        excess = len(self._queue) - self._max_pending
        if excess > 0:
            self._spill([self._queue.popleft() for _ in range(excess)])

    def _spill(self, ops: list[tuple]) -> None:
        if not ops:
            return
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        with self._journal.open("a", encoding="utf-8") as journal:
            # Runs first (getting a run by name is idempotent), so a later recorder can replay this alone.
            for op in [*self._run_ops.values(), *ops]:
                journal.write(json.dumps(to_jsonable_python(op)) + "\n")
        self._spilled += len(ops)

    def _write_journal(self) -> None:
        """Write the spilled records back, oldest first, before anything newer."""
        if not self._journal.exists():
            return
        ops = [_from_journal(line) for line in self._journal.read_text(encoding="utf-8").splitlines() if line]
        rejected = sum(self._apply(ops[start:start + self._size]) for start in range(0, len(ops), self._size))
        self._journal.unlink()
        # Only this recorder's spilled records count here; a journal left by an earlier process is extra.
        self._written += max(0, self._spilled - rejected)
        self._failed += min(rejected, self._spilled)
        self._spilled = 0


def _from_journal(line: str) -> tuple:
    """An op as it was before it was spilled: JSON turned its datetimes into ISO strings."""
    kind, run_id, fields = json.loads(line)
    return kind, run_id, {key: datetime.fromisoformat(value) if TIME_FIELD.search(key) and isinstance(value, str)
                          else value for key, value in fields.items()}


def _default(name: str) -> Any:
    """The value a recorder row gets for a column it does not set."""
    if name in ("metrics", "metadata"):
        return {}
    if name in ("rollout_count", "completed_count", "success_count"):
        return 0
    return None


ROW_DEFAULTS = {kind: {column.name: _default(column.name) for column in table.columns}
                for kind, table in TABLES.items()}


def _is_outage(exc: Exception) -> bool:
    """The database being away (retry later), as opposed to a record it refuses (report and drop)."""
    if isinstance(exc, StoreUnavailableError):
        return True
    return isinstance(exc, DBAPIError) and not isinstance(exc, (IntegrityError, DataError, ProgrammingError))


__all__ = ["GroupHandle", "Recorder", "RecorderHealth", "RolloutHandle", "RunHandle", "StepHandle"]
