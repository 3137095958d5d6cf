"""Purge at scale: the time to purge finished rollouts, per 1,000, in a small and a large database, on a
SQLite file and on PostgreSQL; on SQLite also the write-ahead log's peak size while purging; and how long
another process's writes wait meanwhile.

    python benchmarks/purge.py [--small 10000] [--large 100000] [--spans 10] [--rounds 3]
                               [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Each round fills a fresh database with ``--small`` (then ``--large``) finished rollouts — each with one
succeeded attempt, ``--spans`` spans and the seven history rows the queue writes for them — and times
``store.purge(older_than=timedelta(0))`` deleting them all. The fill is written with the store's bulk
inserts (COPY / multi-row INSERT), rows shaped as the queue leaves them: through the queue it would take
many minutes at 100k on PostgreSQL, and only the purge is measured. Before the purge, SQLite's WAL is
checkpointed and truncated, so that its peak (sampled every few milliseconds) is the purge's own; on
PostgreSQL the tables are analyzed, as autovacuum would have. While it purges, another process enqueues a
rollout every 20 ms: its longest write shows whether it got in between the purge's batches.

Targets: flat — the time per 1,000 rollouts at ``--large`` within 1.5x of that at ``--small`` (the small
size's median over ``--rounds`` rounds; the large one runs once); and on SQLite the WAL's peak under its
cap (64 MB, ``WAL_LIMIT_BYTES``). Each is marked met (✓) or not (✗); the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from statistics import median

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

import rolloutdb
from rolloutdb.ids import new_ids
from rolloutdb.schema import attempts, rollouts, spans, status_changes
from rolloutdb.store._wal import WAL_LIMIT_BYTES
from rolloutdb.store._bulk import bulk_insert
from common import add_postgres_option, met, postgres_database, sqlite_database

TARGET_FLAT = 1.5  # per-1k time at the large size / at the small size
FILL_CHUNK = 2_000  # rollouts per fill transaction
SPAN_ATTRIBUTES = {"gen_ai.request.model": "policy-7b", "gen_ai.usage.prompt_tokens": 512,
                   "gen_ai.usage.completion_tokens": 64, "agent.turn": 3}
# The history the queue writes for a rollout that one attempt finished: (entity, old, new, reason).
HISTORY = (("rollout", None, "queuing", "created"), ("rollout", "queuing", "preparing", "claimed by w0"),
           ("attempt", None, "preparing", "created"), ("attempt", "preparing", "running", "heartbeat"),
           ("rollout", "preparing", "running", "heartbeat"), ("attempt", "running", "succeeded", None),
           ("rollout", "running", "succeeded", "attempt succeeded"))

console = Console()


def fill(store: rolloutdb.Store, count: int, spans_each: int) -> None:
    """``count`` finished rollouts as the queue leaves them, ended one millisecond apart in the past."""
    ended = store.now() - timedelta(days=1)
    for first in range(0, count, FILL_CHUNK):
        chunk = min(FILL_CHUNK, count - first)
        rollout_ids, attempt_ids = new_ids(chunk), new_ids(chunk)
        times = [ended + timedelta(milliseconds=first + n) for n in range(chunk)]
        with store.engine.begin() as connection:
            bulk_insert(connection, rollouts, [
                {"id": rollout_id, "project_id": store.project_id, "input": {"task": first + n}, "status": "succeeded",
                 "config": {"max_attempts": 1, "timeout_seconds": None, "unresponsive_seconds": None,
                            "retry_condition": []},
                 "attempt_count": 1, "metrics": {}, "metadata": {}, "created_at": at, "updated_at": at,
                 "started_at": at, "ended_at": at}
                for n, (rollout_id, at) in enumerate(zip(rollout_ids, times))])
            bulk_insert(connection, attempts, [
                {"id": attempt_id, "project_id": store.project_id, "rollout_id": rollout_id, "sequence": 1,
                 "status": "succeeded", "worker_id": "w0", "next_span_sequence": spans_each + 1, "metadata": {},
                 "created_at": at, "updated_at": at, "started_at": at, "ended_at": at, "last_heartbeat_at": at}
                for rollout_id, attempt_id, at in zip(rollout_ids, attempt_ids, times)])
            span_ids = iter(new_ids(chunk * spans_each))
            bulk_insert(connection, spans, [
                {"id": next(span_ids), "project_id": store.project_id, "rollout_id": rollout_id,
                 "attempt_id": attempt_id, "sequence_id": n + 1, "trace_id": "a" * 32, "span_id": f"{n:016x}",
                 "name": "llm.completion", "status": {"status_code": "OK"}, "attributes": SPAN_ATTRIBUTES,
                 "events": [], "links": [], "created_at": at}
                for rollout_id, attempt_id, at in zip(rollout_ids, attempt_ids, times) for n in range(spans_each)])
            bulk_insert(connection, status_changes, [
                {"project_id": store.project_id, "entity_type": entity,
                 "entity_id": rollout_id if entity == "rollout" else attempt_id, "old_status": old,
                 "new_status": new, "changed_at": at, "reason": reason}
                for rollout_id, attempt_id, at in zip(rollout_ids, attempt_ids, times)
                for entity, old, new, reason in HISTORY])


@contextmanager
def wal_peak(url: str) -> Iterator[list[int]]:
    """The largest size the SQLite database's WAL file reaches inside the block (bytes, in a list filled
    at the end); sampled every 2 ms."""
    wal = f"{make_url(url).database}-wal"
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            try:
                peak[0] = max(peak[0], os.path.getsize(wal))
            except FileNotFoundError:
                pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def write_meanwhile(url: str, project: str, ready, stop, waits) -> None:
    """Another process's writer: one rollout enqueued every 20 ms until ``stop``; each write's seconds go
    to ``waits`` (a queue) at the end."""
    with rolloutdb.connect(url, project=project) as store:
        seconds = []
        while not stop.is_set():
            started = time.perf_counter()
            store.rollouts.enqueue("written while purging")
            seconds.append(time.perf_counter() - started)
            ready.set()
            stop.wait(0.02)
    waits.put(seconds)


@dataclass
class Round:
    seconds: float  # the purge's
    wal_peak: int | None  # bytes; SQLite only
    longest_write: float  # seconds: the other process's slowest write during the purge


def purge_round(database: Callable[[], AbstractContextManager[str]], count: int, spans_each: int,
                what: str) -> Round:
    """Purge ``count`` finished rollouts from a fresh database while another process writes."""
    with database() as url, rolloutdb.connect(url) as store:
        with console.status(f"{what}: filling {count:,} rollouts"):
            fill(store, count, spans_each)
        sqlite = store.backend == "sqlite"
        with store.engine.connect() as connection:
            # SQLite: the fill's WAL is not the purge's. PostgreSQL: statistics, as autovacuum keeps them in a
            # database that grew by use (without any, the planner takes 100k rows for a few hundred).
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)" if sqlite else "ANALYZE")
            connection.commit()
        processes = multiprocessing.get_context("spawn")
        ready, stop, waits = processes.Event(), processes.Event(), processes.Queue()
        writer = processes.Process(target=write_meanwhile, args=(url, store.project, ready, stop, waits))
        writer.start()
        ready.wait()
        with console.status(f"{what}: purging {count:,} rollouts"), wal_peak(url) as peak:
            started = time.perf_counter()
            result = store.purge(older_than=timedelta(0))
            elapsed = time.perf_counter() - started
        stop.set()
        longest = max(waits.get())
        writer.join()
        assert result.rollouts == count and result.spans == count * spans_each, result
        assert store.rollouts.count(status="succeeded") == 0
        return Round(elapsed, peak[0] if sqlite else None, longest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10_000, help="finished rollouts in the small database")
    parser.add_argument("--large", type=int, default=100_000, help="finished rollouts in the large database")
    parser.add_argument("--spans", type=int, default=10, help="spans per rollout")
    parser.add_argument("--rounds", type=int, default=3, help="rounds at the small size (the large one runs once)")
    add_postgres_option(parser)
    args = parser.parse_args()

    table = Table(title=f"Purge: seconds per 1,000 rollouts ({args.spans} spans each) when purging "
                        f"{args.small:,} (small) and {args.large:,} (large)",
                  caption=f"small: median of {args.rounds} rounds. WAL: its peak size; writer ms: the longest "
                          "write of another process during the purge; both over all rounds")
    for column in ("backend", "small s/1k", "large s/1k", "ratio", "target", "met", "WAL MB", "target", "met",
                   "writer ms"):
        table.add_column(column, justify="center" if column == "met" else "right", no_wrap=column == "backend")
    databases = {"sqlite": sqlite_database, "postgresql": lambda: postgres_database(args.postgres)}
    for backend, database in databases.items():
        rounds = [purge_round(database, args.small, args.spans, f"{backend}, {args.small:,}, round {n + 1}")
                  for n in range(args.rounds)]
        large = purge_round(database, args.large, args.spans, f"{backend}, {args.large:,}")
        per_1k_small = median(r.seconds for r in rounds) / args.small * 1000
        per_1k_large = large.seconds / args.large * 1000
        ratio = per_1k_large / per_1k_small
        wal = max(r.wal_peak for r in [*rounds, large]) if backend == "sqlite" else None
        table.add_row(backend, f"{per_1k_small:.3f}", f"{per_1k_large:.3f}", f"{ratio:.2f}",
                      f"<= {TARGET_FLAT:.1f}", met(ratio <= TARGET_FLAT),
                      "-" if wal is None else f"{wal / 2**20:.1f}",
                      "-" if wal is None else f"< {WAL_LIMIT_BYTES / 2**20:.0f}",
                      met(None if wal is None else wal < WAL_LIMIT_BYTES),
                      f"{max(r.longest_write for r in [*rounds, large]) * 1000:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()
