"""Queue workload: span ingest against the raw driver, and the full rollout cycle against
Agent Lightning's InMemoryLightningStore, measured in the same run on this machine.

    python benchmarks/queue_workload.py [--rollouts 2000] [--workers 4] [--spans 10]
                                        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Every figure is also reported as a ratio against its reference, so results compare across machines:
- span ingest: ``store.spans.add_many`` vs the driver doing the same inserts in one transaction
  (sqlite3 ``executemany``; psycopg ``COPY``), target >= 0.70. RolloutDB's own SQLite path sends
  multi-row INSERTs, which SQLite runs faster than executemany, so the bare driver doing that too is
  shown beside it: what RolloutDB's validation and bookkeeping cost over the same technique. The
  SQLite driver's connection has the store's own settings (its PRAGMAs, read from a store connection:
  WAL, synchronous, no automatic checkpoints, busy timeout, foreign keys), and its commits wake the
  store's checkpoint thread as the store's own do: both sides pay the same for durability and the WAL;
- rollout cycle (enqueue N, W workers dequeue, add spans, finish): RolloutDB vs the in-memory store
  doing the same through its own API, target >= 1.0 on SQLite.
Each target is marked met (✓) or not (✗) in the tables; the exit code is 0 either way.
The sides take turns, round after round (ingest 7 rounds, cycle 5), and a ratio is the median of
the rounds' ratios: each compares runs made one right after the other, so a spell when the machine
is slower (this one is a shared virtual machine) weighs on both sides of it; rates are medians too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from statistics import median

import orjson
import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

import rolloutdb
from rolloutdb.ids import new_id
from rolloutdb.store import Store
from rolloutdb.store._wal import WalKeeper
from rolloutdb.store._bulk import SQLITE_ROWS_PER_STATEMENT
from rolloutdb.store.engine import BUSY_TIMEOUT_SECONDS
from common import add_postgres_option, met, postgres_database, sqlite_database

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # agentlightning imports litellm: stay offline

SPAN_ATTRIBUTES = {"gen_ai.request.model": "policy-7b", "gen_ai.usage.prompt_tokens": 512,
                   "gen_ai.usage.completion_tokens": 64, "agent.turn": 3}
SPAN_COLUMNS = ("id", "project_id", "rollout_id", "attempt_id", "sequence_id", "trace_id", "span_id", "parent_id",
                "name", "status", "attributes", "events", "links", "context", "parent", "resource", "start_time",
                "end_time", "created_at")

TARGET_INGEST = 0.70  # span ingest, RolloutDB / driver, both backends
TARGET_CYCLE_SQLITE = 1.0  # rollout cycle on SQLite, RolloutDB / in-memory store
# What the store sets on each SQLite connection (store.engine), copied onto the driver's connection.
SQLITE_PRAGMAS = ("journal_mode", "synchronous", "wal_autocheckpoint", "busy_timeout", "foreign_keys")

console = Console()


def span_fields(rollout_id: str, attempt_id: str, n: int) -> dict:
    return {"rollout_id": rollout_id, "attempt_id": attempt_id, "sequence_id": n, "trace_id": "a" * 32,
            "span_id": f"{n:016x}", "parent_id": None, "name": "llm.completion", "attributes": SPAN_ATTRIBUTES,
            "status": {"status_code": "OK"}}


# -- span ingest ------------------------------------------------------------------------------------

def store_pragmas(store: Store) -> dict[str, object]:
    """The settings of one of the store's own SQLite connections."""
    with store.engine.connect() as connection:
        return {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in SQLITE_PRAGMAS}


