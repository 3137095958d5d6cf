"""Training-data export at scale: rows/s and peak memory of ``store.export`` to Parquet, against references
measured in the same run, on a SQLite file and on PostgreSQL.

    python benchmarks/export.py [--rollouts 20000] [--turns 10] [--rounds 3] [--backends sqlite,postgresql]
                                [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
    python benchmarks/export.py --rollouts 100000 --turns 10 --rounds 1     # the issue's 1M turns

A fresh database is filled (bulk inserts, as the recorder leaves them) with ``--rollouts`` finished rollouts of
``--turns`` turns each (observation, thinking, action, reward), and analyzed on PostgreSQL (as autovacuum would
have), then, in rounds whose sides take turns, each in
a process of its own (so that its peak resident memory is its own):

- export: ``store.export("trl-lm-chat", out=....parquet)``, the rows it writes per second and its peak RSS (the
  one-off import of pandas that pyarrow makes on first use, a second or more, is made before the clock starts, as
  on the write reference's side);
- write reference: pyarrow writing the same rows (read back from the exported file) from memory, with the same
  schema and one row group per 500 rows: the rate export is measured against (target ≥ 0.5×);
- memory reference: the same rollouts and their turns read into memory through ``store.rollouts.query`` and
  ``store.turns.query`` (``limit=None``), as a script without export would: its peak RSS;
- floor: the least an export of the turns does, fetching the four columns messages are made of, 500 rollouts a
  query, in order, as the driver's tuples (and on PostgreSQL spelling JSONB's text of the two JSON columns compact
  again, as message text is): the most the export's rate could be against the write reference (the ceiling).

Targets: the export's rate at least half the write reference's, its peak RSS under 300 MB (and under the memory
reference's once the data is larger than the export's fixed cost). Medians over the rounds; each target is
marked met (✓) or not (✗); the exit code is 0 either way. Timing on a busy machine is noisy: the load average
is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from statistics import median

import orjson
from rich.console import Console
from rich.table import Table
from sqlalchemy import Text, cast, select

import rolloutdb
from rolloutdb.ids import new_ids
from rolloutdb.schema import attempts, rollouts, tasks, turns
from rolloutdb.store._bulk import bulk_insert
from rolloutdb.store.base import collector_paused, one_of
from common import add_postgres_option, met, postgres_database, sqlite_database

TARGET_RATE = 0.5  # export rows/s over pyarrow's, writing the same rows from memory
TARGET_RSS_MB = 300
FILL_CHUNK = 1_000  # rollouts per fill transaction
PROJECT = "bench"
console = Console()


def fill(store: rolloutdb.Store, count: int, turns_each: int) -> None:
    """``count`` succeeded rollouts of one task each (100 tasks), with ``turns_each`` turns of a few hundred bytes."""
    now = store.now() - timedelta(days=1)
    task_ids = new_ids(100)
    with store.engine.begin() as connection:
        bulk_insert(connection, tasks, [
            {"id": task_id, "project_id": store.project_id, "external_id": f"task-{n}",
             "instruction": f"Open the settings and turn on option {n}.", "input": {"n": n}, "dataset": "bench",
             "split": "train", "tags": ["bench"], "validator_id": None, "metadata": {}, "created_at": now,
             "updated_at": now} for n, task_id in enumerate(task_ids)])
    for first in range(0, count, FILL_CHUNK):
        chunk = min(FILL_CHUNK, count - first)
        rollout_ids, attempt_ids = new_ids(chunk), new_ids(chunk)
        with store.engine.begin() as connection:
            bulk_insert(connection, rollouts, [
                {"id": rollout_id, "project_id": store.project_id, "task_id": task_ids[(first + n) % 100],
                 "input": None, "status": "succeeded", "mode": "train", "step": (first + n) // 1000,
                 "config": {"max_attempts": 1, "timeout_seconds": None, "unresponsive_seconds": None,
                            "retry_condition": []}, "attempt_count": 1, "reward": float(n % 2), "success": n % 2 == 1,
                 "metrics": {}, "metadata": {}, "created_at": now, "updated_at": now, "started_at": now, "ended_at": now}
                for n, rollout_id in enumerate(rollout_ids)])
            bulk_insert(connection, attempts, [
                {"id": attempt_id, "project_id": store.project_id, "rollout_id": rollout_id, "sequence": 1,
                 "status": "succeeded", "worker_id": "w0", "next_span_sequence": 1, "metadata": {}, "created_at": now,
                 "updated_at": now, "started_at": now, "ended_at": now, "last_heartbeat_at": now}
                for rollout_id, attempt_id in zip(rollout_ids, attempt_ids)])
            turn_ids = iter(new_ids(chunk * turns_each))
            bulk_insert(connection, turns, [
                {"id": next(turn_ids), "project_id": store.project_id, "rollout_id": rollout_id,
                 "attempt_id": attempt_id, "turn_index": index,
                 "observation": {"screen": "Settings", "elements": [f"option {k}" for k in range(8)], "step": index},
                 "thinking": "The option I need is further down; I scroll, then tap it.",
                 "action": {"type": "tap", "x": 120 + index, "y": 640}, "action_result": None, "model_response": None,
                 "reward": float(index % 2), "done": index == turns_each - 1, "duration_seconds": 0.5,
                 "success": None, "error": None, "metrics": {}, "tokens": None, "logprobs": None, "created_at": now}
                for rollout_id, attempt_id in zip(rollout_ids, attempt_ids) for index in range(turns_each)])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(kind: str, url: str, path: str) -> dict:
    """One side of a round, in this (fresh) process: what it did, its seconds and its peak RSS."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind == "write":  # rows already in memory (read before the clock starts), written by pyarrow alone
        table = pq.read_table(path)
        rows, schema = table.to_pylist(), table.schema
        del table
        pa.array([""])  # pyarrow imports pandas on first use (an empty from_pylist does not): not part of the time
        started = time.perf_counter()
        with pq.ParquetWriter(path + ".reference", schema) as writer:
            for first in range(0, len(rows), 500):
                writer.write_table(pa.Table.from_pylist(rows[first:first + 500], schema=schema))
        return {"rows": len(rows), "seconds": time.perf_counter() - started, "rss": peak_rss_mb()}
    pa.array([""])  # on both sides, pyarrow's import of pandas on first use is left out of the time
    with rolloutdb.connect(url, project=PROJECT, create=False) as store:
        if kind == "floor":
            return floor(store)
        started = time.perf_counter()
        if kind == "export":
            rows = store.export("trl-lm-chat", out=path, images="none").rows
        else:  # "read": everything in memory at once
            kept = store.rollouts.query(limit=None), store.turns.query(limit=None)
            rows = len(kept[0])
        return {"rows": rows, "seconds": time.perf_counter() - started, "rss": peak_rss_mb()}


