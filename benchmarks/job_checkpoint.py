"""Cost of ``job.checkpoint()`` in a tight loop, on SQLite and PostgreSQL.

    python benchmarks/job_checkpoint.py [--seconds 3] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Checkpoints coalesce their writes (one transaction per ``write_interval``, 0.25 s by default), so a
loop can call them freely. The reference is the same checkpoint writing every time
(``write_interval=0``): the ratio between the rows is what coalescing buys.

Target (the jobs' promise: progress writes are coalesced, at most a few per second): a coalesced loop
writes at most once per ``write_interval``, i.e. at most 1 + seconds / write_interval transactions
(counted as the store's engine commits them). It is marked met (✓) or not (✗); the exit code is 0
either way.
"""

from __future__ import annotations

import argparse
import math
import time

from rich.console import Console
from rich.table import Table
from sqlalchemy import event

import rolloutdb
from common import add_postgres_option, met, postgres_database, sqlite_database

console = Console()


def loop(job, seconds: float, with_message: bool) -> tuple[int, float]:
    """Call checkpoint() as fast as possible for ``seconds``; returns (calls, elapsed)."""
    calls, began = 0, time.perf_counter()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            job.checkpoint(state={"item": calls}, message=f"item {calls}" if with_message else None)
            calls += 1
    return calls, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    add_postgres_option(parser)
    args = parser.parse_args()

    table = Table(title=f"job.checkpoint() in a tight loop ({args.seconds:g} s each)",
                  caption="writes: transactions committed during the loop; target when coalesced: "
                          "at most one per write_interval (1 + seconds / write_interval)")
    for column in ("backend", "checkpoint", "calls/s", "µs/call", "writes", "target", "met"):
        table.add_column(column, justify="center" if column == "met" else "right")
    for backend, database in (("sqlite", sqlite_database()), ("postgresql", postgres_database(args.postgres))):
        with database as url, rolloutdb.connect(url) as store:
            commits = 0

            @event.listens_for(store.engine, "commit")
            def count(_connection) -> None:
                nonlocal commits
                commits += 1

            cases = [("coalesced (0.25 s)", 0.25, False), ("coalesced, with a log message", 0.25, True),
                     ("written every call", 0.0, False)]
            for label, interval, with_message in cases:
                with console.status(f"{backend}: {label}"):
                    with store.jobs.start(f"bench-{label}", write_interval=interval) as job:
                        before = commits
                        calls, elapsed = loop(job, args.seconds, with_message)
                        writes = commits - before
                if interval:  # the reference writes every call: no target
                    most = 1 + math.floor(elapsed / interval)
                    target, ok = f"<= {most:,}", writes <= most
                else:
                    target, ok = "-", None
                table.add_row(backend, label, f"{calls / elapsed:,.0f}", f"{elapsed / calls * 1e6:,.1f}",
                              f"{writes:,}", target, met(ok))
    console.print(table)


if __name__ == "__main__":
    main()
