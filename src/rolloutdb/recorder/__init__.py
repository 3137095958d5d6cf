"""The training recorder: a training loop records runs, steps, groups, rollouts and turns for a few
microseconds a call; a writer process of its own applies them through the store's batch API
(``store.recording``), so statuses, history and statistics follow the store's rules.

Recording never breaks training. Every call encodes its record and appends it to memory; nothing in the
loop waits for the database. When the database is slow, away or hanging, records wait in memory (at most
``max_pending`` of them, none older than ``max_lag`` seconds) and then in a journal file, one warning says
so, and they are written when the database is back — by this recorder, the next one on the same database
and project, or ``rolloutdb journal replay``. A record the database refuses is reported with what it was
and why, and does not hold back the others.

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

import logging
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import JOURNAL_DIRECTORY, is_server_url, resolve_url
from ..errors import ConflictError, InvalidInputError, StoreUnavailableError, JobCancelled, JobInterrupted, JobPaused, NotFoundError
from ..ids import new_id
from ..records import Task
from ..storable import Unstorable, json_text
from ..states import RunStatus, StepStatus
from ..store import DEFAULT_PROJECT, Store
from ..store.base import aware_time
from ..store.engine import sqlite_file
from ..store.jobs import DEFAULT_STALE_AFTER
from ..store.artifacts import DEFAULT_QUALITY, check_reencoding
from ..store.recording import check_given_fields, check_screenshots, check_turn_content, check_typed_fields
from ._frames import Framed
from ._journal import (JournalInfo, ReplayResult, count_journal_records, journal_folder,
                       list_journals, replay_journals)
from ._pump import Pump

log = logging.getLogger("rolloutdb.recorder")
UTC = timezone.utc
NO_CONTROL = 3600.0  # a decision logger's pump: seconds between exchanges with the writer when nothing waits
START_ERRORS = {"ConflictError": ConflictError, "NotFoundError": NotFoundError, "InvalidInputError": InvalidInputError}


def _encode(record: dict[str, Any], check: Callable[[dict[str, Any]], None] = check_typed_fields) -> bytes:
    """One record as a line of JSON; a value of the wrong type or one the database cannot hold is refused
    here, at the call, by the store's own rules (``check``, from ``store.recording``; ``rolloutdb.storable``)."""
    check(record)
    try:
        return json_text(record).encode()  # a copy of its own size: orjson's result keeps a ~4 KB buffer
    except Unstorable as exc:
        raise InvalidInputError(f"cannot record this {record['op']}: {exc}") from None


def _write_out(pump: Pump) -> None:
    pump.wait_for(pump.put_count, 10.0)
    pump.stop(5.0)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RecorderHealth:
    """What the recorder has done so far.

    ``recorded`` counts the records this recorder took so far. ``pending`` are in memory, ``spilled`` in the
    journal file (``journal``); ``written`` were
    applied, ``failed`` refused by the database (see ``last_error`` and the log), ``dropped`` lost because
    neither the database nor the journal could take them. ``replayed`` counts records that earlier
    recorders had left in the journal, written by this one."""

    recorded: int
    pending: int
    spilled: int
    written: int
    failed: int
    dropped: int
    replayed: int
    connected: bool
    last_error: str | None
    journal: Path | None


@dataclass(frozen=True)
class FlushResult:
    """What ``flush()`` achieved: true when every record so far was written and none was refused since the
    previous flush. ``rejected`` says what was refused, and why."""

    complete: bool
    pending: int
    rejected: list[str]

    def __bool__(self) -> bool:
        return self.complete and not self.rejected


def _destination(target: str | Store | Any, project: str | None, token: str | None,
                 wait: float) -> tuple[str, str]:
    """The URL and project a recorder writes to. A server is asked once, waiting ``wait`` seconds at most: whose
    the token is (the journal is kept per project, so it must be known), and whether it lets us in."""
    if target is None or isinstance(target, str):
        url = resolve_url(target)
    else:  # a Store or a remote store
        url, project = target.url, target.project
    if not is_server_url(url):
        if token is not None:
            raise InvalidInputError("token= is for a server's URL (http://...), not for a database")
        return url, DEFAULT_PROJECT if project is None else project
    from ..client import RemoteStore  # here: a recorder into a database never loads the HTTP client

    try:
        with RemoteStore(url, project, token=token, retry_for=wait) as store:
            return url, store.project
    except StoreUnavailableError:
        if project is None:
            raise StoreUnavailableError(f"the server at {url} did not answer, so the API token's project is not "
                                        "known: name it (project=) to record into the journal until the server is "
                                        "back") from None
        return url, project