def floor(store: rolloutdb.Store) -> dict:
    """The turns' columns fetched page by page (and, on PostgreSQL, their JSON spelled compact): seconds, rows."""
    with store.engine.connect() as connection:
        ids = connection.execute(select(rollouts.c.id).order_by(rollouts.c.id)).scalars().all()
        started = time.perf_counter()
        for first in range(0, len(ids), 500):
            statement = (select(turns.c.rollout_id, cast(turns.c.observation, Text), turns.c.thinking,
                                cast(turns.c.action, Text))
                         .where(one_of(turns.c.rollout_id, ids[first:first + 500], store.backend))
                         .order_by(turns.c.rollout_id, turns.c.turn_index, turns.c.created_at))
            with collector_paused(), connection.execute(statement) as result:
                found = result.cursor.fetchall()
                if store.backend == "postgresql":
                    for _, observation, _, action in found:
                        orjson.dumps(orjson.loads(observation)), orjson.dumps(orjson.loads(action))
        return {"rows": len(ids), "seconds": time.perf_counter() - started, "rss": peak_rss_mb()}


def run_child(kind: str, url: str, path: str) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", kind, url, path], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(backend: str, url: str, args: argparse.Namespace, table: Table) -> None:
    with rolloutdb.connect(url, project=PROJECT) as store:
        started = time.perf_counter()
        fill(store, args.rollouts, args.turns)
        with store.engine.connect() as connection:
            # SQLite: the fill's WAL is not the export's. PostgreSQL: statistics, as autovacuum keeps them in a
            # database that grew by use (without any, the planner scans every turn for each page's).
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)" if backend == "sqlite" else "ANALYZE")
            connection.commit()
        console.print(f"{backend}: filled {args.rollouts:,} rollouts, {args.rollouts * args.turns:,} turns in "
                      f"{time.perf_counter() - started:.0f}s")
    results: dict[str, list[dict]] = {"export": [], "write": [], "read": [], "floor": []}
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "out.parquet")
        for _ in range(args.rounds):
            for kind in results:  # the write reference reads the export's file
                results[kind].append(run_child(kind, url, path))
    rate = {kind: median(r["rows"] / r["seconds"] for r in found) for kind, found in results.items()}
    rss = {kind: median(r["rss"] for r in found) for kind, found in results.items()}
    ratio = rate["export"] / rate["write"]
    table.add_row(backend, f"{results['export'][0]['rows']:,}", f"{rate['export']:,.0f}", f"{rate['write']:,.0f}",
                  f"{ratio:.2f}× {met(ratio >= TARGET_RATE)}", f"{rate['floor'] / rate['write']:.2f}×",
                  f"{rss['export']:.0f} {met(rss['export'] < TARGET_RSS_MB)}",
                  f"{rss['read']:.0f}", f"{rss['write']:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=20_000)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    add_postgres_option(parser)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    table = Table(title=f"Export of {args.rollouts:,} rollouts × {args.turns} turns to Parquet (trl-lm-chat), "
                        f"median of {args.rounds}")
    for column in ("backend", "rows", "export rows/s", "pyarrow rows/s", f"rate (≥ {TARGET_RATE}×)",
                   "ceiling (fetch only)", f"export peak MB (< {TARGET_RSS_MB})", "read-all peak MB", "pyarrow peak MB"):
        table.add_column(column, justify="right")
    for backend in args.backends.split(","):
        database = sqlite_database() if backend == "sqlite" else postgres_database(args.postgres)
        with database as url:
            measure(backend, url, args, table)
    console.print(table)
    console.print(f"load average: {' '.join(f'{load:.1f}' for load in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