def store_like_connection(store: Store) -> sqlite3.Connection:
    """A bare sqlite3 connection to the store's database, with the settings the store's connections have."""
    settings = store_pragmas(store)
    connection = sqlite3.connect(make_url(store.url).database, isolation_level=None)
    for name, value in settings.items():
        connection.execute(f"PRAGMA {name} = {value}")
    got = {name: connection.execute(f"PRAGMA {name}").fetchone()[0] for name in SQLITE_PRAGMAS}
    assert got == settings, f"the driver's connection must have the store's settings: {got} != {settings}"
    return connection


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` took, from a cleared collector: objects the setup made just before (the 20,000 spans of
    an ingest) or the other side left would otherwise bring on a full collection of the whole process heap (50-100
    ms, as long as a tenth of a side) in whichever side's clock ran next. The collections the action's own objects
    cause stay in its time."""
    gc.collect()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def ingest_with_store(store: rolloutdb.Store, count: int, batch: int) -> float:
    claim = store.rollouts.start("ingest")
    rows = [span_fields(claim.rollout.id, claim.attempt.id, n + 1) for n in range(count)]

    def insert() -> None:
        # Each batch's returned spans are dropped, as a caller would: the driver keeps nothing either.
        for start in range(0, count, batch):
            store.spans.add_many(rows[start:start + batch])

    return timed(insert)


def ingest_with_driver(store: rolloutdb.Store, count: int, batch: int, *, multi_row: bool = False) -> float:
    """The same spans inserted by the bare driver: the timed part turns the same dicts into rows
    (ids, JSON text with orjson, timestamps) and inserts them, with no validation or bookkeeping.
    SQLite: executemany, or with ``multi_row`` statements of as many rows as RolloutDB's own."""
    claim = store.rollouts.start("raw")
    spans = [span_fields(claim.rollout.id, claim.attempt.id, n + 1) for n in range(count)]
    url = make_url(store.url)
    sqlite_time = "%Y-%m-%d %H:%M:%S.%f"

    def encode(value) -> str:
        return orjson.dumps(value).decode()

    def rows(chunk: list[dict]) -> list[tuple]:
        now = datetime.now(timezone.utc)
        created = now.replace(tzinfo=None).strftime(sqlite_time) if store.backend == "sqlite" else now
        return [(new_id(), store.project_id, s["rollout_id"], s["attempt_id"], s["sequence_id"], s["trace_id"],
                 s["span_id"], s["parent_id"], s["name"], encode(s["status"]), encode(s["attributes"]),
                 "[]", "[]", None, None, None, None, None, created) for s in chunk]

    if store.backend == "sqlite":
        insert_into = f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES "
        one_row = f"({', '.join('?' * len(SPAN_COLUMNS))})"

        def insert() -> None:
            connection = store_like_connection(store)
            # As the store writes: under a write lock, and a commit wakes a WAL thread like the store's
            # (automatic checkpoints are off on its connections, and so on this one).
            write_lock = threading.Lock()
            wal = WalKeeper(make_url(store.url).database, write_lock, BUSY_TIMEOUT_SECONDS)
            for start in range(0, count, batch):
                with write_lock:
                    connection.execute("BEGIN IMMEDIATE")
                    chunk = rows(spans[start:start + batch])
                    if multi_row:
                        for first in range(0, len(chunk), SQLITE_ROWS_PER_STATEMENT):
                            part = chunk[first:first + SQLITE_ROWS_PER_STATEMENT]
                            connection.execute(insert_into + ", ".join([one_row] * len(part)),
                                               [value for row in part for value in row])
                    else:
                        connection.executemany(insert_into + one_row, chunk)
                    connection.execute("COMMIT")
                wal.written()
            wal.close()
            connection.close()
    else:
        def insert() -> None:
            with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as connection:
                for start in range(0, count, batch):
                    with connection.cursor().copy(f"COPY spans ({', '.join(SPAN_COLUMNS)}) FROM STDIN") as copy:
                        for row in rows(spans[start:start + batch]):
                            copy.write_row(row)
                    connection.commit()
    return timed(insert)


# -- the rollout cycle ------------------------------------------------------------------------------

def cycle_with_store(store: rolloutdb.Store, rollouts: int, workers: int, spans: int, batch: int) -> float:
    def work(worker: int) -> None:
        while claims := store.rollouts.dequeue_many(batch, worker_id=f"w{worker}"):
            store.spans.add_many([span_fields(c.rollout.id, c.attempt.id, n + 1)
                                  for c in claims for n in range(spans)])
            for claim in claims:
                store.attempts.update(claim.rollout.id, claim.attempt.id, status="succeeded")

    def run() -> None:
        store.rollouts.enqueue_many([{"input": {"task": n}} for n in range(rollouts)])
        threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    elapsed = timed(run)
    assert store.rollouts.count(status="succeeded") == rollouts, "the cycle must finish every rollout"
    return elapsed


def cycle_in_memory(rollouts: int, workers: int, spans: int, batch: int) -> float:
    from agentlightning.store.memory import InMemoryLightningStore
    from agentlightning.types import EnqueueRolloutRequest, Span

    def agl_span(rollout_id: str, attempt_id: str, n: int) -> Span:
        return Span.model_validate({**span_fields(rollout_id, attempt_id, n), "events": [], "links": [],
                                    "start_time": None, "end_time": None, "context": None, "parent": None,
                                    "resource": {"attributes": {}, "schema_url": ""}})

    async def run() -> float:
        store = InMemoryLightningStore()

        async def work(worker: int) -> None:
            while claims := await store.dequeue_many_rollouts(limit=batch, worker_id=f"w{worker}"):
                await store.add_many_spans([agl_span(c.rollout_id, c.attempt.attempt_id, n + 1)
                                            for c in claims for n in range(spans)])
                for claim in claims:
                    await store.update_attempt(claim.rollout_id, claim.attempt.attempt_id, status="succeeded")

        started = time.perf_counter()
        await store.enqueue_many_rollouts([EnqueueRolloutRequest(input={"task": n}) for n in range(rollouts)])
        await asyncio.gather(*(work(n) for n in range(workers)))
        elapsed = time.perf_counter() - started
        finished = await store.query_rollouts(status_in=["succeeded"])
        assert len(finished) == rollouts, "the cycle must finish every rollout"
        return elapsed

    return asyncio.run(run())


# -- taking turns -----------------------------------------------------------------------------------

INGEST_ROUNDS = 7
CYCLE_ROUNDS = 5
PAIRED_CAPTION = ("rates: each side's median over the rounds; ratios: the median of the rounds' own ratios "
                  "(runs one right after the other), so the two need not agree exactly")


def in_turns(sides: dict[str, Callable[[], float]], rounds: int, what: str) -> dict[str, list[float]]:
    """Each side's seconds, one run per round; the order flips every round, so that no side always
    runs first (or right after the same other one)."""
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    order = list(sides)
    for round in range(rounds):
        for side in order if round % 2 == 0 else reversed(order):
            with console.status(f"{what}, round {round + 1} of {rounds}: {side}"):
                seconds[side].append(sides[side]())
    return seconds


def median_ratio(reference: list[float], ours: list[float]) -> float:
    """How many times faster ours ran than the reference, as the median over the rounds."""
    return median(theirs / mine for theirs, mine in zip(reference, ours))


# -- report -----------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--spans", type=int, default=10, help="spans per rollout")
    parser.add_argument("--batch", type=int, default=4, help="rollouts claimed per dequeue")
    parser.add_argument("--ingest", type=int, default=20000, help="spans in the ingest comparison")
    add_postgres_option(parser)
    args = parser.parse_args()

    ingest = Table(title=f"Span ingest: {args.ingest:,} spans in batches of 500", caption=PAIRED_CAPTION)
    for column in ("backend", "RolloutDB spans/s", "driver spans/s", "ratio", "target", "met",
                   "driver, multi-row INSERT", "ratio to it"):
        ingest.add_column(column, justify="center" if column == "met" else "right")
    cycle = Table(title=f"Rollout cycle: {args.rollouts:,} rollouts, {args.workers} workers, {args.spans} spans each",
                  caption=PAIRED_CAPTION)
    for column in ("store", "rollouts/s", "spans/s", "ratio vs in-memory", "target", "met"):
        cycle.add_column(column, justify="center" if column == "met" else "right")

    databases = {"sqlite": sqlite_database, "postgresql": lambda: postgres_database(args.postgres)}
    for backend, database in databases.items():
        with database() as url, rolloutdb.connect(url) as store:
            # All sides write to one database: none of them pays alone for growing its file.
            sides = {"ours": lambda: ingest_with_store(store, args.ingest, 500),
                     "driver": lambda: ingest_with_driver(store, args.ingest, 500)}
            if backend == "sqlite":  # the technique RolloutDB uses on SQLite, by the bare driver
                sides["multi-row"] = lambda: ingest_with_driver(store, args.ingest, 500, multi_row=True)
            seconds = in_turns(sides, INGEST_ROUNDS, f"{backend}: span ingest")
        multi_row = ((f"{args.ingest / median(seconds['multi-row']):,.0f}",
                      f"{median_ratio(seconds['multi-row'], seconds['ours']):.2f}") if "multi-row" in seconds
                     else ("-", "-"))
        ratio = median_ratio(seconds['driver'], seconds['ours'])
        ingest.add_row(backend, f"{args.ingest / median(seconds['ours']):,.0f}",
                       f"{args.ingest / median(seconds['driver']):,.0f}",
                       f"{ratio:.2f}", f">= {TARGET_INGEST:.2f}", met(ratio >= TARGET_INGEST), *multi_row)

    workload = (args.rollouts, args.workers, args.spans, args.batch)

    def in_memory() -> float:
        # In a process of its own: what the in-memory store leaves running must not slow the others.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(cycle_in_memory, *workload).result()

    def on(database: Callable[[], AbstractContextManager[str]]) -> Callable[[], float]:
        def run() -> float:
            with database() as url, rolloutdb.connect(url) as store:  # fresh, as the in-memory store starts empty
                return cycle_with_store(store, *workload)
        return run

    seconds = in_turns({"in-memory": in_memory, **{name: on(database) for name, database in databases.items()}},
                       CYCLE_ROUNDS, "rollout cycle")
    for name, times in seconds.items():
        ratio = median_ratio(seconds['in-memory'], times)
        target = TARGET_CYCLE_SQLITE if name == "sqlite" else None  # the in-memory store is the reference
        cycle.add_row("agentlightning in-memory" if name == "in-memory" else f"RolloutDB {name}",
                      f"{args.rollouts / median(times):,.0f}", f"{args.rollouts * args.spans / median(times):,.0f}",
                      f"{ratio:.2f}", "-" if target is None else f">= {target:.1f}",
                      met(None if target is None else ratio >= target))
    console.print(ingest)
    console.print(cycle)


if __name__ == "__main__":
    main()
