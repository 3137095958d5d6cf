"""Recorder overhead: what recording costs a training loop, and how fast the writer drains.

    python benchmarks/recorder_overhead.py [--calls 20000] [--pairs 600] [--rounds 3] [--drain 20000]
                                           [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
                                           [--no-postgres]

Runs on a throwaway SQLite file and a throwaway PostgreSQL database, through the public Recorder API
only; every Recorder records a run of its own (a fresh name). A shared machine's speed changes from one
second to the next (the same pure-Python work takes 8.5 ms, then 15 ms a few seconds later), so every
target compares recorded and unrecorded work done within milliseconds of each other. Measured per backend:
1. turn() in a burst: --calls calls back to back with nothing between them, timed in batches of
   1,000 while the writer drains; µs per call is the median of the batches. Target < 10 µs.
2. and 3. One training loop with a live Recorder: groups of 8 rollouts of 10 turns, a step every 4
   groups, 1 ms of CPU work per turn. The work is a fixed count of pure-Python operations (calibrated to
   ~1 ms at start; like a Python policy step it never lets go of the GIL by itself), not a wait for a
   clock: time the recorder takes from the loop makes the loop longer instead of being absorbed.
   Recorded and unrecorded rollouts alternate, --pairs pairs of them (the order within a pair flipping
   each time); both build the same turn payloads and do the same work, the recorded one also makes the
   recording calls (its group's step() and group() calls too). Every recording call is timed alone with
   perf_counter_ns, and so is an empty interval right after it; the unrecorded rollout times two empty
   intervals at the same places, so both sides pay for the clock alike.
2. turn() amid work: the mean over every recorded turn() of its time minus its empty interval's (a rare
   slow call counts in full), with a bootstrap 95% interval of that mean and single calls' p50 and p99.
   Target < 10 µs.
3. Loop slowdown: Σ recorded rollouts' time / Σ unrecorded rollouts' time − 1, plus what the recorder does
   in the training process outside the calls: its pump thread (``rolloutdb-recorder``) runs beside the
   loop and takes the interpreter lock from it, and whatever lands on a rollout lands on either side
   alike, so the thread's CPU time over the loop (from /proc/self/task/<tid>/schedstat) is charged in full
   to the recorded rollouts — an upper bound, as part of it is in both sides' times already. Beside it:
   the median of the pairs' own ratios with their middle half, and a bootstrap 95% interval. Target < 2 %.
   The writer process's CPU per loop is a detail, not charged: it runs on another core, and the product
   assumes two or more (on one core, or when every core is busy, it competes with the loop: the report
   gives the load average and says when the machine was busy).
   Also in the details, the old comparison of whole loops: recorded and unrecorded loops of --turns
   turns taking turns for --rounds rounds, the median of the rounds' ratios (it cannot resolve 2 % on a
   machine whose speed changes between loops), and the start (Recorder(), step(0), flush()) and
   flush() + close() of a Recorder, paid once per training run.
4. Writer throughput: once the run, step, group and rollout are written, --drain turn records are
   queued and timed until flush() returns (records/s, and whether flush() succeeded). No target.
A missed target is marked ✗ in the table; the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

import rolloutdb
from common import add_postgres_option, met, postgres_database, sqlite_database

console = Console(width=None if sys.stdout.isatty() else 100)
ROLLOUTS_PER_GROUP, TURNS_PER_ROLLOUT, GROUPS_PER_STEP = 8, 10, 4
TURNS_PER_GROUP = ROLLOUTS_PER_GROUP * TURNS_PER_ROLLOUT
BATCH = 1000
TARGET_CALL_US = 10.0
TARGET_SLOWDOWN = 0.02
FLUSH_TIMEOUT = 300.0


# -- the caller's side: work, payloads, recorders -----------------------------------------------------

def work(iterations: int) -> int:
    """A fixed amount of pure-Python CPU work (it never releases the GIL by itself)."""
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def calibrate(seconds: float = 0.001) -> int:
    """Iterations of work() that take ``seconds`` here when the machine is not busy elsewhere: calls of
    the size wanted, timed one by one, a low percentile of them (a shared machine has slow spells)."""
    iterations = 10_000
    for _ in range(3):
        times = []
        for _ in range(100):
            began = time.perf_counter()
            work(iterations)
            times.append(time.perf_counter() - began)
        iterations = max(1, round(iterations * seconds / sorted(times)[10]))
    return iterations


def turn_payload(n: int) -> tuple:
    """What a loop has at hand for one turn: (observation, action, reward, tokens), new objects each time."""
    return {"board": [n % 7, n % 5, n % 3]}, {"move": n % 4}, 0.1, {"prompt": 128, "completion": 16}


class NoopRollout:
    """A rollout that records nothing: the same call, to show what calling and timing cost alone."""

    def turn(self, observation=None, action=None, *, reward=None, tokens=None, **_) -> None:
        pass


_runs = 0


def new_recorder(url: str, journal: str, purpose: str, total_steps: int | None = None) -> rolloutdb.Recorder:
    """A Recorder on a run name never used before (a finished run's name is refused)."""
    global _runs
    _runs += 1
    return rolloutdb.Recorder(url, run=f"bench-{purpose}-{_runs}-{uuid.uuid4().hex[:8]}", journal_dir=journal,
                              total_steps=total_steps)


@dataclass
class Closed:
    seconds: float  # flush() and close()
    flushed: bool
    failed: int
    writer_cpu: float  # children_cpu() once everything was written, before the writer stops


def flush_and_close(recorder: rolloutdb.Recorder) -> Closed:
    began = time.perf_counter()
    flushed = recorder.flush(FLUSH_TIMEOUT)
    failed = recorder.health().failed
    writer_cpu = children_cpu()
    recorder.close()
    return Closed(time.perf_counter() - began, flushed, failed, writer_cpu)


# -- 1. turn() in a burst -----------------------------------------------------------------------------

def burst(rollout, payloads: list[tuple]) -> list[float]:
    """µs per call of each batch of BATCH calls, back to back."""
    samples = []
    for start in range(0, len(payloads), BATCH):
        chunk = payloads[start:start + BATCH]
        began = time.perf_counter_ns()
        for observation, action, reward, tokens in chunk:
            rollout.turn(observation=observation, action=action, reward=reward, tokens=tokens)
        samples.append((time.perf_counter_ns() - began) / len(chunk) / 1000)
    return samples


@dataclass
class Burst:
    batches: list[float]
    noop: list[float]
    closed: Closed


def measure_burst(url: str, journal: str, calls: int) -> Burst:
    recorder = new_recorder(url, journal, "burst", total_steps=1)
    rollout = recorder.step(0).group(task="burst", size=1).rollout(input={"burst": calls})
    recorder.flush(FLUSH_TIMEOUT)  # the run, step, group and rollout are in; the burst starts on an idle writer
    batches = burst(rollout, [turn_payload(n) for n in range(calls)])
    rollout.finish(reward=1.0, success=True)
    closed = flush_and_close(recorder)
    return Burst(batches, burst(NoopRollout(), [turn_payload(n) for n in range(calls)]), closed)


# -- 2. and 3. the training loop, recorded and unrecorded rollouts alternating ----------------------

def children_cpu() -> float:
    """CPU seconds used so far by this process's children (the recorder's writer), from /proc; 0 elsewhere."""
    total = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as children:
                for pid in children.read().split():
                    with open(f"/proc/{pid}/stat") as stat:
                        fields = stat.read().rpartition(")")[2].split()
                    total += int(fields[11]) + int(fields[12])  # utime, stime
    except OSError:
        return 0.0
    return total / os.sysconf("SC_CLK_TCK")


def pump_cpu() -> float:
    """CPU seconds used so far by the recorder's threads in this process (named ``rolloutdb-recorder``), from
    /proc: schedstat's nanoseconds where the kernel keeps them, else stat's clock ticks; 0 elsewhere."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.name != "rolloutdb-recorder" or thread.native_id is None:
            continue
        try:
            with open(f"/proc/self/task/{thread.native_id}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0]) / 1e9
        except OSError:
            try:
                with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
    return total


CALLS = ("step()", "group()", "rollout()", "turn()", "finish()")


@dataclass
class Interleaved:
    recorded: list[int] = field(default_factory=list)  # ns per recorded rollout (its group's step() and group() in)
    plain: list[int] = field(default_factory=list)  # ns per unrecorded rollout, its pair's partner
    calls: dict[str, list[int]] = field(default_factory=lambda: {call: [] for call in CALLS})  # ns, empty interval off
    pump_seconds: float = 0.0  # the recorder's thread's CPU over the loop
    writer_seconds: float = 0.0  # the writer process's CPU over the loop (and its flush)
    seconds: float = 0.0  # the whole loop
    closed: Closed | None = None

    @property
    def slowdown(self) -> float:
        """Recorded over unrecorded time, the pump thread's CPU charged to the recorded side."""
        return (sum(self.recorded) + self.pump_seconds * 1e9) / sum(self.plain) - 1

    @property
    def ratios(self) -> list[float]:
        return [mine / theirs - 1 for mine, theirs in zip(self.recorded, self.plain)]


def interleaved_loop(url: str, journal: str, pairs: int, iterations: int) -> Interleaved:
    """``pairs`` recorded and unrecorded rollouts, alternating, in one loop with one live Recorder."""
    groups = -(-pairs // ROLLOUTS_PER_GROUP)
    recorder, step, _ = start(url, journal, "interleaved", groups * TURNS_PER_GROUP)
    result = Interleaved()
    clock = time.perf_counter_ns
    calls = result.calls

    def timed(call: str, action: Callable[[], Any]) -> Any:
        """``action()`` timed alone, less an empty interval timed right after it."""
        began = clock()
        value = action()
        ended = clock()
        calls[call].append(ended - began - (clock() - clock()))
        return value

    def recorded(g: int, r: int) -> int:
        nonlocal step, group
        began = clock()
        if r == 0:
            if g % GROUPS_PER_STEP == 0 and g:
                step = timed("step()", lambda: recorder.step(g // GROUPS_PER_STEP))
            group = timed("group()", lambda: step.group(task=f"task-{g % 10}", size=ROLLOUTS_PER_GROUP))
        rollout = timed("rollout()", lambda: group.rollout(input={"group": g, "sample": r}))
        for n in range(TURNS_PER_ROLLOUT):
            observation, action, reward, tokens = turn_payload(n)
            work(iterations)
            start_ns = clock()
            rollout.turn(observation=observation, action=action, reward=reward, tokens=tokens)
            end_ns = clock()
            calls["turn()"].append(end_ns - start_ns - (clock() - clock()))
        timed("finish()", lambda: rollout.finish(reward=1.0, success=True))
        return clock() - began

    def plain(g: int, r: int) -> int:
        began = clock()
        if r == 0:
            if g % GROUPS_PER_STEP == 0 and g:
                clock(), clock(), clock(), clock()
            clock(), clock(), clock(), clock()
        clock(), clock(), clock(), clock()
        for n in range(TURNS_PER_ROLLOUT):
            observation, action, reward, tokens = turn_payload(n)
            work(iterations)
            clock(), clock(), clock(), clock()
        clock(), clock(), clock(), clock()
        return clock() - began

    group = None
    pump_before, writer_before, began = pump_cpu(), children_cpu(), time.perf_counter()
    for pair in range(pairs):
        g, r = divmod(pair, ROLLOUTS_PER_GROUP)
        if pair % 2 == 0:
            result.recorded.append(recorded(g, r))
            result.plain.append(plain(g, r))
        else:
            result.plain.append(plain(g, r))
            result.recorded.append(recorded(g, r))
    result.seconds = time.perf_counter() - began
    result.pump_seconds = pump_cpu() - pump_before
    result.closed = flush_and_close(recorder)
    result.writer_seconds = result.closed.writer_cpu - writer_before
    return result


def bootstrap(pairs: list[tuple[float, float]], statistic: Callable[[list[tuple[float, float]]], float],
              samples: int = 1000) -> tuple[float, float]:
    """A 95% interval of ``statistic`` over ``pairs`` resampled with replacement (a fixed seed: the same
    pairs give the same interval)."""
    chooser = random.Random(0)
    values = sorted(statistic(chooser.choices(pairs, k=len(pairs))) for _ in range(samples))
    return values[int(0.025 * samples)], values[int(0.975 * samples) - 1]


# -- the old comparison of whole loops (a detail) -----------------------------------------------------

def training_loop(recorder: rolloutdb.Recorder | None, step, turns: int, iterations: int) -> float:
    """Seconds for ``turns`` turns of work, recorded when a recorder is given (with its step 0 open)."""
    recording = recorder is not None
    group = rollout = None
    began = time.perf_counter()
    for g in range(turns // TURNS_PER_GROUP):
        if recording:
            if g % GROUPS_PER_STEP == 0 and g:
                step = recorder.step(g // GROUPS_PER_STEP)
            group = step.group(task=f"task-{g % 10}", size=ROLLOUTS_PER_GROUP)
        for r in range(ROLLOUTS_PER_GROUP):
            if recording:
                rollout = group.rollout(input={"group": g, "sample": r})
            for n in range(TURNS_PER_ROLLOUT):
                observation, action, reward, tokens = turn_payload(n)
                work(iterations)
                if recording:
                    rollout.turn(observation=observation, action=action, reward=reward, tokens=tokens)
            if recording:
                rollout.finish(reward=1.0, success=True)
    return time.perf_counter() - began


def start(url: str, journal: str, purpose: str, turns: int) -> tuple[rolloutdb.Recorder, object, float]:
    """A recorder, its step 0 (open), and the seconds that took (once per training run). It ends with a
    flush(), so that the writer is up and the run written: what a loop then pays is the steady state,
    not the writer still starting (its start-up is counted here instead)."""
    began = time.perf_counter()
    recorder = new_recorder(url, journal, purpose, total_steps=turns // TURNS_PER_GROUP // GROUPS_PER_STEP + 1)
    step = recorder.step(0)
    recorder.flush(FLUSH_TIMEOUT)
    return recorder, step, time.perf_counter() - began


@dataclass
class Loop:
    plain: list[float] = field(default_factory=list)
    recorded: list[float] = field(default_factory=list)
    startup: list[float] = field(default_factory=list)
    closed: list[Closed] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [mine / theirs for mine, theirs in zip(self.recorded, self.plain)]


def measure_loop(url: str, journal: str, turns: int, rounds: int, iterations: int,
                 status: Callable[[str], None]) -> Loop:
    """Recorded and unrecorded loops taking turns, the order flipping every round; a warm-up pair first."""
    loop = Loop()

    def plain(keep: bool, n: int) -> None:
        seconds = training_loop(None, None, n, iterations)
        if keep:
            loop.plain.append(seconds)

    def recorded(keep: bool, n: int) -> None:
        recorder, step, startup = start(url, journal, "loop", n)
        seconds = training_loop(recorder, step, n, iterations)
        closed = flush_and_close(recorder)
        if keep:
            loop.recorded.append(seconds)
            loop.startup.append(startup)
            loop.closed.append(closed)

    sides = {"unrecorded": plain, "recorded": recorded}
    status("whole loops: warm-up")
    for side in sides.values():
        side(False, max(TURNS_PER_GROUP * GROUPS_PER_STEP, turns // 4))
    order = list(sides)
    for round in range(rounds):
        for side in order if round % 2 == 0 else reversed(order):
            status(f"whole loops, round {round + 1} of {rounds}: {side}")
            sides[side](True, turns)
    return loop


# -- 4. writer throughput ---------------------------------------------------------------------------

@dataclass
class Drain:
    records: int
    enqueue_seconds: float
    seconds: float
    flushed: bool
    written: int
    failed: int
    closed: Closed


def measure_drain(url: str, journal: str, records: int) -> Drain:
    recorder = new_recorder(url, journal, "drain", total_steps=1)
    rollout = recorder.step(0).group(task="drain", size=1).rollout(input={"drain": records})
    recorder.flush(FLUSH_TIMEOUT)  # setup written: what is timed is the turn records alone
    before = recorder.health()
    payloads = [turn_payload(n) for n in range(records)]
    began = time.perf_counter()
    for observation, action, reward, tokens in payloads:
        rollout.turn(observation=observation, action=action, reward=reward, tokens=tokens)
    enqueued = time.perf_counter()
    flushed = recorder.flush(FLUSH_TIMEOUT)
    elapsed = time.perf_counter() - began
    after = recorder.health()
    rollout.finish(reward=1.0, success=True)
    return Drain(records, enqueued - began, elapsed, flushed, after.written - before.written,
                 after.failed - before.failed, flush_and_close(recorder))


# -- report -----------------------------------------------------------------------------------------

def us(ns: float) -> str:
    return f"{ns / 1000:,.2f} µs"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextmanager
def guarded(notes: list[str], what: str) -> Iterator[None]:
    """A measurement that fails is noted and the others go on: the script reports, it does not crash."""
    try:
        yield
    except Exception as exc:  # anything the recorder or database does is a finding
        notes.append(f"{what}: {type(exc).__name__}: {exc}")
        console.print(f"[red]{what} failed[/]\n{traceback.format_exc(limit=4)}")


def spread(values: list[float], form: str) -> str:
    """The middle half and the whole range of ``values``: "q1…q3 (min…max)"."""
    ordered = sorted(values)
    q1, q3 = percentile(ordered, 0.25), percentile(ordered, 0.75)
    return f"{form.format(q1)}…{form.format(q3)} ({form.format(ordered[0])}…{form.format(ordered[-1])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000, help="turn() calls in the burst (1)")
    parser.add_argument("--pairs", type=int, default=600,
                        help=f"pairs of recorded and unrecorded rollouts of {TURNS_PER_ROLLOUT} turns (2, 3)")
    parser.add_argument("--turns", type=int, default=2400,
                        help=f"turns per whole loop, in groups of {TURNS_PER_GROUP} (details)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of recorded vs unrecorded whole loops "
                                                              "(details; 0 for none)")
    parser.add_argument("--drain", type=int, default=20000, help="turn records in the writer throughput (4)")
    add_postgres_option(parser)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    args.turns = max(TURNS_PER_GROUP * GROUPS_PER_STEP, args.turns // TURNS_PER_GROUP * TURNS_PER_GROUP)
    args.calls = max(BATCH, args.calls // BATCH * BATCH)
    args.pairs = max(2, args.pairs)

    load_before = os.getloadavg()[0]
    with console.status("calibrating 1 ms of work"):
        iterations = calibrate()
    databases: dict[str, Callable[[], AbstractContextManager[str]]] = {"sqlite": sqlite_database}
    if not args.no_postgres:
        databases["postgresql"] = lambda: postgres_database(args.postgres)

    targets = Table(title="Recorder cost to the training loop", caption=(
        f"(1) median of batches of {BATCH:,} calls, back to back; no-op: the same loop calling a method that "
        f"does nothing. (2) and (3): one loop, {args.pairs} recorded and unrecorded rollouts of {TURNS_PER_ROLLOUT} "
        "turns alternating, 1 ms of work a turn. (2) mean of every turn() less the empty interval timed right "
        "after it, its bootstrap 95% interval, single calls' p50 and p99. (3) Σ recorded / Σ unrecorded − 1, "
        "the recorder's thread's CPU over the loop added to the recorded side; beside it: without that CPU, "
        "the median pair's ratio and the pairs' middle half, the bootstrap 95% interval of the figure."))
    for column, justify in (("backend", "left"), ("measure", "left"), ("value", "right"), ("beside it", "right"),
                            ("target", "right"), ("met", "center")):
        targets.add_column(column, justify=justify)
    details = Table(title="Details (no targets)", caption=(
        "recording calls: in the loop of (2) and (3), each timed alone less an empty interval. Whole loops: "
        f"{args.rounds} rounds of recorded vs unrecorded loops of {args.turns:,} turns taking turns, the median "
        "of the rounds' ratios (a shared machine's speed changes between loops: it cannot resolve 2 %); "
        "start: Recorder(), step(0), flush(); close: flush() + close() after the loop"))
    for column in ("backend", "what", "n", "mean", "median", "max"):
        details.add_column(column, justify="left" if column in ("backend", "what") else "right")
    throughput = Table(title=f"Writer throughput: {args.drain:,} turn records",
                       caption="from the first turn() until flush() returns; records written and failed "
                               "as health() counts them")
    for column in ("backend", "records/s", "queued in", "drained in", "flush()", "written", "failed"):
        throughput.add_column(column, justify="right")
    notes: list[str] = []
    work_ms: list[float] = []
    loads: list[float] = []  # load average after each interleaved loop and whole-loop round

    for backend, database in databases.items():
        with guarded(notes, f"{backend}: database"), database() as url, \
                tempfile.TemporaryDirectory() as journal, console.status(backend) as status:
            def say(text: str) -> None:
                status.update(f"{backend}: {text}")

            with guarded(notes, f"{backend}: burst"):
                say(f"turn() burst of {args.calls:,} calls")
                result = measure_burst(url, journal, args.calls)
                cost = statistics.median(result.batches)
                targets.add_row(backend, "(1) turn() burst", f"{cost:.2f} µs",
                                f"batches {spread(result.batches, '{:.1f}')}, no-op {statistics.median(result.noop):.2f} µs",
                                f"< {TARGET_CALL_US:g} µs", met(cost < TARGET_CALL_US))
                if not result.closed.flushed or result.closed.failed:
                    notes.append(f"{backend}: burst: flush() {'ok' if result.closed.flushed else 'timed out'}, "
                                 f"{result.closed.failed} records failed")

            with guarded(notes, f"{backend}: interleaved loop"):
                say(f"{args.pairs} recorded and unrecorded rollouts alternating")
                loop = interleaved_loop(url, journal, args.pairs, iterations)
                loads.append(os.getloadavg()[0])
                turn_ns = loop.calls["turn()"]
                turn_us = statistics.fmean(turn_ns) / 1000
                low, high = bootstrap([(ns, 0) for ns in turn_ns], lambda sample: statistics.fmean(n for n, _ in sample))
                targets.add_row(backend, "(2) turn() amid work", f"{turn_us:.2f} µs",
                                f"95% {low / 1000:.1f}…{high / 1000:.1f} µs; single calls p50 "
                                f"{statistics.median(turn_ns) / 1000:.1f}, p99 {percentile(turn_ns, 0.99) / 1000:.0f} µs",
                                f"< {TARGET_CALL_US:g} µs", met(turn_us < TARGET_CALL_US))
                pump_ns = loop.pump_seconds * 1e9
                low, high = bootstrap(list(zip(loop.recorded, loop.plain)), lambda sample: (
                    sum(mine for mine, _ in sample) + pump_ns) / sum(theirs for _, theirs in sample) - 1)
                targets.add_row(backend, "(3) loop slowdown", f"{loop.slowdown:+.2%}",
                                f"without the thread's CPU {sum(loop.recorded) / sum(loop.plain) - 1:+.2%}; pairs' median "
                                f"{statistics.median(loop.ratios):+.2%}, middle half {spread(loop.ratios, '{:+.1%}')}; "
                                f"95% {low:+.2%}…{high:+.2%}",
                                f"< {TARGET_SLOWDOWN:.0%}", met(loop.slowdown < TARGET_SLOWDOWN))
                for call, values in loop.calls.items():
                    if values:
                        details.add_row(backend, call, f"{len(values):,}", us(statistics.fmean(values)),
                                        us(statistics.median(values)), us(max(values)))
                plain_seconds = sum(loop.plain) / 1e9
                details.add_row(backend, "(3) recorder's thread CPU over the loop", "1",
                                f"{loop.pump_seconds * 1000:,.1f} ms",
                                f"{loop.pump_seconds / plain_seconds:.2%} of the unrecorded rollouts' time", "")
                details.add_row(backend, "(3) writer process CPU over the loop (not charged)", "1",
                                f"{loop.writer_seconds * 1000:,.0f} ms",
                                f"{loop.writer_seconds / loop.seconds:.1%} of the loop's time", "")
                work_ms.append(plain_seconds / (len(loop.plain) * TURNS_PER_ROLLOUT) * 1000)
                if not loop.closed.flushed or loop.closed.failed:
                    notes.append(f"{backend}: interleaved loop: flush() {'ok' if loop.closed.flushed else 'timed out'}, "
                                 f"{loop.closed.failed} records failed")

            with guarded(notes, f"{backend}: whole loops"):
                if args.rounds:
                    whole = measure_loop(url, journal, args.turns, args.rounds, iterations, say)
                    loads.append(os.getloadavg()[0])
                    ratios = [ratio - 1 for ratio in whole.ratios]
                    details.add_row(backend, "whole loops: recorded / unrecorded − 1", str(len(ratios)),
                                    f"{statistics.fmean(ratios):+.2%}", f"{statistics.median(ratios):+.2%}",
                                    f"{min(ratios):+.2%} … {max(ratios):+.2%}")
                    details.add_row(backend, "whole loops: Recorder start", str(len(whole.startup)),
                                    f"{statistics.fmean(whole.startup) * 1000:,.1f} ms",
                                    f"{statistics.median(whole.startup) * 1000:,.1f} ms",
                                    f"{max(whole.startup) * 1000:,.1f} ms")
                    close_seconds = [c.seconds for c in whole.closed]
                    details.add_row(backend, "whole loops: flush() + close()", str(len(close_seconds)),
                                    f"{statistics.fmean(close_seconds) * 1000:,.1f} ms",
                                    f"{statistics.median(close_seconds) * 1000:,.1f} ms",
                                    f"{max(close_seconds) * 1000:,.1f} ms")
                    for number, closed in enumerate(whole.closed, 1):
                        if not closed.flushed or closed.failed:
                            notes.append(f"{backend}: whole loop round {number}: flush() "
                                         f"{'ok' if closed.flushed else 'timed out'}, {closed.failed} records failed")

            with guarded(notes, f"{backend}: writer throughput"):
                say(f"writer draining {args.drain:,} turn records")
                drain = measure_drain(url, journal, args.drain)
                throughput.add_row(backend, f"{drain.records / drain.seconds:,.0f}", f"{drain.enqueue_seconds:.2f} s",
                                   f"{drain.seconds:.2f} s",
                                   "ok" if drain.flushed else f"[red]timed out ({FLUSH_TIMEOUT:g} s)[/]",
                                   f"{drain.written:,}", f"{drain.failed:,}")

    console.print(details)
    console.print(throughput)
    console.print(targets)
    if work_ms:
        console.print(f"Work per turn: {iterations:,} iterations, calibrated to 1 ms; the unrecorded rollouts took "
                      f"{statistics.median(work_ms):.3f} ms per turn (payload and clock included).")
    console.print(f"Machine: {os.cpu_count()} cores; load average (1 min) {load_before:.1f} at the start, "
                  f"{os.getloadavg()[0]:.1f} at the end (this process and the writer count in it).")
    cores = os.cpu_count() or 1
    if loads and max(loads) > cores:
        console.print(f"[yellow]The machine was busy[/]: load average {min(loads):.1f}…{max(loads):.1f} over the loops on "
                      f"{cores} cores, so the writer (see the details) competed with the loop for a core; on a "
                      "quiet machine it runs on a free one. These figures are a busy machine's.")
    elif loads:
        console.print(f"The machine was quiet: load average {min(loads):.1f}…{max(loads):.1f} over the loops on "
                      f"{cores} cores.")
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")


if __name__ == "__main__":
    main()
