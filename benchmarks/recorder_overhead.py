"""Recorder overhead: what recording costs a training loop, and how fast the writer drains.

    python benchmarks/recorder_overhead.py [--calls 20000] [--turns 2400] [--rounds 7] [--drain 20000]
                                           [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
                                           [--no-postgres]

Runs on a throwaway SQLite file and a throwaway PostgreSQL database, through the public Recorder API
only; every Recorder records a run of its own (a fresh name). Measured per backend:
1. turn() in a burst: --calls calls back to back with nothing between them, timed in batches of
   1,000 while the writer drains; µs per call is the median of the batches. Target < 10 µs.
2. turn() between work: in each recorded round of 3, every turn() is timed alone (perf_counter_ns
   around the call only; the unrecorded side times an empty interval the same way, so both pay for the
   clock); a round's figure is the mean of its calls, so a rare slow one counts, and the result is the
   median over the rounds, with their spread. One more loop times every recording call (step, group,
   rollout, finish) for the details and single calls' p50 and p99. Target < 10 µs.
3. Loop slowdown: groups of 8 rollouts of 10 turns, a step every 4 groups, 1 ms of CPU work per turn.
   The work is a fixed count of pure-Python operations (calibrated to ~1 ms at start; like a Python
   policy step it never lets go of the GIL by itself), not a wait for a clock: time the writer takes
   from the loop makes the loop longer instead of being absorbed. Both sides build the same turn
   payloads; the recorded side also makes the recording calls, with a new Recorder each round.
   Recorded and unrecorded loops take turns for --rounds rounds after a warm-up pair, the order
   flipping each round; the slowdown is the median of the rounds' own ratios (recorded / unrecorded),
   so a slow spell of the shared machine weighs on both sides; the middle half and the range of the
   rounds' ratios are shown beside it, and the writer process's CPU time per loop in the details (read
   from /proc: on a busy machine it competes with the loop for a core). The loop thread's own CPU time
   (time.thread_time) is compared too: what recording costs the loop itself, which waiting for a core
   does not inflate. The load average of each round
   is noted, and the report says when the machine was busy (load above its cores).
   Starting the Recorder (Recorder(), step(0), then flush(): the writer up and the run written) and
   flushing and closing it happen once per training run, not per turn: they are timed apart and shown
   in the details. Target < 2 %.
4. Writer throughput: once the run, step, group and rollout are written, --drain turn records are
   queued and timed until flush() returns (records/s, and whether flush() succeeded). No target.
A missed target is marked ✗ in the table; the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

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


# -- 2. and 3. the training loop --------------------------------------------------------------------

def training_loop(recorder: rolloutdb.Recorder | None, step, turns: int, iterations: int,
                  turn_costs: list[int] | None = None) -> tuple[float, float]:
    """Seconds for ``turns`` turns of work, recorded when a recorder is given (with its step 0 open): wall
    time, and the CPU time of the loop's own thread (which time spent waiting for a core or for the
    interpreter lock does not count in). With ``turn_costs``, each turn() call is timed alone into it (the
    unrecorded side times an empty interval, so that both sides pay for the clock alike)."""
    recording = recorder is not None
    clock = time.perf_counter_ns
    group = rollout = None
    began, began_cpu = time.perf_counter(), time.thread_time()
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
                if turn_costs is not None:
                    start_ns = clock()
                    if recording:
                        rollout.turn(observation=observation, action=action, reward=reward, tokens=tokens)
                    turn_costs.append(clock() - start_ns)
                elif recording:
                    rollout.turn(observation=observation, action=action, reward=reward, tokens=tokens)
            if recording:
                rollout.finish(reward=1.0, success=True)
    return time.perf_counter() - began, time.thread_time() - began_cpu


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


def timed_training_loop(recorder: rolloutdb.Recorder, step, turns: int, iterations: int) -> dict[str, list[int]]:
    """The recorded training loop with perf_counter_ns around each recording call: ns per call, by call."""
    clock = time.perf_counter_ns
    costs: dict[str, list[int]] = {"step()": [], "group()": [], "rollout()": [], "turn()": [], "finish()": []}
    for g in range(turns // TURNS_PER_GROUP):
        if g % GROUPS_PER_STEP == 0 and g:
            began = clock()
            step = recorder.step(g // GROUPS_PER_STEP)
            costs["step()"].append(clock() - began)
        began = clock()
        group = step.group(task=f"task-{g % 10}", size=ROLLOUTS_PER_GROUP)
        costs["group()"].append(clock() - began)
        for r in range(ROLLOUTS_PER_GROUP):
            began = clock()
            rollout = group.rollout(input={"group": g, "sample": r})
            costs["rollout()"].append(clock() - began)
            for n in range(TURNS_PER_ROLLOUT):
                observation, action, reward, tokens = turn_payload(n)
                work(iterations)
                began = clock()
                rollout.turn(observation=observation, action=action, reward=reward, tokens=tokens)
                costs["turn()"].append(clock() - began)
            began = clock()
            rollout.finish(reward=1.0, success=True)
            costs["finish()"].append(clock() - began)
    return costs


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
    turn_us: list[float] = field(default_factory=list)  # per round: mean µs of the recorded loop's turn() calls
    clock_us: list[float] = field(default_factory=list)  # the same for the unrecorded loop's empty intervals
    writer_cpu: list[float] = field(default_factory=list)  # per round: the writer's CPU seconds for the loop
    plain_cpu: list[float] = field(default_factory=list)  # per round: the loop thread's CPU seconds, each side
    recorded_cpu: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # per round: load average (1 min) after it

    @property
    def ratios(self) -> list[float]:
        return [mine / theirs for mine, theirs in zip(self.recorded, self.plain)]


def measure_loop(url: str, journal: str, turns: int, rounds: int, iterations: int,
                 status: Callable[[str], None]) -> Loop:
    """Recorded and unrecorded loops taking turns, the order flipping every round; a warm-up pair first."""
    loop = Loop()

    def plain(keep: bool, n: int) -> None:
        costs: list[int] = []
        seconds, cpu = training_loop(None, None, n, iterations, costs)
        if keep:
            loop.plain.append(seconds)
            loop.plain_cpu.append(cpu)
            loop.clock_us.append(statistics.fmean(costs) / 1000)

    def recorded(keep: bool, n: int) -> None:
        recorder, step, startup = start(url, journal, "loop", n)
        costs: list[int] = []
        cpu_before = children_cpu()
        seconds, cpu = training_loop(recorder, step, n, iterations, costs)
        closed = flush_and_close(recorder)
        if keep:
            loop.recorded.append(seconds)
            loop.recorded_cpu.append(cpu)
            loop.startup.append(startup)
            loop.closed.append(closed)
            loop.turn_us.append(statistics.fmean(costs) / 1000)
            loop.writer_cpu.append(closed.writer_cpu - cpu_before)
            loop.load.append(os.getloadavg()[0])

    sides = {"unrecorded": plain, "recorded": recorded}
    status("loop slowdown: warm-up")
    for side in sides.values():
        side(False, max(TURNS_PER_GROUP * GROUPS_PER_STEP, turns // 4))
    order = list(sides)
    for round in range(rounds):
        for side in order if round % 2 == 0 else reversed(order):
            status(f"loop slowdown, round {round + 1} of {rounds}: {side}")
            sides[side](True, turns)
    return loop


def measure_timed_loop(url: str, journal: str, turns: int, iterations: int) -> tuple[dict[str, list[int]], Closed]:
    recorder, step, _ = start(url, journal, "timed", turns)
    costs = timed_training_loop(recorder, step, turns, iterations)
    return costs, flush_and_close(recorder)


def timed_noop(calls: int) -> list[int]:
    """ns per no-op call timed the same way as the loop's recording calls."""
    clock, noop, costs = time.perf_counter_ns, NoopRollout(), []
    for n in range(calls):
        observation, action, reward, tokens = turn_payload(n)
        began = clock()
        noop.turn(observation=observation, action=action, reward=reward, tokens=tokens)
        costs.append(clock() - began)
    return costs


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
    parser.add_argument("--turns", type=int, default=2400,
                        help=f"turns per training loop, in groups of {TURNS_PER_GROUP} (2, 3)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of recorded vs unrecorded loops (3)")
    parser.add_argument("--drain", type=int, default=20000, help="turn records in the writer throughput (4)")
    add_postgres_option(parser)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    args.turns = max(TURNS_PER_GROUP * GROUPS_PER_STEP, args.turns // TURNS_PER_GROUP * TURNS_PER_GROUP)
    args.calls = max(BATCH, args.calls // BATCH * BATCH)

    load_before = os.getloadavg()[0]
    with console.status("calibrating 1 ms of work"):
        iterations = calibrate()
    databases: dict[str, Callable[[], AbstractContextManager[str]]] = {"sqlite": sqlite_database}
    if not args.no_postgres:
        databases["postgresql"] = lambda: postgres_database(args.postgres)

    targets = Table(title="Recorder cost to the training loop", caption=(
        f"(1) median of batches of {BATCH:,} calls, back to back; no-op: the same loop calling a method that "
        "does nothing. (2) median over the recorded rounds of (3) of each round's mean turn() timed alone "
        "between 1 ms of work (slow calls count); rounds' middle half (and range) beside it, and single calls' "
        f"p50 and p99 from one more loop. (3) median of {args.rounds} rounds' paired ratios, "
        f"recorded / unrecorded loop of {args.turns:,} turns (sides alternating, order flipping each round); "
        "the rounds' middle half (and range), and each side's median seconds beside it. Recorder start and "
        "close are not in (3): see the details."))
    for column, justify in (("backend", "left"), ("measure", "left"), ("value", "right"), ("beside it", "right"),
                            ("target", "right"), ("met", "center")):
        targets.add_column(column, justify=justify)
    details = Table(title="Details (no targets)", caption=(
        "recording calls: in the loop of (2), each timed alone. (3) start: Recorder(), step(0), flush(); "
        f"close: flush() + close() after the loop; {args.rounds} rounds"))
    for column in ("backend", "what", "n", "mean", "median", "max"):
        details.add_column(column, justify="left" if column in ("backend", "what") else "right")
    throughput = Table(title=f"Writer throughput: {args.drain:,} turn records",
                       caption="from the first turn() until flush() returns; records written and failed "
                               "as health() counts them")
    for column in ("backend", "records/s", "queued in", "drained in", "flush()", "written", "failed"):
        throughput.add_column(column, justify="right")
    notes: list[str] = []
    work_ms: list[float] = []
    loads: list[float] = []  # load average after each recorded round

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

            with guarded(notes, f"{backend}: recording calls between work"):
                say(f"recording calls timed alone, {args.turns:,} turns")
                costs, closed = measure_timed_loop(url, journal, args.turns, iterations)
                turn_costs = costs["turn()"]
                for call, values in costs.items():
                    if values:
                        details.add_row(backend, call, f"{len(values):,}", us(statistics.fmean(values)),
                                        us(statistics.median(values)), us(max(values)))
                noop = timed_noop(len(turn_costs))
                details.add_row(backend, "no-op call, timed alike", f"{len(noop):,}", us(statistics.fmean(noop)),
                                us(statistics.median(noop)), us(max(noop)))
                if not closed.flushed or closed.failed:
                    notes.append(f"{backend}: timed loop: flush() {'ok' if closed.flushed else 'timed out'}, "
                                 f"{closed.failed} records failed")

            with guarded(notes, f"{backend}: loop slowdown"):
                loop = measure_loop(url, journal, args.turns, args.rounds, iterations, say)
                turn_us = statistics.median(loop.turn_us)
                targets.add_row(backend, "(2) turn() amid work", f"{turn_us:.2f} µs",
                                f"rounds {spread(loop.turn_us, '{:.1f}')} µs; clock alone {statistics.median(loop.clock_us):.2f}; "
                                f"single calls p50 {statistics.median(turn_costs) / 1000:.1f}, "
                                f"p99 {percentile(turn_costs, 0.99) / 1000:.0f} µs",
                                f"< {TARGET_CALL_US:g} µs", met(turn_us < TARGET_CALL_US))
                slowdown = statistics.median(loop.ratios) - 1
                targets.add_row(backend, "(3) loop slowdown", f"{slowdown:+.2%}",
                                f"rounds {spread([r - 1 for r in loop.ratios], '{:+.1%}')}; "
                                f"{statistics.median(loop.recorded):.3f} s vs {statistics.median(loop.plain):.3f} s; "
                                f"loop thread's CPU {statistics.median(loop.recorded_cpu) / statistics.median(loop.plain_cpu) - 1:+.1%}",
                                f"< {TARGET_SLOWDOWN:.0%}", met(slowdown < TARGET_SLOWDOWN))
                # The loop thread's CPU time is what recording costs the loop itself, whatever else runs on the
                # machine: per round, its extra over the unrecorded loop's, per turn and as a share.
                extra_us = [(mine - theirs) / args.turns * 1e6 for mine, theirs in zip(loop.recorded_cpu, loop.plain_cpu)]
                cpu_ratios = [mine / theirs - 1 for mine, theirs in zip(loop.recorded_cpu, loop.plain_cpu)]
                details.add_row(backend, "(3) loop thread's CPU: extra per turn", str(len(extra_us)),
                                f"{statistics.fmean(extra_us):,.2f} µs",
                                f"{statistics.median(extra_us):,.2f} µs ({statistics.median(cpu_ratios):+.2%})",
                                f"{max(extra_us):,.2f} µs")
                writer_ms = [cpu * 1000 for cpu in loop.writer_cpu]
                details.add_row(backend, "(3) writer CPU per loop", str(len(writer_ms)),
                                f"{statistics.fmean(writer_ms):,.0f} ms",
                                f"{statistics.median(writer_ms):,.0f} ms "
                                f"({statistics.median(loop.writer_cpu) / statistics.median(loop.plain):.1%} of a loop)",
                                f"{max(writer_ms):,.0f} ms")
                loads.extend(loop.load)
                details.add_row(backend, "(3) rounds' ratios", str(len(loop.ratios)),
                                f"{statistics.fmean(loop.ratios) - 1:+.2%}", f"{slowdown:+.2%}",
                                f"{min(loop.ratios) - 1:+.2%} … {max(loop.ratios) - 1:+.2%}")
                details.add_row(backend, "(3) Recorder start", str(len(loop.startup)),
                                f"{statistics.fmean(loop.startup) * 1000:,.1f} ms",
                                f"{statistics.median(loop.startup) * 1000:,.1f} ms",
                                f"{max(loop.startup) * 1000:,.1f} ms")
                close_seconds = [c.seconds for c in loop.closed]
                details.add_row(backend, "(3) flush() + close()", str(len(close_seconds)),
                                f"{statistics.fmean(close_seconds) * 1000:,.1f} ms",
                                f"{statistics.median(close_seconds) * 1000:,.1f} ms",
                                f"{max(close_seconds) * 1000:,.1f} ms")
                work_ms.extend(seconds / args.turns * 1000 for seconds in loop.plain)
                for number, closed in enumerate(loop.closed, 1):
                    if not closed.flushed or closed.failed:
                        notes.append(f"{backend}: loop round {number}: flush() "
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
        console.print(f"Work per turn: {iterations:,} iterations, calibrated to 1 ms; the unrecorded loop took "
                      f"{statistics.median(work_ms):.3f} ms per turn (median of its runs, payload included).")
    console.print(f"Machine: {os.cpu_count()} cores; load average (1 min) {load_before:.1f} at the start, "
                  f"{os.getloadavg()[0]:.1f} at the end (this process and the writer count in it).")
    cores = os.cpu_count() or 1
    if loads and max(loads) > cores:
        console.print(f"[yellow]The machine was busy[/]: load average {min(loads):.1f}…{max(loads):.1f} over the rounds on "
                      f"{cores} cores, so the writer's CPU (see the details) competed with the loop for a core; on a "
                      "quiet machine it runs on a free one. These figures are a busy machine's.")
    elif loads:
        console.print(f"The machine was quiet: load average {min(loads):.1f}…{max(loads):.1f} over the rounds on "
                      f"{cores} cores.")
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")


if __name__ == "__main__":
    main()
