"""Recorder overhead: what recording costs the training loop, and how fast the writer drains.

    python benchmarks/recorder_overhead.py [--turns 20000] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Reported, each against a reference measured in the same run:
- the caller's cost of one ``rollout.turn(...)`` call (target < 10 µs);
- the slowdown of a loop doing 1 ms of work per turn, recorded vs not recorded (target < 2 %);
- records/s the background writer sustains on SQLite and PostgreSQL.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from rich.console import Console
from rich.table import Table

import rolloutdb
from common import add_postgres_option, postgres_database, sqlite_database

console = Console()
WORK_SECONDS = 0.001


def work() -> None:
    """1 ms of CPU work, like a policy forward pass in a small training loop."""
    deadline = time.perf_counter() + WORK_SECONDS
    while time.perf_counter() < deadline:
        pass


def turn_payload(n: int) -> dict:
    return {"observation": {"board": [n % 7, n % 5, n % 3]}, "action": {"move": n % 4}, "reward": 0.1,
            "tokens": {"prompt": 128, "completion": 16}}


def call_cost(recorder: rolloutdb.Recorder, turns: int) -> float:
    """Median µs per turn() call in the caller's thread, over batches of 1,000 calls."""
    rollout = recorder.step(0).group(task="bench", size=1).rollout()
    samples = []
    for start in range(0, turns, 1000):
        began = time.perf_counter_ns()
        for n in range(start, start + 1000):
            rollout.turn(**turn_payload(n))
        samples.append((time.perf_counter_ns() - began) / 1000 / 1000)
    rollout.finish(reward=1.0)
    return statistics.median(samples)


def loop_seconds(recorder: rolloutdb.Recorder | None, turns: int) -> float:
    """A training loop: groups of 8 rollouts of 10 turns, each turn 1 ms of work."""
    began = time.perf_counter()
    step = recorder.step(1) if recorder else None
    for g in range(turns // 80):
        group = step.group(task=f"task-{g % 10}", size=8) if step else None
        for _ in range(8):
            rollout = group.rollout(input={"g": g}) if group else None
            for n in range(10):
                work()
                if rollout:
                    rollout.turn(**turn_payload(n))
            if rollout:
                rollout.finish(reward=1.0, success=True)
    return time.perf_counter() - began


def drain_rate(url: str, records: int) -> float:
    """Records/s the writer puts into the database: enqueue, then time until flush() returns."""
    with tempfile.TemporaryDirectory() as journal, \
            rolloutdb.Recorder(url, run="drain", journal_dir=journal, flush_size=5000) as recorder:
        rollout = recorder.step(0).group(task="drain", size=1).rollout()
        began = time.perf_counter()
        for n in range(records):
            rollout.turn(**turn_payload(n))
        assert recorder.flush(timeout=600), "the writer must drain everything"
        return records / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=8000, help="turns in the training-loop comparison")
    parser.add_argument("--calls", type=int, default=50000, help="turn() calls in the cost measurement")
    parser.add_argument("--drain", type=int, default=50000, help="records in the writer throughput measurement")
    add_postgres_option(parser)
    args = parser.parse_args()

    overhead = Table(title="Cost to the training loop (SQLite default)")
    for column in ("measure", "value", "reference", "target"):
        overhead.add_column(column, justify="right")
    with sqlite_database() as url, tempfile.TemporaryDirectory() as journal:
        with console.status("turn() cost in the caller's thread"):
            with rolloutdb.Recorder(url, run="cost", journal_dir=journal) as recorder:
                cost = call_cost(recorder, args.calls)
        overhead.add_row("turn() call", f"{cost:.2f} µs", "—", "< 10 µs")
        with console.status("training loop with and without recording"):
            loop_seconds(None, 800)  # warm up
            plain = min(loop_seconds(None, args.turns) for _ in range(3))
            recorded = []
            for attempt in range(3):
                with rolloutdb.Recorder(url, run=f"loop-{attempt}", journal_dir=journal) as recorder:
                    recorded.append(loop_seconds(recorder, args.turns))
            slowdown = min(recorded) / plain - 1
        overhead.add_row("loop, 1 ms of work per turn", f"{min(recorded):.3f} s", f"{plain:.3f} s unrecorded",
                         f"slowdown {slowdown:+.2%} (< 2 %)")

    throughput = Table(title=f"Writer throughput: {args.drain:,} turn records")
    for column in ("backend", "records/s"):
        throughput.add_column(column, justify="right")
    for backend, database in (("sqlite", sqlite_database()), ("postgresql", postgres_database(args.postgres))):
        with database as url, console.status(f"{backend}: draining"):
            throughput.add_row(backend, f"{drain_rate(url, args.drain):,.0f}")
    console.print(overhead)
    console.print(throughput)


if __name__ == "__main__":
    main()
