"""What checking an API token on every request costs, on SQLite and PostgreSQL.

    python benchmarks/token_overhead.py [--rounds 10] [--requests 200]
                                        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Two `rolloutdb serve` processes on one database: one with `--auth` (each request's token read from the database,
no cache, so that revoking takes effect at once), one without, the reference. A client with keep-alive
connections fetches one run by id from each in turn (rounds alternate which goes first), and the medians of the
per-request times are compared.

Target: a request with a token takes at most 1.5× one without (median). It is marked met (✓) or not (✗); the
exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

import rolloutdb
from common import add_postgres_option, met, postgres_database, sqlite_database

console = Console()
TARGET = 1.5
SOURCE = Path(rolloutdb.__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(url: str, *options: str) -> Iterator[str]:
    port = free_port()
    environment = {**os.environ,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "rolloutdb.cli", "serve", "--url", url, "--project", "bench",
                                "--port", str(port), *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=environment)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"the server on {url} did not start")
        yield base
    finally:
        process.terminate()
        process.wait(15)


def timed(client: httpx.Client, path: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        began = time.perf_counter()
        client.get(path).raise_for_status()
        times.append(time.perf_counter() - began)
    return times


def measure(url: str, rounds: int, requests: int) -> tuple[float, float]:
    with rolloutdb.connect(url, project="bench") as store:
        run_id = store.runs.create(name="bench").id
        secret = store.tokens.create("reader").secret
    with server(url, "--auth") as with_auth, server(url) as without:
        clients = {"auth": httpx.Client(base_url=with_auth, headers={"Authorization": f"Bearer {secret}"}),
                   "none": httpx.Client(base_url=without)}
        times: dict[str, list[float]] = {"auth": [], "none": []}
        path = f"/api/v1/runs/{run_id}"
        for side in clients:  # warm up: connections, caches, the token's last_used_at
            timed(clients[side], path, 20)
        for round_number in range(rounds):
            for side in (("auth", "none") if round_number % 2 == 0 else ("none", "auth")):
                times[side] += timed(clients[side], path, requests)
        for client in clients.values():
            client.close()
    return statistics.median(times["auth"]), statistics.median(times["none"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    add_postgres_option(parser)
    args = parser.parse_args()
    table = Table(title=f"GET one run: with an API token vs without ({args.rounds} × {args.requests} requests each)",
                  caption=f"target: median with a token ≤ {TARGET}× without")
    for column in ("backend", "with token (ms, p50)", "without (ms, p50)", "ratio", "target"):
        table.add_column(column)
    for backend, database in (("sqlite", sqlite_database()), ("postgresql", postgres_database(args.postgres))):
        with database as url:
            auth, none = measure(url, args.rounds, args.requests)
        ratio = auth / none
        table.add_row(backend, f"{auth * 1000:.2f}", f"{none * 1000:.2f}", f"{ratio:.2f}×", met(ratio <= TARGET))
    console.print(table)


if __name__ == "__main__":
    main()
