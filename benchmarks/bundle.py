"""Bundles at scale: rows/s of ``store.export_bundle`` and ``store.import_bundle``, on a SQLite file and on PostgreSQL.

    python benchmarks/bundle.py [--rollouts 10000] [--turns 10] [--rounds 3] [--backends sqlite,postgresql]
                                [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

A fresh database is filled as ``benchmarks/export.py`` fills it (``--rollouts`` finished rollouts of ``--turns``
turns each, bulk inserts); its rollouts are bundled into a tar, and the bundle is imported, in rounds, into a fresh
database of the same backend (the first import of each round: every row new), then once more into it (every row
present already: what an idempotent import costs). Rows are every row of the bundle (rollouts, attempts, turns,
history, ...). The reference, in the same round: the same rows, already in memory, bulk-inserted into a fresh
database in one transaction (the store's fastest insert path, COPY on PostgreSQL) — what an import costs beyond
writing the rows. Target: import at ≥ 20,000 rows/s on both backends. Medians over the rounds; the load average
is printed, since timing on a busy machine is noisy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from statistics import median

from rich.console import Console
from rich.table import Table

import rolloutdb
from rolloutdb.schema import metadata
from rolloutdb.store._bulk import bulk_insert
from rolloutdb.store.bundles import TABLES
from common import add_postgres_option, met, postgres_database, sqlite_database
from export import PROJECT, fill

TARGET_IMPORT_RATE = 20_000  # rows/s
console = Console()


def measure(backend: str, database, args: argparse.Namespace, table: Table) -> None:
    results: dict[str, list[float]] = {"export": [], "import": [], "again": [], "reference": []}
    with database() as source_url, tempfile.TemporaryDirectory() as directory:
        with rolloutdb.connect(source_url, project=PROJECT) as store:
            fill(store, args.rollouts, args.turns)
            for round_ in range(args.rounds):
                path = os.path.join(directory, f"b{round_}.tar")
                started = time.perf_counter()
                rows = sum(store.export_bundle(out=path).rows.values())
                results["export"].append(rows / (time.perf_counter() - started))
                with database() as target_url, rolloutdb.connect(target_url, project=PROJECT) as target:
                    for kind in ("import", "again"):
                        started = time.perf_counter()
                        target.import_bundle(path)
                        results[kind].append(rows / (time.perf_counter() - started))
                os.remove(path)
                with database() as target_url, rolloutdb.connect(target_url, project=PROJECT) as target:
                    results["reference"].append(rows / insert_reference(store, target))
    rate = {kind: median(found) for kind, found in results.items()}
    table.add_row(backend, f"{rows:,}", f"{rate['export']:,.0f}",
                  f"{rate['import']:,.0f} {met(rate['import'] >= TARGET_IMPORT_RATE)}", f"{rate['again']:,.0f}",
                  f"{rate['reference']:,.0f}", f"{rate['import'] / rate['reference']:.2f}×")


def insert_reference(source: rolloutdb.Store, target: rolloutdb.Store) -> float:
    """Seconds to bulk-insert the source project's rows of the bundled tables, read into memory first, into the
    target's project in one transaction."""
    with source.engine.connect() as connection:
        found = {table.name: [{**row, "project_id": target.project_id} for row in connection.execute(
            table.select().where(table.c.project_id == source.project_id)).mappings()] for table in TABLES}
    started = time.perf_counter()
    with target.engine.begin() as connection:
        for table in TABLES:
            rows = found[table.name]
            if table is metadata.tables["status_changes"]:
                rows = [{key: value for key, value in row.items() if key != "seq"} for row in rows]
            bulk_insert(connection, table, rows)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    add_postgres_option(parser)
    args = parser.parse_args()
    table = Table(title=f"Bundle of {args.rollouts:,} rollouts × {args.turns} turns, median of {args.rounds}")
    for column in ("backend", "rows", "export rows/s", f"import rows/s (≥ {TARGET_IMPORT_RATE:,})",
                   "import again rows/s", "bulk insert rows/s", "import / bulk insert"):
        table.add_column(column, justify="right")
    for backend in args.backends.split(","):
        database = sqlite_database if backend == "sqlite" else lambda: postgres_database(args.postgres)
        measure(backend, database, args, table)
    console.print(table)
    console.print(f"load average: {' '.join(f'{load:.1f}' for load in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