class _Pumped:
    """What a recorder and a decision logger share: each call checks and encodes its record and hands it to a pump,
    whose writer process applies them in batches through ``store.recording``, keeping them in memory and then in a
    journal while the database is away, slow or hanging (see the module)."""

    _what: str  # what the records are of, for the log: "run 'grpo-1'", "the decision log"

    def _start_pump(self, target: str | Store | None, project: str | None, token: str | None, run: str | None, *,
                    flush_interval: float, flush_size: int, max_pending: int, max_lag: float, timeout: float,
                    journal_dir: str | Path, control_interval: float, start_timeout: float) -> None:
        url, project = _destination(target, project, token, start_timeout)
        self.project = project  # the one it records into
        if url.startswith("sqlite") and sqlite_file(url) is None:
            raise InvalidInputError("the recorder writes from a process of its own, which cannot see an in-memory "
                                    "SQLite database: record into a file (sqlite:///path.db)")
        for name, value in (("flush_interval", flush_interval), ("max_lag", max_lag), ("timeout", timeout),
                            ("flush_size", flush_size), ("max_pending", max_pending)):
            if not value > 0:
                raise InvalidInputError(f"{name} must be positive, got {value!r}")
        self._session = new_id()
        self._through_server = is_server_url(url)
        self._pump = Pump(url, project, token, run, self._session, journal_dir=journal_dir, flush_interval=flush_interval,
                          flush_size=flush_size, max_pending=max_pending, max_lag=max_lag, timeout=timeout,
                          control_interval=control_interval)
        self._closed = False
        self._flushed_rejections = 0

    def _record(self, record: dict[str, Any], check: Callable[[dict[str, Any]], None] = check_typed_fields) -> None:
        self._pump.put(_encode(record, check))

    def flush(self, timeout: float | None = 30.0) -> FlushResult:
        """Write everything recorded so far. The result is true when all of it was written within
        ``timeout`` and nothing was refused since the last flush; otherwise it says what is pending and
        what was refused."""
        complete = self._pump.wait_for(self._pump.put_count, timeout)
        rejections = self._pump.counts.rejections[self._flushed_rejections:]
        self._flushed_rejections += len(rejections)
        return FlushResult(complete=complete, pending=self._pump.in_memory + self._pump.in_journal,
                           rejected=[f"{r['subject']}: {r['message']}" for r in rejections])

    def health(self) -> RecorderHealth:
        pump, counts = self._pump, self._pump.counts
        return RecorderHealth(recorded=pump.put_count, pending=pump.in_memory, spilled=pump.in_journal,
                              written=counts.written, failed=counts.failed, dropped=counts.dropped,
                              replayed=counts.replayed, connected=pump.connected, last_error=pump.last_error,
                              journal=pump.journal_path if pump.in_journal else None)

    def _write_out_and_stop(self, timeout: float | None) -> None:
        """Write what is left (within ``timeout``; the journal keeps the rest) and stop the writer."""
        self._closed = True
        self._finalizer.detach()
        try:
            self._drain(timeout)
        finally:
            self._pump.stop(1.0)
            self._report_leftovers()

    def _drain(self, timeout: float | None) -> None:
        """Wait for the backlog to be written, saying so (with progress on a terminal) when it takes a while."""
        pump = self._pump
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining(at_most: float) -> float:
            return at_most if deadline is None else max(0.0, min(at_most, deadline - time.monotonic()))

        if pump.wait_for(pump.put_count, remaining(1.0)):
            return
        if not pump.connected:
            pump.wait_for(pump.put_count, remaining(3.0))  # away: a short last chance, then the journal keeps the rest
            return
        from rich.console import Console  # noqa: PLC0415 - only a slow close needs it
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        console = Console(stderr=True)
        total = pump.put_count - pump.counts.done
        log.warning("rolloutdb recorder: writing %s recorded records before closing %s", f"{total:,}", self._what)
        start = pump.counts.done
        with Progress(TextColumn("[bold]rolloutdb[/] writing records"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("records", total=total)
            while not pump.wait_for(pump.put_count, 0.2):
                bar.update(task, completed=pump.counts.done - start)
                if (deadline is not None and time.monotonic() > deadline) or not pump.connected:
                    return

    def _report_leftovers(self) -> None:
        health = self.health()
        if health.spilled:
            log.warning("rolloutdb recorder: %s records of %s are kept in the journal %s; the next recorder on "
                        "this database and project writes them, or run `rolloutdb journal replay`",
                        f"{health.spilled:,}", self._what, health.journal)

class Recorder(_Pumped):
    """Records one training run (and its eval and baseline runs) from a training loop.

    ``target`` is a database URL, a server's URL (``http://host:8765``), a Store or remote store (its URL
    and project are used), or None for the configured default. ``project``: None for "default" on a
    database, and for the token's project through a server (asked of it here; ``project=`` named, a server
    away at the start is waited for in the journal instead). ``token``: the API token for a server started
    with ``--auth``; None for ``ROLLOUTDB_TOKEN``'s. A run name that exists is continued by the jobs' rules: a paused run resumes, a running one
    whose process went quiet for ``stale_after`` seconds is taken over, a finished or live one is refused
    with ConflictError; ``resume=True`` requires the run to exist, ``resume=False`` requires a new one.
    Calls never wait for the database and never raise because of it; see ``health()``.
    ``screenshot_reencode="webp"`` stores the turns' screenshots as WebP at ``screenshot_quality`` when smaller
    (see ``artifacts.put``; a screenshot that is no image Pillow reads is stored as given).
    """

    def __init__(
        self,
        target: str | Store | None = None,
        *,
        run: str,
        config: Mapping[str, Any] | None = None,
        total_steps: int | None = None,
        project: str | None = None,
        token: str | None = None,
        resume: bool | None = None,
        stale_after: float = DEFAULT_STALE_AFTER,
        flush_interval: float = 1.0,
        flush_size: int = 2000,
        max_pending: int = 100_000,
        max_lag: float = 5.0,
        timeout: float = 10.0,
        journal_dir: str | Path = JOURNAL_DIRECTORY,
        control_interval: float = 1.0,
        start_timeout: float = 15.0,
        screenshot_reencode: str | None = None,
        screenshot_quality: int = DEFAULT_QUALITY,
    ) -> None:
        check_reencoding(screenshot_reencode, screenshot_quality, None)
        # Sent with each turn that has screenshots: the writer re-encodes them (the loop pays nothing for it).
        self._screenshot_encoding = ({} if screenshot_reencode is None else
                                     {"screenshot_reencode": screenshot_reencode,
                                      "screenshot_quality": screenshot_quality})
        if not isinstance(run, str) or not 0 < len(run) <= 200 or "\x00" in run:
            raise InvalidInputError(f"run must be a name of 1 to 200 characters without NUL, got {run!r}")
        self._what = f"run {run!r}"
        self._start_pump(target, project, token, run, flush_interval=flush_interval, flush_size=flush_size,
                         max_pending=max_pending, max_lag=max_lag, timeout=timeout, journal_dir=journal_dir,
                         control_interval=control_interval, start_timeout=start_timeout)
        self._finished = False
        try:
            self.run = RunHandle(self, run, "train", config=config, total_steps=total_steps, resume=resume,
                                 stale_after=stale_after)
        except InvalidInputError:  # refused at the call: nothing was recorded, so no writer is left behind
            self._pump.stop(1.0)
            raise
        # A recorder dropped (or left at exit) without close() still writes out what it can.
        self._finalizer = weakref.finalize(self, _write_out, self._pump)
        try:
            self._check_start(start_timeout)
        except KeyboardInterrupt as interrupt:  # while the writer comes up (when Ctrl-C comes): as in the block
            self.__exit__(KeyboardInterrupt, interrupt, interrupt.__traceback__)
            raise

    def _check_start(self, timeout: float) -> None:
        """Refuse the run now if the database answers in time and refuses it (a finished run's name, ...);
        when it is away, do not wait: the run is created when it is back."""
        try:
            if not self._pump.wait_for(1, timeout, unless_away=True):
                return
        finally:
            self._pump.quiet_start = False
        for rejection in self._pump.counts.rejections:
            if rejection["op"] == "run.start":
                self._finished = self._closed = True
                self._finalizer.detach()
                self._pump.stop(5.0)
                raise START_ERRORS.get(rejection["error"], ConflictError)(rejection["message"])

    # -- recording -------------------------------------------------------------------------------------

    def _record_with_screenshots(self, record: dict[str, Any], screenshot: bytes | None,
                                 screenshots: Mapping[str, bytes] | None) -> None:
        """A turn and its screenshots: the bytes travel beside the record's line as they are (``_frames``), to be
        hashed and stored by the writer, so that the loop pays the same for a large screenshot as for a small one."""
        if self._through_server:
            raise InvalidInputError("screenshots cannot be recorded through a server yet (the recorder's batches go "
                                    "to it as JSON, without their bytes): record into the database's URL, or put "
                                    "them with store.artifacts.put(..., turn_id=...)")
        contents = {} if screenshots is None else dict(screenshots)
        if screenshot is not None:
            if "screenshot" in contents:
                raise InvalidInputError("cannot record this turn: its screenshot is given twice (screenshot= and "
                                        "screenshots['screenshot'])")
            contents["screenshot"] = screenshot
        check_screenshots(contents)
        record.update(self._screenshot_encoding)
        self._pump.put_with_content(Framed(_encode(record, check_turn_content), contents))

    def step(self, number: int, *, state: Any = None) -> StepHandle:
        """Start training step ``number`` (the previous one, if still open, is completed).

        Each step is a checkpoint of the run as a job: ``state`` (JSON) is saved for a resume, and a
        pause or cancel requested from outside (``rolloutdb jobs pause RUN``) raises JobPaused or
        JobCancelled here, after everything recorded so far is written. The request is read by the writer
        in the background: this call never waits for the database."""
        if state is not None:
            self._record({"op": "run.update", "session": self._session, "run": self.run.name, "state": state})
        self.run.close_step()
        self._obey_control()
        return self.run.step(number)

    @property
    def current_step(self) -> StepHandle | None:
        """The step that is open (started and not finished yet), if any."""
        return self.run.open_step

    @property
    def saved_state(self) -> Any:
        """The state the run saved at its last checkpoint (for a resumed run), or None: as the writer last
        read it, with the database's answer to this recorder's start."""
        return self._pump.state

    def _obey_control(self) -> None:
        control = self._pump.control
        if control not in ("pause", "cancel") or self._finished:
            return
        status = RunStatus.PAUSED if control == "pause" else RunStatus.CANCELLED
        self._finished = True
        self.run.end(status, message=f"{status} at a step checkpoint")
        self.flush()
        raise (JobPaused if status == RunStatus.PAUSED else JobCancelled)(
            f"run {self.run.name!r} was {status} before a step; start it again to resume")

    def eval(self, step: int | None = None, name: str | None = None) -> RunHandle:
        """An eval run linked to this training run (at ``step``), with the same group/rollout API."""
        label = name or f"{self.run.name}/eval" + (f"@{step}" if step is not None else "")
        return RunHandle(self, label, "eval", parent=self.run, parent_step=step)

    def baseline(self, name: str | None = None) -> RunHandle:
        """A baseline run linked to this training run (typically before training starts)."""
        return RunHandle(self, name or f"{self.run.name}/baseline", "baseline", parent=self.run)

    def log(self, **metrics: Any) -> None:
        """Merge hyperparameters or run-level metrics into the run's metadata."""
        self._record({"op": "run.update", "session": self._session, "run": self.run.name, "metadata": metrics})

    # -- lifecycle ---------------------------------------------------------------------------------------

    def finish(self, status: str = RunStatus.COMPLETED, error: str | None = None, *,
               message: str | None = None) -> None:
        """End the training run (completed, failed, cancelled, or paused to resume later), closing its last
        step; what it left open is closed by the store."""
        if not self._finished:
            self.run.end(status, error, message=message)
            self._finished = True  # not before: a value refused at the call leaves the run open

    def close(self, timeout: float | None = 30.0) -> None:
        """Complete the run (unless ``finish`` was called), write everything and stop the writer. Whatever
        the database does not take within ``timeout`` stays in the journal for the next recorder (or
        ``rolloutdb journal replay``); the log says so."""
        if self._closed:
            return
        self.finish()
        self._write_out_and_stop(timeout)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        stopped = isinstance(exc, JobInterrupted)
        if isinstance(exc, KeyboardInterrupt):
            self.finish(RunStatus.PAUSED, message="interrupted (Ctrl-C)")
            log.warning("rolloutdb recorder: run %r paused: interrupted by Ctrl-C. Run the same code again to "
                        "resume it, or `rolloutdb jobs cancel %s` to end it", self.run.name, self.run.name)
        elif exc is not None and not stopped:
            self.finish(RunStatus.FAILED, f"{exc_type.__name__}: {exc}")
        self.close()
        return stopped  # paused or cancelled from outside: leaving the block is the normal way out


class DecisionLogger(_Pumped):
    """Logs a policy's decisions and its subjects' signals from a service that must not wait for the database:
    the recorder's machinery (a call checks, encodes and queues its record for a few microseconds; a writer process
    applies them in batches through ``store.recording``; while the database is away, slow or hanging they wait in
    memory, then in the journal, and are written when it is back). A decision or signal the database refuses (an
    undeclared domain, action or kind) is reported by ``flush()`` and ``health()``, and holds back no other.

        with rolloutdb.DecisionLogger("postgresql://...") as decisions:
            decisions.log("memory", memory_id, "insert", reason=why, state=features, propensity=0.9)
            decisions.signal(memory_id, "hit")

    ``target``, ``project``, ``token`` and the options are the ``Recorder``'s."""

    def __init__(self, target: str | Store | None = None, *, project: str | None = None, token: str | None = None,
                 flush_interval: float = 1.0, flush_size: int = 2000, max_pending: int = 100_000,
                 max_lag: float = 5.0, timeout: float = 10.0, journal_dir: str | Path = JOURNAL_DIRECTORY,
                 start_timeout: float = 15.0) -> None:
        self._what = "the decision log"
        # No run to heartbeat or read a pause from: the pump asks the writer only when records wait.
        self._start_pump(target, project, token, None, flush_interval=flush_interval, flush_size=flush_size,
                         max_pending=max_pending, max_lag=max_lag, timeout=timeout, journal_dir=journal_dir,
                         control_interval=NO_CONTROL, start_timeout=start_timeout)
        self._finalizer = weakref.finalize(self, _write_out, self._pump)

    def log(self, domain: str, subject_id: str, action: str, *, reason: str | None = None, state: Any = None,
            context: Any = None, policy_version: str | None = None, propensity: float | None = None,
            at: datetime | None = None) -> str:
        """Queue one decision (``store.decisions.log``'s arguments; ``at`` defaults to now); returns its id."""
        id = new_id()
        record = {"op": "decision", "id": id, "domain": domain, "subject_id": subject_id, "action": action,
                  "at": _now() if at is None else aware_time("at", at)}
        # Left out when None (the writer's default): a shorter line to encode and to send.
        if reason is not None:
            record["reason"] = reason
        if state is not None:
            record["state"] = state
        if context is not None:
            record["context"] = context
        if policy_version is not None:
            record["policy_version"] = policy_version
        if propensity is not None:
            record["propensity"] = propensity
        self._record(record, check_given_fields)
        return id

    def signal(self, subject_id: str, kind: str, value: float = 1.0, *, at: datetime | None = None,
               domain: str = "memory", data: Any = None) -> str:
        """Queue one signal (``store.signals.add``'s arguments; ``at`` defaults to now); returns its id."""
        id = new_id()
        record = {"op": "signal", "id": id, "domain": domain, "subject_id": subject_id, "kind": kind, "value": value,
                  "at": _now() if at is None else aware_time("at", at)}
        if data is not None:
            record["data"] = data
        self._record(record, check_given_fields)
        return id

    def close(self, timeout: float | None = 30.0) -> None:
        """Write everything and stop the writer; what the database does not take within ``timeout`` stays in the
        journal for the next logger or recorder on this database and project (or ``rolloutdb journal replay``)."""
        if not self._closed:
            self._write_out_and_stop(timeout)

    def __enter__(self) -> DecisionLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RunHandle:
    """A run being recorded: groups of rollouts (eval, baseline) or steps (training)."""

    def __init__(self, recorder: Recorder, name: str, kind: str, *, config: Mapping[str, Any] | None = None,
                 total_steps: int | None = None, parent: RunHandle | None = None, parent_step: int | None = None,
                 resume: bool | None = None, stale_after: float = DEFAULT_STALE_AFTER) -> None:
        self._recorder, self.name, self.kind = recorder, name, kind
        self._open_step: StepHandle | None = None
        recorder._record({"op": "run.start", "session": recorder._session, "id": new_id(), "name": name,
                          "kind": kind, "config": dict(config or {}), "total_steps": total_steps,
                          "parent": parent.name if parent else None, "parent_step": parent_step, "resume": resume,
                          "stale_after": stale_after, "started_at": _now()})

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

    def end(self, status: str, error: str | None = None, *, message: str | None = None) -> None:
        if self._open_step is not None:
            self._open_step.finish(status=StepStatus.COMPLETED if status == RunStatus.COMPLETED else StepStatus.FAILED)
            self._open_step = None
        self._recorder._record({"op": "run.end", "session": self._recorder._session, "run": self.name,
                                "status": str(status), "error": error, "message": message, "ended_at": _now()})

    def finish(self, status: str = RunStatus.COMPLETED, error: str | None = None) -> None:
        """End this run (an eval or baseline run when its rollouts are recorded)."""
        self.end(status, error)

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(RunStatus.FAILED if exc else RunStatus.COMPLETED, f"{exc_type.__name__}: {exc}" if exc else None)


class StepHandle:
    """One training step: its groups, its metrics; completed on ``finish`` or when the next one starts."""

    def __init__(self, run: RunHandle, number: int) -> None:
        self.run, self.number, self._done = run, number, False
        run._recorder._record({"op": "step.start", "session": run._recorder._session, "run": run.name,
                               "number": number, "started_at": _now()})

    def group(self, task: Task | str | None = None, *, source: str = "step", size: int | None = None,
              metadata: Mapping[str, Any] | None = None) -> GroupHandle:
        return GroupHandle(self.run, self.number, source, task, size, metadata)

    def log(self, **metrics: Any) -> None:
        """Merge metrics (loss, learning rate, ...) into the step's metrics."""
        self.run._recorder._record({"op": "step.update", "session": self.run._recorder._session, "run": self.run.name,
                                    "number": self.number, "metrics": metrics})

    def finish(self, status: str = StepStatus.COMPLETED, **metrics: Any) -> None:
        if not self._done:
            self.run._recorder._record({"op": "step.update", "session": self.run._recorder._session,
                                        "run": self.run.name, "number": self.number, "metrics": metrics,
                                        "status": str(status), "ended_at": _now()})
            self._done = True

    def __enter__(self) -> StepHandle:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not isinstance(exc, KeyboardInterrupt):  # interrupted: the run's pause closes it, to run again
            self.finish(StepStatus.FAILED if exc else StepStatus.COMPLETED)


class GroupHandle:
    """Several rollouts of one task; the store keeps its counts and reward statistics."""

    def __init__(self, run: RunHandle, step: int | None, source: str, task: Task | str | None,
                 size: int | None, metadata: Mapping[str, Any] | None) -> None:
        self.run, self.step, self.id = run, step, new_id()
        self._task_id, self._task = (task.id, None) if isinstance(task, Task) else (None, task)
        run._recorder._record({"op": "group.start", "session": run._recorder._session, "id": self.id, "run": run.name,
                               "step": step, "source": source,
                               "task_id": self._task_id, "task": self._task, "size": size,
                               "metadata": dict(metadata or {}), "created_at": _now()})

    def rollout(self, input: Any = None, *, mode: str | None = None,
                metadata: Mapping[str, Any] | None = None) -> RolloutHandle:
        return RolloutHandle(self, input, mode, metadata)


class RolloutHandle:
    """One episode: its turns in order, then its result."""

    def __init__(self, group: GroupHandle, input: Any, mode: str | None, metadata: Mapping[str, Any] | None) -> None:
        self.group, self.id, self._turns, self._done = group, new_id(), 0, False
        self._record = group.run._recorder._record
        self._record({"op": "rollout.start", "session": group.run._recorder._session, "id": self.id,
                      "run": group.run.name, "group_id": group.id,
                      "step": group.step, "task_id": group._task_id, "task": group._task, "input": input,
                      "mode": mode, "metadata": dict(metadata or {}), "started_at": _now()})

    def turn(self, observation: Any = None, action: Any = None, *, thinking: str | None = None,
             model_response: Any = None, action_result: Any = None, reward: float | None = None,
             done: bool | None = None, duration_seconds: float | None = None, success: bool | None = None,
             error: str | None = None, metrics: Mapping[str, Any] | None = None, tokens: Any = None,
             logprobs: Any = None, kind: str | None = None, screenshot: bytes | None = None,
             screenshots: Mapping[str, bytes] | None = None) -> None:
        """One turn. A GUI agent's: its ``kind`` (step type), its ``action`` (a ``GuiAction``'s fields), and its
        ``screenshot`` (a PNG's bytes) or ``screenshots`` by role ({"before": ..., "after": ...}): bytes, kept as
        given (not copied), hashed and stored once by the writer, and linked from the turn."""
        record = {"op": "turn", "id": new_id(), "rollout_id": self.id, "turn_index": self._turns, "created_at": _now()}
        # Left out when None (the writer's default): a shorter line, and no null for the encoder to tell from a NaN.
        # One plain test per field, not a loop over (name, value) pairs: this is the loop's hottest call, and the
        # pairs cost it half a microsecond more.
        if observation is not None:
            record["observation"] = observation
        if thinking is not None:
            record["thinking"] = thinking
        if action is not None:
            record["action"] = action
        if action_result is not None:
            record["action_result"] = action_result
        if model_response is not None:
            record["model_response"] = model_response
        if reward is not None:
            record["reward"] = reward
        if done is not None:
            record["done"] = done
        if duration_seconds is not None:
            record["duration_seconds"] = duration_seconds
        if success is not None:
            record["success"] = success
        if error is not None:
            record["error"] = error
        if metrics is not None:
            record["metrics"] = metrics
        if tokens is not None:
            record["tokens"] = tokens
        if logprobs is not None:
            record["logprobs"] = logprobs
        if kind is not None:
            record["kind"] = kind
        if screenshot is None and screenshots is None:
            self._record(record, check_turn_content)
        else:
            self.group.run._recorder._record_with_screenshots(record, screenshot, screenshots)
        self._turns += 1

    def finish(self, reward: float | None = None, *, success: bool | None = None, validation: Any = None,
               metrics: Mapping[str, Any] | None = None, error: str | None = None) -> None:
        """The result. A rollout with an ``error`` failed; otherwise it succeeded (``success`` says
        whether the agent solved the task)."""
        if self._done:
            return
        self._record({"op": "rollout.end", "id": self.id, "status": "failed" if error else "succeeded",
                      "reward": reward, "success": success, "validation": validation, "metrics": dict(metrics or {}),
                      "error": error, "ended_at": _now()})
        self._done = True  # not before: a value refused at the call can be given again

    def __enter__(self) -> RolloutHandle:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not isinstance(exc, KeyboardInterrupt):  # interrupted: the run's pause closes it as cancelled
            self.finish(error=f"{exc_type.__name__}: {exc}" if exc else None)


__all__ = ["DecisionLogger", "FlushResult", "GroupHandle", "JournalInfo", "Recorder", "RecorderHealth", "ReplayResult",
           "RolloutHandle", "RunHandle", "StepHandle", "count_journal_records", "journal_folder", "list_journals",
           "replay_journals"]
