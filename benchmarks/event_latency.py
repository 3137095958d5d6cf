"""Latency of a live event: from ``job.checkpoint()`` in one process to a subscriber of the server's event
stream (``GET /api/v1/events``, Server-Sent Events) receiving it, on SQLite and PostgreSQL.

    python benchmarks/event_latency.py [--events 200] [--rounds 2] [--postgres postgresql://...]

The job's process writes to the database directly (not through the server): the server learns of the event as
any other process's (PostgreSQL: NOTIFY, then a read; SQLite: its follower sees the newest id move). Each
checkpoint's log message carries the monotonic clock (shared by the processes of one machine) when it was
called; the subscriber subtracts it from the time the event arrived. The reference, in the same run with sides
taking turns, is a follower on the database itself (``store.events.follow``) in the subscriber's process.

Targets (issue 15): p99 under 100 ms on PostgreSQL, under 500 ms on SQLite, through the server. Marked met (✓)
or not (✗); the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from rich.table import Table

import rolloutdb
from common import add_postgres_option, met, postgres_database, sqlite_database
from queue_workload import console, in_turns

TARGET_P99_MS = {"sqlite": 500.0, "postgresql": 100.0}
SOURCE = Path(rolloutdb.__file__).resolve().parents[1]


def checkpoints(url: str, project: str, name: str, count: int, pace: float, go: multiprocessing.Event) -> None:
    """The job's process: ``count`` checkpoints, ``pace`` seconds apart, each stamped with when it was called."""
    with rolloutdb.connect(url, project=project) as store, store.jobs.start(name, write_interval=0.0) as job:
        go.wait(60)
        for i in range(count):
            job.checkpoint(state={"i": i}, message=f"{time.monotonic():.6f}")
            time.sleep(pace)


@contextlib.contextmanager
def server(url: str, project: str) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE),
                                                                            os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "rolloutdb.cli", "serve", "--url", url, "--project", project,
                                "--port", str(port)], env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(30)


def messages_through_the_server(base: str, project: str, run: str) -> Iterator[tuple[str, float]]:
    with httpx.Client(timeout=httpx.Timeout(120, connect=10)) as client, client.stream(
            "GET", base + "/api/v1/events", params={"topic": ["log"], "run": run},
            headers={"RolloutDB-Project": project}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])["data"]["message"], time.monotonic()


def messages_on_the_database(url: str, project: str, run: str) -> Iterator[tuple[str, float]]:
    with rolloutdb.connect(url, project=project) as store:
        for event in store.events.follow(topics=["log"], run=run):
            yield event.data["message"], time.monotonic()


def latencies(url: str, project: str, side: str, base: str, count: int, pace: float) -> list[float]:
    """Seconds from each checkpoint to its event at the subscriber, for one job of ``count`` checkpoints."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(url, project=project) as store:
        store.runs.create(name=name, kind="job")  # so that the subscriber can name it before it starts
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    writer = context.Process(target=checkpoints, args=(url, project, name, count, pace, go))
    writer.start()
    messages = (messages_through_the_server(base, project, name) if side == "server"
                else messages_on_the_database(url, project, name))
    seen: list[float] = []
    try:
        for message, arrived in messages:
            if not go.is_set():
                go.set()  # the subscriber is listening: checkpoints may begin
            try:
                seen.append(arrived - float(message))
            except ValueError:
                if message == "completed":
                    break
    finally:
        go.set()
        writer.join(60)
    return seen


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200, help="checkpoints per round")
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between checkpoints")
    parser.add_argument("--rounds", type=int, default=2)
    add_postgres_option(parser)
    args = parser.parse_args()
    table = Table(title=f"checkpoint in another process → subscriber ({args.events} events x {args.rounds} rounds)",
                  caption="target: p99 through the server under 100 ms on PostgreSQL, 500 ms on SQLite")
    for column in ("backend", "subscriber", "p50 ms", "p99 ms", "max ms", "target p99 ms", "met"):
        table.add_column(column, justify="left" if column in ("backend", "subscriber") else "right")
    for backend, database in (("sqlite", sqlite_database()), ("postgresql", postgres_database(args.postgres))):
        with database as url:
            project = "bench"
            rolloutdb.connect(url, project=project).close()
            with server(url, project) as base:
                gathered: dict[str, list[float]] = {"server": [], "database": []}

                def side(which: str):
                    def run() -> float:
                        gathered[which] += latencies(url, project, which, base, args.events, args.pace)
                        return 0.0
                    return run

                in_turns({"server": side("server"), "database": side("database")}, args.rounds,
                         f"event latency on {backend}")
            for which, label in (("server", "SSE through the server"), ("database", "follow on the database")):
                values = gathered[which]
                p99 = percentile(values, 0.99) * 1000
                target = TARGET_P99_MS[backend] if which == "server" else None
                table.add_row(backend, label, f"{percentile(values, 0.5) * 1000:.1f}", f"{p99:.1f}",
                              f"{max(values) * 1000:.1f}", "-" if target is None else f"{target:g}",
                              met(None if target is None else p99 < target))
    console.print(table)


if __name__ == "__main__":
    main()
