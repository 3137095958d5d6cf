"""store.trajectory at scale: p50/p99 of reading a random 50-turn rollout whole (its turns, their artifacts, the
latest attempt's spans) from a database holding ``--turns`` turns and ``--spans`` spans, on a SQLite file and on
PostgreSQL.

    python benchmarks/trajectory.py [--turns 1000000] [--spans 10000000] [--turns-per-rollout 50]
                                    [--linked-rollouts 100] [--samples 1000] [--backends sqlite,postgresql]
                                    [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The data set is built in a throwaway database (a temp folder; a database created on the PostgreSQL server and
dropped after), rows shaped as the queue (a rollout claimed once, its running attempt), the recorder (``--turns-per-
rollout`` turns each) and ``spans.add_many`` (``--spans`` / rollouts each) leave them: the rollouts, attempts and
turns by the store's own batch insert (``store._bulk.bulk_insert``: COPY on PostgreSQL, multi-row INSERT on
SQLite), the spans by the database itself (an INSERT ... SELECT per 500 rollouts, their values encoded as the store
encodes them: ``spans_of``). The public calls are too slow for 10M spans in minutes: ``spans.add_many`` validates
every span (about 5k spans/s on SQLite, 2.5k/s on PostgreSQL on a loaded 2-core machine: over half an hour), and
even the batch insert spent most of the build encoding the spans' values in Python. ``--linked-rollouts``
rollouts get a screenshot linked from every turn (``artifacts.link_many``, a call per rollout), from a few distinct
images. The build's time and the rate of each part are printed. On PostgreSQL the planner's statistics are then gathered (ANALYZE), as autovacuum keeps them in a
database that grew by use: on a server without autovacuum and no statistics, the planner read a turn's artifact links
starting from the few artifacts, through every link (12 ms of each trajectory at a tenth of the scale).

Then ``--samples`` trajectories of random rollouts are read, taking turns with a reference read in the same
moment — ``rollouts.get`` of the same rollout, one indexed row — so the machine's noise shows in both. Half the
samples are of rollouts with linked screenshots. Target: p99 of trajectory() < 10 ms, marked met (✓) or not (✗);
the exit code is 0 either way. The reads no full run of Python's garbage collector fell in are shown apart too: such
a run walks the whole process heap, and lands in whichever read is running. So is the CPU time each read took in
this process (not PostgreSQL's server's), which a loaded machine stretches less than the clock's.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from sqlalchemy import Insert, String, Text, case, cast, func, insert, literal, select, true
from sqlalchemy.dialects.postgresql import JSONB
from rich.table import Table

import rolloutdb
from rolloutdb.ids import new_ids
from rolloutdb.schema import attempts, rollouts, spans
from rolloutdb.schema import turns as turns_table
from rolloutdb.storable import json_text
from rolloutdb.store._bulk import bulk_insert
from common import (add_postgres_option, analyze_postgresql, checkpoint_sqlite, met, postgres_database,
                    sqlite_database)

TARGET_P99_SECONDS = 0.010
# The trajectory reads no full run of the garbage collector fell in: the store's own time, apart from the collector's
# runs over the whole process heap (its caller's as much as the store's).
WITHOUT_FULL_COLLECTIONS = "trajectory, no full GC in it"
# The CPU time the reads took in this process (not the database server's): what the machine's load does not
# stretch, as it stretches the clock's.
CPU = "trajectory, CPU of this process"
REFERENCE = "rollouts.get (reference)"
FILL_ROLLOUTS = 500  # rollouts (with their turns and spans) per fill transaction
SCREENSHOTS = 8  # distinct images the linked turns share
SPAN_ATTRIBUTES = {"gen_ai.request.model": "policy-7b", "gen_ai.usage.prompt_tokens": 512,
                   "gen_ai.usage.completion_tokens": 64}

console = Console()


@dataclass
class Built:
    rollouts: list[str]
    linked: list[str]
    rates: dict[str, float]  # rows per second, by part


def spans_of(store: rolloutdb.Store, attempt_ids: list[str], spans_each: int, now: datetime) -> Insert:
    """``spans_each`` spans for each of the attempts, made by the database (an INSERT ... SELECT from the attempts
    times their sequence numbers): the rows ``spans.add_many`` leaves (JSON encoded as the store encodes it, times
    as it stores them), the ids as time-ordered as the store's. Ten million spans through Python took most of the
    build (encoding each row's values), which the database does alone several times as fast."""
    numbers = select(literal(1).label("n")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.n + 1).where(numbers.c.n < spans_each))
    index = numbers.c.n - 1
    if store.backend == "sqlite":
        hex_of_n = func.printf("%012x", numbers.c.n)
    else:
        hex_of_n = func.lpad(func.to_hex(numbers.c.n), 12, "0")

    def json_of(value: Any) -> Any:  # as the store writes it: orjson's text, held as jsonb on PostgreSQL
        text = literal(json_text(value), Text)
        return text if store.backend == "sqlite" else cast(text, JSONB)

    at_now = literal(now, spans.c.created_at.type)
    values = {
        # An attempt's id with its last 12 digits the span's number: unique, ordered as the attempts' ids are.
        "id": func.substr(attempts.c.id, 1, 24, type_=String).concat(hex_of_n),
        "project_id": literal(store.project_id, String), "rollout_id": attempts.c.rollout_id,
        "attempt_id": attempts.c.id, "sequence_id": numbers.c.n, "trace_id": attempts.c.rollout_id,
        "span_id": literal("s", String) + cast(index, String),
        "name": case((index % 2 == 1, "llm.call"), else_="tool.tap"), "status": json_of({"status_code": "OK"}),
        "attributes": json_of(SPAN_ATTRIBUTES), "events": json_of([]), "links": json_of([]), "start_time": at_now,
        "end_time": at_now, "created_at": at_now}
    rows = (select(*(value.label(name) for name, value in values.items()))
            .select_from(attempts.join(numbers, true())).where(attempts.c.id.in_(attempt_ids))
            .order_by(attempts.c.id, numbers.c.n))
    return insert(spans).from_select(list(values), rows)


