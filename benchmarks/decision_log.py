"""Cost of logging the flywheel's decisions, on SQLite and PostgreSQL.

    python benchmarks/decision_log.py [--decisions 20000] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Three ways, each measured in the same run on the same machine:

- ``DecisionLogger.log`` in a burst: what the calling service pays per decision (queued; a writer process applies
  them). Reference: ``Recorder`` ``rollout.turn()`` in a burst, the recorder's call on the same machinery
  (target: within 2x of it, and < 20 µs).
- ``store.decisions.log_many`` in batches of 1,000: decisions/s written. Reference: the raw driver inserting the
  same rows (sqlite3 ``executemany`` / psycopg ``executemany``) into a table of the same columns.
- ``store.decisions.log`` one at a time: a transaction per decision, for scale.

The load average is printed: on a shared machine the ratios are only as steady as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
import uuid
from datetime import datetime, timezone

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

import rolloutdb
from common import add_postgres_option, met, postgres_database, sqlite_database

console = Console()
STATE = {"length": 42, "similar_memories": 2, "quality": 0.7}


def decisions(count: int) -> list[dict]:
    now = datetime.now(timezone.utc)
    return [{"domain": "memory", "subject_id": f"m-{n}", "action": "insert", "reason": "a new fact",
             "state": STATE, "policy_version": "rules-1", "propensity": 0.9, "at": now} for n in range(count)]


def logger_burst(url: str, count: int, journal: str) -> tuple[float, bool]:
    with rolloutdb.DecisionLogger(url, project="bench-logger", journal_dir=journal) as logger:
        logger.log("memory", "warm-up", "insert")  # its writer started and connected, as a recorder's is once made
        logger.flush(timeout=60)
        began = time.perf_counter()
        for n in range(count):
            logger.log("memory", f"m-{n}", "insert", reason="a new fact", state=STATE, policy_version="rules-1",
                       propensity=0.9)
        elapsed = time.perf_counter() - began
        written = bool(logger.flush(timeout=120))
    return elapsed / count, written


def turn_burst(url: str, count: int, journal: str) -> float:
    with rolloutdb.Recorder(url, run=f"bench-{uuid.uuid4().hex[:6]}", project="bench-recorder",
                            journal_dir=journal) as recorder:
        with recorder.step(0) as step, step.group(task="t").rollout() as rollout:
            began = time.perf_counter()
            for n in range(count):
                rollout.turn(observation=STATE, action="insert", reward=0.0)
            elapsed = time.perf_counter() - began
    return elapsed / count


def store_batches(url: str, rows: list[dict]) -> float:
    with rolloutdb.connect(url, project="bench-batches") as store:
        began = time.perf_counter()
        for start in range(0, len(rows), 1000):
            store.decisions.log_many(rows[start:start + 1000])
        return len(rows) / (time.perf_counter() - began)


def store_one_by_one(url: str, rows: list[dict]) -> float:
    with rolloutdb.connect(url, project="bench-single") as store:
        began = time.perf_counter()
        for row in rows:
            store.decisions.log(**row)
        return len(rows) / (time.perf_counter() - began)


RAW_COLUMNS = "id, domain, subject_id, action, reason, state, policy_version, propensity, created_at"
RAW_TABLE = ("CREATE TABLE raw_decisions (id VARCHAR(128) PRIMARY KEY, domain VARCHAR(100), subject_id VARCHAR(128), "
             "action VARCHAR(100), reason TEXT, state {json}, policy_version VARCHAR(100), propensity FLOAT, "
             "created_at {time})")


def raw_rows(rows: list[dict]) -> list[tuple]:
    return [(str(uuid.uuid4()), row["domain"], row["subject_id"], row["action"], row["reason"], json.dumps(row["state"]),
             row["policy_version"], row["propensity"], row["at"].isoformat()) for row in rows]


def raw_driver(url: str, rows: list[dict]) -> float:
    parsed = make_url(url)
    values = raw_rows(rows)
    if parsed.get_backend_name() == "sqlite":
        connection = sqlite3.connect(parsed.database)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(RAW_TABLE.format(json="TEXT", time="TIMESTAMP"))
        began = time.perf_counter()
        for start in range(0, len(values), 1000):
            with connection:
                connection.executemany(f"INSERT INTO raw_decisions ({RAW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                       values[start:start + 1000])
        rate = len(values) / (time.perf_counter() - began)
        connection.close()
        return rate
    with psycopg.connect(host=parsed.host, port=parsed.port or 5432, user=parsed.username, password=parsed.password,
                         dbname=parsed.database) as connection:
        connection.execute(RAW_TABLE.format(json="JSONB", time="TIMESTAMPTZ"))
        connection.commit()
        began = time.perf_counter()
        for start in range(0, len(values), 1000):
            with connection.cursor() as cursor:
                cursor.executemany(f"INSERT INTO raw_decisions ({RAW_COLUMNS}) VALUES "
                                   "(%s, %s, %s, %s, %s, %s, %s, %s, %s)", values[start:start + 1000])
            connection.commit()
        return len(values) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=500, help="decisions logged one transaction each")
    add_postgres_option(parser)
    args = parser.parse_args()
    console.print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    table = Table(title=f"Logging {args.decisions:,} memory decisions",
                  caption="log(): DecisionLogger.log in a burst, per call; turn(): Recorder rollout.turn() likewise "
                          "(target: log() < 20 µs and < 2x turn()); log_many/s: store.decisions.log_many in batches "
                          "of 1,000; raw/s: the driver's executemany of the same rows")
    for column in ("backend", "log()", "turn() ref", "×", "met", "log_many/s", "raw/s ref", "×", "log() 1 by 1/s"):
        table.add_column(column, justify="right")
    rows = decisions(args.decisions)
    for backend, database in (("sqlite", sqlite_database()), ("postgresql", postgres_database(args.postgres))):
        with database as url:
            journal = f"/tmp/rolloutdb-bench-journal-{uuid.uuid4().hex[:6]}"
            with console.status(f"{backend}: logger and recorder bursts"):
                per_log, written = logger_burst(url, args.decisions, journal)
                per_turn = turn_burst(url, args.decisions, journal)
            with console.status(f"{backend}: batches, raw driver, one by one"):
                rate = store_batches(url, rows)
                raw = raw_driver(url, rows)
                single = store_one_by_one(url, rows[:args.single])
            ok = written and per_log < 20e-6 and per_log < 2 * per_turn
            table.add_row(backend, f"{per_log * 1e6:.1f} µs", f"{per_turn * 1e6:.1f} µs", f"{per_log / per_turn:.2f}x",
                          met(ok), f"{rate:,.0f}", f"{raw:,.0f}", f"{rate / raw:.2f}x", f"{single:,.0f}")
    console.print(table)
    console.print(f"load average: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
