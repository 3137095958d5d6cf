"""The recorder's pump: moves recorded operations from memory to the writer process, and to the journal when
the database cannot keep up or is away.

The training loop appends encoded lines to a list (a line with screenshots: a ``_frames.Framed`` entry). While
all is well, the loop's own thread also sends them: about once per ``flush_interval`` it settles the writer's
answer to the last batch and sends the next, each a system call that does not wait. Everything else is the pump's
thread's: batches oldest first (records left by sessions that are gone, then this session's journal, then
memory), waiting for an answer with a timeout, and treating a writer that does not answer like a database that
refuses: it kills the process, keeps the batch, backs off and tries again with a new process. Memory holds at
most ``max_pending`` records (and ``MAX_PENDING_BYTES`` of screenshots) and none older than ``max_lag`` seconds;
the rest goes to the journal, so a crash of the training process loses little, and an outage nothing. The thread
sleeps while the loop's thread sends: each time it runs, the loop must hand it the interpreter lock and wait for
the lock to come back, which costs far more than the sending itself.
"""

from __future__ import annotations

import bisect
import collections
import fcntl
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ._frames import Entry, Framed, stream
from ._journal import MAX_BATCH_BYTES, LeftoverFile, SpillFile, header, journal_folder, leftover_files
from ._pipe import LENGTH, Receiver, pipe, send

log = logging.getLogger("rolloutdb.recorder")
STARTUP_ALLOWANCE = 60.0  # a new writer process imports and connects before its first answer
BACKOFF_LIMIT = 5.0
MAX_PENDING_BYTES = 64 << 20  # screenshots held in memory; beyond, they go to the journal (as records beyond max_pending)


@dataclass
class Batch:
    lines: list[bytes]
    own: int  # how many are this session's records (a leftover journal's are not)
    heartbeat: bool
    source: str  # "memory", "journal" or "leftover"
    offset: int = 0  # for "journal": where reading the file stopped
    folded: bool = False  # for "memory": copied into the journal while it was being written


@dataclass
class Counters:
    done: int = 0  # this session's records applied, refused or dropped, in order
    written: int = 0
    failed: int = 0
    dropped: int = 0
    replayed: int = 0  # records of sessions that were gone, written by this one
    rejections: list[dict[str, Any]] = field(default_factory=list)