def build(store: rolloutdb.Store, turns: int, spans_total: int, turns_per_rollout: int,
          linked_rollouts: int) -> Built:
    """Rollouts, each claimed once (a running attempt), with their turns, written by the store's own batch insert
    (COPY on PostgreSQL, multi-row INSERT on SQLite), and their spans (``spans_of``), rows shaped as the queue, the
    recorder and spans.add_many leave them; then screenshots linked from the turns of ``linked_rollouts`` of them."""
    rollout_count = max(turns // turns_per_rollout, 1)
    spans_each = spans_total // rollout_count
    rates: dict[str, float] = {}
    started = time.perf_counter()
    rollout_ids: list[str] = []
    for first in range(0, rollout_count, FILL_ROLLOUTS):
        chunk = min(FILL_ROLLOUTS, rollout_count - first)
        chunk_rollouts, chunk_attempts = new_ids(chunk), new_ids(chunk)
        now = store.now()
        pairs = list(zip(chunk_rollouts, chunk_attempts))
        with store.engine.begin() as connection:
            bulk_insert(connection, rollouts, [
                {"id": rollout_id, "project_id": store.project_id, "input": {"task": first + n}, "status": "running",
                 "config": {"max_attempts": 1, "timeout_seconds": None, "unresponsive_seconds": None,
                            "retry_condition": []},
                 "attempt_count": 1, "metrics": {}, "metadata": {}, "created_at": now, "updated_at": now,
                 "started_at": now, "queued_at": now}
                for n, rollout_id in enumerate(chunk_rollouts)])
            bulk_insert(connection, attempts, [
                {"id": attempt_id, "project_id": store.project_id, "rollout_id": rollout_id, "sequence": 1,
                 "status": "running", "worker_id": "phone-0", "next_span_sequence": spans_each + 1, "metadata": {},
                 "created_at": now, "updated_at": now, "started_at": now, "last_heartbeat_at": now}
                for rollout_id, attempt_id in pairs])
            turn_ids = iter(new_ids(chunk * turns_per_rollout))
            bulk_insert(connection, turns_table, [
                {"id": next(turn_ids), "project_id": store.project_id, "rollout_id": rollout_id,
                 "attempt_id": attempt_id, "turn_index": index, "thinking": "the settings icon is at the top right",
                 "action": {"type": "tap", "x": 540, "y": 80 + index}, "action_result": {"ok": True},
                 "duration_seconds": 0.4, "success": True, "metrics": {}, "created_at": now}
                for rollout_id, attempt_id in pairs for index in range(turns_per_rollout)])
            connection.execute(spans_of(store, chunk_attempts, spans_each, now))
        rollout_ids += chunk_rollouts
        elapsed = time.perf_counter() - started
        console.print(f"  {len(rollout_ids):,} rollouts, {len(rollout_ids) * turns_per_rollout:,} turns, "
                      f"{len(rollout_ids) * spans_each:,} spans ({len(rollout_ids) * spans_each / elapsed:,.0f} "
                      "spans/s)", highlight=False)
    elapsed = time.perf_counter() - started
    rates["turns + spans"] = rollout_count * (turns_per_rollout + spans_each) / elapsed

    started = time.perf_counter()
    images = [store.artifacts.put(os.urandom(200_000), "image/png") for _ in range(SCREENSHOTS)]
    linked = random.sample(rollout_ids, min(linked_rollouts, len(rollout_ids)))
    links = 0
    for rollout_id in linked:
        links += len(store.artifacts.link_many([
            {"artifact": images[turn.turn_index % SCREENSHOTS], "turn_id": turn.id, "role": "screenshot"}
            for turn in store.turns.query(rollout_id=rollout_id, limit=None)]))
    rates["artifact links (artifacts.link_many)"] = links / max(time.perf_counter() - started, 1e-9)
    return Built(rollout_ids, linked, rates)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


class FullCollections:
    """The cyclic collector's full runs (over the whole process heap) while it is entered: how many, and the
    longest, since one lands in whichever read is running and makes the slowest ones."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if info["generation"] == 2:
            if phase == "start":
                self._started = time.perf_counter()
            else:
                self.durations.append(time.perf_counter() - self._started)

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc_info) -> None:
        gc.callbacks.remove(self)


def measure(store: rolloutdb.Store, built: Built, samples: int) -> dict[str, list[float]]:
    """Trajectories of random rollouts (every other one with linked screenshots), each right after the reference
    read of the same rollout."""
    times: dict[str, list[float]] = {"trajectory": [], WITHOUT_FULL_COLLECTIONS: [], CPU: [], REFERENCE: []}
    with FullCollections() as collections:
        for sample in range(samples):
            rollout_id = random.choice(built.linked if sample % 2 and built.linked else built.rollouts)
            started = time.perf_counter()
            store.rollouts.get(rollout_id)
            times[REFERENCE].append(time.perf_counter() - started)
            full_before = len(collections.durations)
            started, cpu_started = time.perf_counter(), time.process_time()
            trajectory = store.trajectory(rollout_id)
            took = time.perf_counter() - started
            times[CPU].append(time.process_time() - cpu_started)
            times["trajectory"].append(took)
            if len(collections.durations) == full_before:
                times[WITHOUT_FULL_COLLECTIONS].append(took)
            assert trajectory.turns and trajectory.attempt is not None
            # Freed here, not at the next read's assignment: else each read's clock also ran while the previous
            # read's 4,000 objects were freed (0.8 ms of 9 at full scale on PostgreSQL), which is the caller's.
            del trajectory
    if collections.durations:
        console.print(f"  the collector's full runs during the samples: {len(collections.durations)}, the longest "
                      f"{max(collections.durations) * 1e3:.1f} ms (over {len(gc.get_objects()):,} objects)",
                      highlight=False)
    return times


def run(name: str, database: AbstractContextManager[str], arguments: argparse.Namespace, table: Table) -> None:
    with database as url, rolloutdb.connect(url) as store:
        console.print(f"[bold]{name}[/]: building {arguments.turns:,} turns and {arguments.spans:,} spans ...")
        started = time.perf_counter()
        built = build(store, arguments.turns, arguments.spans, arguments.turns_per_rollout,
                      arguments.linked_rollouts)
        console.print(f"  built in {time.perf_counter() - started:,.0f} s: " + ", ".join(
            f"{part} {rate:,.0f}/s" for part, rate in built.rates.items()), highlight=False)
        started = time.perf_counter()
        analyze_postgresql(url)
        checkpoint_sqlite(url)
        console.print(f"  {'ANALYZE' if store.backend == 'postgresql' else 'WAL checkpoint'} in "
                      f"{time.perf_counter() - started:,.1f} s", highlight=False)
        store.trajectory(built.rollouts[0])  # warm: statements prepared, connections open
        console.print(f"  load average before the samples: {os.getloadavg()[0]:.1f}", highlight=False)
        times = measure(store, built, arguments.samples)
        sizes = f"{store.turns.count():,} turns, {store.spans.count(attempt_id=None):,} spans"
        for what, values in times.items():
            if not values:
                continue
            p99 = percentile(values, 0.99)
            table.add_row(name, sizes, what, f"{percentile(values, 0.5) * 1e3:.2f}", f"{p99 * 1e3:.2f}",
                          met(p99 < TARGET_P99_SECONDS) if what not in (CPU, REFERENCE) else "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--turns-per-rollout", type=int, default=50)
    parser.add_argument("--linked-rollouts", type=int, default=100, help="rollouts whose turns link a screenshot")
    parser.add_argument("--samples", type=int, default=1_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    add_postgres_option(parser)
    arguments = parser.parse_args()
    table = Table(title=f"store.trajectory of a random {arguments.turns_per_rollout}-turn rollout "
                        f"(target p99 < {TARGET_P99_SECONDS * 1e3:.0f} ms; load average "
                        f"{os.getloadavg()[0]:.1f} at the start)")
    for column in ("backend", "database", "read", "p50 ms", "p99 ms", "p99 < 10 ms"):
        table.add_column(column)
    databases = {"sqlite": sqlite_database, "postgresql": lambda: postgres_database(arguments.postgres)}
    for name in arguments.backends.split(","):
        run(name, databases[name](), arguments, table)
    console.print(table)
    console.print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