class WriterProcess:
    """The child process that writes, and the two pipes to it."""

    def __init__(self, url: str, project: str, token: str | None) -> None:
        to_child, self._requests = pipe()
        self.capacity = fcntl.fcntl(self._requests, fcntl.F_GETPIPE_SZ)  # a message this size is sent at once
        answers, from_child = pipe()
        # The child finds this very rolloutdb, however the parent found it (an install, a checkout, sys.path).
        package_root = str(Path(__file__).resolve().parents[2])
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rolloutdb.recorder._process", str(to_child), str(from_child)],
            pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL, env=environment)
        os.close(to_child)
        os.close(from_child)
        self._answers = Receiver(answers)
        self._open = True
        self.fresh = True
        # The token goes through the pipe, not the command line, which other users of the machine can read.
        self.send(orjson.dumps({"url": url, "project": project, "token": token}))

    def send(self, message: bytes) -> None:
        try:
            send(self._requests, message)
        except BrokenPipeError:
            raise OSError(f"the recorder's writer process ended (exit code {self.process.poll()})") from None

    def answer(self, wait: float) -> dict[str, Any] | None:
        """The answer, if one came within ``wait`` seconds; EOFError if the process ended."""
        if not self._answers.ready(wait):
            return None
        self.fresh = False
        return orjson.loads(self._answers.receive())

    def close(self, *, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        if self._open:  # the pump's thread and stop() may both close a writer that hangs
            self._open = False
            os.close(self._requests)
            os.close(self._answers.fd)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Pump:
    def __init__(self, url: str, project: str, token: str | None, run: str | None, session: str, *,
                 journal_dir: str | os.PathLike,
                 flush_interval: float, flush_size: int, max_pending: int, max_lag: float, timeout: float,
                 control_interval: float) -> None:
        self._url, self._project, self._token, self._run = url, project, token, run
        self._interval, self._size, self._max_pending, self._max_lag = flush_interval, flush_size, max_pending, max_lag
        self._timeout, self._control_interval = timeout, control_interval
        self._bound_every = min(max_lag / 4, 0.5)  # how often memory's bounds are checked while a batch is out
        folder = journal_folder(journal_dir, url, project)
        # No run: a decision logger's records (the journal says so; the writer reads no run's control).
        self._spill = SpillFile(folder, header(url, project, "(decision log)" if run is None else run, session))
        self._leftovers = collections.deque(leftover_files(folder, except_path=self._spill.path))
        # A list, not a deque: the pump takes and puts back records in slices, each one C-level step under the
        # interpreter lock, instead of a Python loop that would hold the lock while the training loop waits.
        self._memory: list[bytes] = []
        self._puts = itertools.count(1)
        self.put_count = 0
        self._marks: collections.deque[tuple[int, float]] = collections.deque()  # (records put by then, when)
        self.counts = Counters()
        self._in_flight: Batch | None = None
        self._counted_in_journal = 0  # leading journal records that were applied (and counted) already
        self._replaying: tuple[LeftoverFile, Any] | None = None
        self._writer: WriterProcess | None = None
        self.connected = False
        self.outages = 0  # times the database was found away
        self.quiet_start = True  # a refused run.start is the constructor's to raise, not to log
        self.last_error: str | None = None
        self._outage: str | None = None  # why the database was last found away
        self.journal_error: str | None = None
        self.control: str | None = None  # what the run was asked to do, as the writer last read it
        self.state: Any = None  # the state the run saved, likewise
        self._warned: set[str] = set()
        self._retry_at = 0.0
        self._backoff = flush_interval
        self._last_exchange = float("-inf")
        self._started = time.monotonic()
        self._wake = threading.Event()
        self._waiters = 0
        # Whoever moves records holds this: the pump's thread for a round, or the training loop's thread
        # for a moment (it never waits for it). A batch the loop's thread sent has its answer due then.
        self._moving = threading.Lock()
        self._answer_due: float | None = None
        self._serve_at = 0.0  # when the loop's thread looks again
        self._served_at = float("-inf")  # when it last sent or settled a batch
        self._handed_back = False  # it left a batch it was due to send (screenshots, too large) to the pump's thread
        self._content_put = 0  # bytes of records with screenshots put since memory was last measured
        self._progress = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="rolloutdb-recorder", daemon=True)
        self._thread.start()

    # -- the training loop's side ---------------------------------------------------------------------

    def put(self, line: Entry) -> None:
        self._memory.append(line)
        self.put_count = next(self._puts)
        if time.monotonic() >= self._serve_at:
            self._serve()

    def put_with_content(self, entry: Framed) -> None:
        """``put`` for a record with screenshots: memory also holds at most ``MAX_PENDING_BYTES`` of them."""
        self._content_put += len(entry)
        if self._content_put > MAX_PENDING_BYTES:
            self._wake.set()
        self.put(entry)

    def _serve(self) -> None:
        """On the training loop's thread, about once per interval: settle the answer to the batch it sent and send
        the next one, never waiting (not even for the pump's thread). What it cannot do wakes the pump's thread."""
        now = time.monotonic()
        self._serve_at = now + self._interval
        if len(self._memory) > self._max_pending:
            self._wake.set()
        if not self._moving.acquire(blocking=False):
            return
        try:
            self._mark()
            self._hand_over(now)
        except Exception:  # noqa: BLE001 - the loop must never see it; the pump's thread takes over
            self._unexpected()
            self._wake.set()
        finally:
            self._moving.release()

    def _hand_over(self, now: float) -> None:
        if self._answer_due is not None:
            writer = self._writer
            try:
                answer = writer.answer(0)
            except (OSError, EOFError):
                answer = None
                self._answer_due = now  # the pump's thread finds out what happened
            if answer is None:
                if now >= self._answer_due:
                    self._wake.set()
                return
            if not self._settle(self._in_flight, self._answered(answer)):
                self._wake.set()
                return
            self._served_at = now
        if not self._memory or not self._may_hand_over(now):
            if len(self._memory) >= self._size:
                self._wake.set()
            return
        lines = self._take_oldest(self._size)
        request = self._request(lines, heartbeat=True, whole=True)
        # Screenshots and what the pipe cannot take at once are the pump thread's to send.
        if request is None or len(request) + LENGTH.size > self._writer.capacity \
                or not self._send(request, quietly=True):
            self._put_back(lines)
            self._handed_back = True
            self._wake.set()
            return
        self._take(Batch(lines, own=len(lines), heartbeat=True, source="memory"))
        self._served_at = now
        if len(self._memory) >= self._size:  # a burst: look again soon
            self._serve_at = now + min(self._interval, 0.01)

    def _may_hand_over(self, now: float) -> bool:
        """Whether the loop's thread may send memory's oldest records now: nothing older waits, the writer is up
        and answered before, the database is there."""
        return (self._in_flight is None and self.connected and self._writer is not None and not self._writer.fresh
                and now >= self._retry_at and not self._leftovers and not self._spill.unread and not self._stopping)

    def wait_for(self, target: int, timeout: float | None, *, unless_away: bool = False) -> bool:
        """Wait until this session's first ``target`` records are written or refused (or, ``unless_away``,
        until the database is found away)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiters += 1  # someone waits: send what there is, without waiting for a full batch
        self._wake.set()
        try:
            with self._progress:
                while self.counts.done < target and not (unless_away and self.outages):
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._progress.wait(min(remaining, 0.5) if remaining is not None else 0.5)
                    self._wake.set()
            return True
        finally:
            self._waiters -= 1

    @property
    def in_memory(self) -> int:
        in_flight = self._in_flight
        return len(self._memory) + (in_flight.own if in_flight and in_flight.source == "memory" else 0)

    @property
    def in_journal(self) -> int:
        return self._spill.unread

    @property
    def journal_path(self) -> Path:
        return self._spill.path

    def stop(self, timeout: float | None) -> None:
        """Stop the thread and the writer; what is still in memory goes to the journal."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():  # stuck waiting for a writer that does not answer: kill it
            if self._writer is not None:
                self._writer.process.kill()
            self._thread.join(5)
        self._keep(self._take_oldest(len(self._memory)), all_of_them=True)
        self._spill.release()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- the pump's thread -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            # Records go out in full batches as they come, the rest once per interval (or when someone waits
            # for them); while the loop's thread sends them, this one sleeps longer and leaves memory to it.
            serving = time.monotonic() - self._served_at < self._interval  # the loop's thread moves records
            ticked = not self._wake.wait(max(self._interval, self._max_lag / 2) if serving else self._interval)
            self._wake.clear()
            partial = (ticked and time.monotonic() - self._served_at >= self._interval) or self._waiters > 0 \
                or self._stopping or self._handed_back
            self._handed_back = False
            with self._moving:
                self._mark()
                self._bound_memory()
                try:
                    if self._answer_due is not None:  # a batch the loop's thread sent
                        self._settle(self._in_flight, self._await_answer())
                    while (batch := self._next_batch(partial)) is not None:
                        if not self._deliver(batch):
                            break
                        self._bound_memory()
                    if self._in_flight is None and self._control_due():
                        self._exchange([], heartbeat=True)
                except Exception:  # noqa: BLE001 - the pump must outlive anything; the loop must never see it
                    self._unexpected()
            with self._progress:
                self._progress.notify_all()
            if self._stopping:
                break

    def _next_batch(self, partial: bool) -> Batch | None:
        """The oldest records not yet written: a leftover journal's, this session's journal's, then memory's
        (a batch short of ``flush_size`` only if ``partial``)."""
        if self._in_flight is not None:
            return self._in_flight if time.monotonic() >= self._retry_at else None
        if time.monotonic() < self._retry_at:
            return None
        while self._leftovers:
            batch = self._leftover_batch()
            if batch is not None:
                return batch
        if self._spill.unread:
            lines, offset = self._spill.read(self._size)
            if lines:
                counted = min(self._counted_in_journal, len(lines))  # settled when the batch is
                return self._take(Batch(lines, own=len(lines) - counted, heartbeat=True, source="journal",
                                        offset=offset))
        if not partial and len(self._memory) < self._size:
            return None
        lines = self._take_oldest(self._size)
        if sum(map(len, lines)) > MAX_BATCH_BYTES:
            cut = bisect.bisect_right(list(itertools.accumulate(map(len, lines))), MAX_BATCH_BYTES) or 1
            self._put_back(lines[cut:])
            lines = lines[:cut]
        return self._take(Batch(lines, own=len(lines), heartbeat=True, source="memory")) if lines else None

    def _take_oldest(self, count: int) -> list[bytes]:
        lines = self._memory[:count]
        del self._memory[:len(lines)]  # callers only append: the first len(lines) are still these
        return lines

    def _put_back(self, lines: list[bytes]) -> None:
        self._memory[0:0] = lines

    def _take(self, batch: Batch) -> Batch:
        self._in_flight = batch
        return batch

    def _leftover_batch(self) -> Batch | None:
        """The next batch of the oldest journal left by a session that is gone."""
        if self._replaying is None:
            claimed = LeftoverFile.claim(self._leftovers[0])
            if claimed is None:  # its session still lives
                self._leftovers.popleft()
                return None
            self._replaying = (claimed, claimed.batches(self._size))
        claimed, batches = self._replaying
        lines = next(batches, None)
        if lines is None:
            claimed.done(remove=True)
            self._replaying = None
            self._leftovers.popleft()
            return None
        return self._take(Batch(lines, own=0, heartbeat=False, source="leftover"))

    def _deliver(self, batch: Batch) -> bool:
        """Send one batch and settle it; False when the database is away (the batch is kept)."""
        return self._settle(batch, self._exchange(batch.lines, heartbeat=batch.heartbeat))

    def _settle(self, batch: Batch, answer: dict[str, Any] | None) -> bool:
        """Count a batch by the writer's answer; when there is none (the database is away), keep it."""
        if batch.source != "leftover":
            self._in_flight = None
        if answer is None:
            if batch.source == "memory" and not batch.folded:
                self._put_back(batch.lines)  # still the oldest: nothing went to the journal
            return False
        self._in_flight = None
        rejected = answer["rejected"]
        for rejection in rejected:
            self._report(rejection)
        if batch.source == "journal":
            self._spill.consumed(len(batch.lines), batch.offset)
            self._counted_in_journal -= len(batch.lines) - batch.own
        if batch.folded:
            self._counted_in_journal += len(batch.lines)  # applied now; their copies in the journal are extra
        if batch.source == "leftover":
            self.counts.replayed += len(batch.lines) - len(rejected)
        own_rejected = min(len(rejected), batch.own)
        with self._progress:
            self.counts.written += batch.own - own_rejected
            self.counts.failed += own_rejected
            self.counts.done += batch.own
            self._progress.notify_all()
        return True

    def _exchange(self, lines: list[bytes], *, heartbeat: bool) -> dict[str, Any] | None:
        """One request to the writer and its answer; None (and the database marked away) if it failed."""
        if not self._send(self._request(lines, heartbeat=heartbeat)):
            return None
        return self._await_answer()

    def _request(self, lines: list[Entry], *, heartbeat: bool, whole: bool = False) -> bytes | list[bytes] | None:
        """The request for a batch: bytes, or pieces when it has screenshots (None then, if ``whole``)."""
        entries = [orjson.dumps({"heartbeat": heartbeat, "run": self._run}), *lines]
        if whole:
            try:
                return b"\n".join(entries)
            except TypeError:  # screenshots among them
                return None
        return stream(entries)

    def _send(self, request: bytes | list[bytes], *, quietly: bool = False) -> bool:
        """Send a request, starting a writer if there is none; False if that failed (and, unless ``quietly``,
        the database marked away: the loop's thread leaves that to the pump's)."""
        try:
            if self._writer is None:  # one that ended is found when it is sent to (no system call per batch)
                self._writer = WriterProcess(self._url, self._project, self._token)
            self._writer.send(request)
        except OSError as exc:
            if not quietly:
                self._writer_failed(exc)
            return False
        self._last_exchange = time.monotonic()
        self._answer_due = self._last_exchange + self._timeout + (STARTUP_ALLOWANCE if self._writer.fresh else 0.0)
        return True

    def _await_answer(self) -> dict[str, Any] | None:
        """The answer to the request sent; None (and the database marked away) if none came in time."""
        try:
            # Each wake-up takes the training loop's interpreter lock: wait long, waking only to keep memory
            # bounded. A writer that ends closes the pipe, which ends the wait at once (EOFError).
            while (answer := self._writer.answer(
                    min(self._bound_every, max(0.0, self._answer_due - time.monotonic())))) is None:
                self._bound_memory()
                if time.monotonic() > self._answer_due:  # a database that hangs: treated as one that refuses
                    raise TimeoutError(f"the database did not answer within {self._timeout:g} s")
        except (OSError, EOFError) as exc:  # the writer hangs or went away mid-request (killed, crashed)
            self._writer_failed(exc)
            return None
        return self._answered(answer)

    def _writer_failed(self, exc: BaseException) -> None:
        self._answer_due = None
        if self._writer is not None:
            self._writer.close(kill=True)
            self._writer = None
        self._went_down(str(exc) or f"the recorder's writer process stopped ({type(exc).__name__})")

    def _answered(self, answer: dict[str, Any]) -> dict[str, Any] | None:
        """The writer's answer, or None when it says the database is away."""
        self._answer_due = None
        if "outage" in answer:
            self._went_down(answer["outage"])
            return None
        self._came_back()
        if "control" in answer:
            self.control, self.state = answer["control"], answer["state"]
        return answer

    def _control_due(self) -> bool:
        now = time.monotonic()
        return not self._stopping and now >= self._retry_at and now - self._last_exchange >= self._control_interval

    # -- outages, backlog and the journal -----------------------------------------------------------------

    def _went_down(self, reason: str) -> None:
        self.connected = False
        self.outages += 1
        self.last_error = self._outage = reason
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(max(self._backoff * 2, 0.05), BACKOFF_LIMIT)
        self._warn_once("outage", "rolloutdb recorder: cannot write to the database (%s); keeping the records "
                        "and retrying", reason)

    def _came_back(self) -> None:
        if not self.connected and "outage" in self._warned:
            log.warning("rolloutdb recorder: the database is back; writing the records it kept")
            self._warned.discard("outage")
        self.connected = True
        self._backoff = self._interval

    def _mark(self) -> None:
        """Note how many records were put by now: records older than ``max_lag`` are found by these marks."""
        self._marks.append((self.put_count, time.monotonic()))

    def _bound_memory(self) -> None:
        """Keep at most ``max_pending`` records, none older than ``max_lag`` seconds, in memory."""
        too_old = 0
        horizon = time.monotonic() - self._max_lag
        while self._marks and self._marks[0][1] < horizon:
            put_by_then, _ = self._marks.popleft()
            too_old = max(too_old, put_by_then - (self.put_count - len(self._memory)))
        excess = max(len(self._memory) - self._max_pending, too_old)
        if self._content_put > MAX_PENDING_BYTES:  # counted as put, never as sent: what memory holds is less
            self._content_put = sum(map(len, self._memory))
            if self._content_put > MAX_PENDING_BYTES:
                excess, self._content_put = len(self._memory), 0
        if excess <= 0:
            return
        if self.connected:
            self._warn_once("behind", "rolloutdb recorder: training records faster than the database takes them "
                            "(%s records in %.0f s, %s written, %s waiting); keeping the excess in the journal %s",
                            f"{self.put_count:,}", time.monotonic() - self._started, f"{self.counts.written:,}",
                            f"{len(self._memory) + self._spill.unread:,}", self._spill.path)
        self._keep(self._take_oldest(excess))

    def _keep(self, lines: list[bytes], *, all_of_them: bool = False) -> None:
        """Move records out of memory into the journal; when it cannot be written, keep them in memory up
        to the limit and drop (and count) the oldest beyond it."""
        if not lines:
            return
        folding = (self._in_flight is not None and self._in_flight.source == "memory" and not self._in_flight.folded
                   and not self._spill.unread)
        if folding:  # older than these and perhaps never applied: into the journal first, to keep the order
            lines = self._in_flight.lines + lines
        try:
            self._spill.append(lines)
        except OSError as exc:
            self.journal_error = f"cannot write the journal {self._spill.path}: {exc}"
            self.last_error = self.journal_error
            self._warn_once("journal", "rolloutdb recorder: %s; keeping up to %s records in memory instead",
                            self.journal_error, f"{self._max_pending:,}")
            if folding:
                lines = lines[len(self._in_flight.lines):]
            keep = 0 if all_of_them else max(0, self._max_pending - len(self._memory))
            lost = max(0, len(lines) - keep)
            self._put_back(lines[lost:])
            if lost:
                with self._progress:
                    self.counts.dropped += lost
                    self.counts.done += lost
                if "lost" not in self._warned or all_of_them:  # once while it goes on, and at the end
                    self._warned.add("lost")
                    log.error("rolloutdb recorder: records lost (%s so far): the database did not take them "
                              "(%s) and %s", f"{self.counts.dropped:,}", self._outage or "it is slow",
                              self.journal_error)
            return
        if folding:
            self._in_flight.folded = True

    def _unexpected(self) -> None:
        log.exception("rolloutdb recorder: unexpected error in the writer thread; records are kept")
        self._went_down("unexpected error in the recorder's writer thread (logged)")

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    def _report(self, rejection: dict[str, Any]) -> None:
        self.last_error = f"{rejection['subject']} rejected: {rejection['message']}"
        self.counts.rejections.append(rejection)
        if self.quiet_start and rejection["op"] == "run.start":
            return
        log.error("rolloutdb recorder: the database rejected %s (%s): %s", rejection["subject"],
                  rejection["error"], rejection["message"])
