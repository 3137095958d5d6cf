"""Server workload: RolloutDB's REST server (`rolloutdb serve`) and remote client against references measured in
the same run on this machine.

    python benchmarks/server_workload.py [--only ingest,cycle,memory] [--backends sqlite,postgresql]
                                         [--ingest 4000] [--rollouts 800] [--workers 8] [--spans 10]
                                         [--postgres-server-processes 1,CORES] [--memory-spans 200000]
                                         [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Sections (one function each; ``--only`` picks some):
- ingest: span ingest through HTTP (the remote client's ``spans.add_many``, batches of 500, to a server in a
  subprocess) vs the same ingest straight into the store in this process, on the same database; target >= 0.5
  on SQLite and on PostgreSQL. The sides take many short turns (``INGEST_ROUNDS`` of ``--ingest`` spans each):
  with five turns of 20,000 the ratio of one run ranged 0.36-0.55 on this machine, as the machine's pace drifted
  between turns;
- cycle: the rollout cycle (enqueue N; W worker processes dequeue, add spans in one call, finish the attempt)
  through the remote client and `rolloutdb serve` vs Agent Lightning 0.3's own LightningStoreServer +
  LightningStoreClient over its InMemoryLightningStore doing the same with its own client; target >= 2 on SQLite
  and on PostgreSQL; p50 and p99 of one dequeue (a call that claimed rollouts) are shown for each. On PostgreSQL the
  server runs as one process and as one per core (`serve --workers`, as the README advises there; each count of
  ``--postgres-server-processes`` is a row): one process's Python runs on one core at a time, and in the cycle the
  rest of the machine waited on it (a third of the two cores idle), while the in-memory reference can only be one
  process. SQLite: one process (its writes queue on one writer anyway);
- memory: a server's resident memory while it ingests N spans (batches of 500 through the remote client) on
  SQLite: its growth per 100k spans after a warm-up and whether it is flat; target < 50 MB over 1M spans, measured
  with ``--memory-spans 1000000``, else extrapolated from the growth per 100k (and said so).
Each target is marked met (✓) or not (✗); the exit code is 0 either way. The sides take turns, round after round,
and a ratio is the median of the rounds' own ratios (see queue_workload.py): the machine is a shared virtual one,
so the load average is printed too. Each side's server runs in a process of its own and starts afresh each round
of the cycle (the in-memory store starts empty); worker processes are started and warmed up once, before timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import median, quantiles

import psutil
from rich.console import Console
from rich.table import Table

import rolloutdb
from common import add_postgres_option, met, postgres_database, sqlite_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from server.servers import free_port, serve_command, server_environment, stop, wait_until_answering  # noqa: E402
from queue_workload import PAIRED_CAPTION, in_turns, ingest_with_store, median_ratio, span_fields, timed

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # agentlightning imports litellm: stay offline

TARGET_INGEST = 0.5  # HTTP / straight into the store
TARGET_CYCLE = 2.0  # RolloutDB over HTTP / Agent Lightning's server and client over its in-memory store
TARGET_MEMORY_MB = 50.0  # growth over 1M spans
MEMORY_SPANS_TARGET = 1_000_000
INGEST_BATCH = 500
INGEST_ROUNDS = 25
CYCLE_ROUNDS = 3
AGL_HEALTH = "/v1/agl/health"

console = Console()


# -- servers ----------------------------------------------------------------------------------------

def fail(message: str) -> None:
    raise RuntimeError(message)


@contextlib.contextmanager
def server_process(command: list[str], port: int, health: str) -> Iterator[subprocess.Popen]:
    """``command`` running until the block ends, once ``health`` answers on ``port``."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=server_environment())
        try:
            wait_until_answering(process, f"http://127.0.0.1:{port}{health}",
                                 lambda: (log.seek(0), log.read().decode(errors="replace")[-2000:])[1], fail,
                                 within=120)
            yield process
        finally:
            stop(process)


@contextlib.contextmanager
def rolloutdb_server(url: str, project: str, processes: int = 1) -> Iterator[tuple[str, subprocess.Popen]]:
    """`rolloutdb serve` on ``url`` (``processes`` of it, `--workers`): its base URL and (first) process."""
    port = free_port()
    command = serve_command(url, project, "--port", str(port), "--workers", str(processes))
    with server_process(command, port, "/healthz") as process:
        yield f"http://127.0.0.1:{port}", process


AGL_SERVER = """
import asyncio, sys
from agentlightning.store.client_server import LightningStoreServer
from agentlightning.store.memory import InMemoryLightningStore
asyncio.run(LightningStoreServer(InMemoryLightningStore(), host="127.0.0.1", port=int(sys.argv[1])).run_forever())
"""


@contextlib.contextmanager
def agl_server() -> Iterator[str]:
    """Agent Lightning's LightningStoreServer over a fresh InMemoryLightningStore: its base URL."""
    port = free_port()
    with server_process([sys.executable, "-c", AGL_SERVER, str(port)], port, AGL_HEALTH):
        yield f"http://127.0.0.1:{port}"


def load_average() -> str:
    return ", ".join(f"{load:.2f}" for load in os.getloadavg()) + f" (1, 5, 15 min; {os.cpu_count()} cores)"


# -- span ingest ------------------------------------------------------------------------------------

def ingest(args: argparse.Namespace) -> list[Table]:
    table = Table(title=f"Span ingest: {INGEST_ROUNDS} turns of {args.ingest:,} spans in batches of {INGEST_BATCH}, "
                        "through HTTP vs straight into the store", caption=PAIRED_CAPTION)
    for column in ("backend", "HTTP spans/s", "store spans/s", "ratio", "target", "met"):
        table.add_column(column, justify="center" if column == "met" else "right")
    for backend, database in databases(args).items():
        project = f"ingest-{uuid.uuid4().hex[:6]}"
        with database() as url, rolloutdb.connect(url, project=project) as local, \
                rolloutdb_server(url, project) as (base, _), rolloutdb.connect(base, project=project) as remote:
            # Both sides write to one database: neither pays alone for growing it.
            seconds = in_turns({"http": lambda: ingest_with_store(remote, args.ingest, INGEST_BATCH),
                                "store": lambda: ingest_with_store(local, args.ingest, INGEST_BATCH)},
                               INGEST_ROUNDS, f"{backend}: span ingest")
        ratio = median_ratio(seconds["store"], seconds["http"])
        table.add_row(backend, f"{args.ingest / median(seconds['http']):,.0f}",
                      f"{args.ingest / median(seconds['store']):,.0f}", f"{ratio:.2f}", f">= {TARGET_INGEST:.1f}",
                      met(ratio >= TARGET_INGEST))
    return [table]


# -- the rollout cycle ------------------------------------------------------------------------------

def warm_up(_: int) -> None:
    """Load what the workers use before anything is timed, and stay busy a moment, so that each of the pool's
    processes gets one of these."""
    importlib.import_module("agentlightning.store.client_server")
    time.sleep(1.0)


def rolloutdb_worker(base: str, project: str, worker: int, spans: int, batch: int) -> list[float]:
    """Claim, add spans, finish, until the queue is empty: the seconds each dequeue that claimed something took."""
    dequeues = []
    with rolloutdb.connect(base, project=project) as store:
        while True:
            started = time.perf_counter()
            claims = store.rollouts.dequeue_many(batch, worker_id=f"w{worker}")
            if not claims:
                return dequeues
            dequeues.append(time.perf_counter() - started)
            store.spans.add_many([span_fields(c.rollout.id, c.attempt.id, n + 1) for c in claims for n in range(spans)])
            for claim in claims:
                store.attempts.update(claim.rollout.id, claim.attempt.id, status="succeeded")


def agl_span(rollout_id: str, attempt_id: str, n: int):
    from agentlightning.types import Span

    return Span.model_validate({**span_fields(rollout_id, attempt_id, n), "events": [], "links": [],
                                "start_time": None, "end_time": None, "context": None, "parent": None,
                                "resource": {"attributes": {}, "schema_url": ""}})


def agl_worker(base: str, worker: int, spans: int, batch: int) -> list[float]:
    """``rolloutdb_worker`` through Agent Lightning's own client."""
    from agentlightning.store.client_server import LightningStoreClient

    async def run() -> list[float]:
        dequeues = []
        client = LightningStoreClient(base)
        try:
            while True:
                started = time.perf_counter()
                claims = await client.dequeue_many_rollouts(limit=batch, worker_id=f"w{worker}")
                if not claims:
                    return dequeues
                dequeues.append(time.perf_counter() - started)
                await client.add_many_spans([agl_span(c.rollout_id, c.attempt.attempt_id, n + 1)
                                             for c in claims for n in range(spans)])
                for claim in claims:
                    await client.update_attempt(claim.rollout_id, claim.attempt.attempt_id, status="succeeded")
        finally:
            await client.close()

    return asyncio.run(run())


def cycle(args: argparse.Namespace) -> list[Table]:
    table = Table(title=f"Rollout cycle: {args.rollouts:,} rollouts, {args.workers} worker processes, "
                        f"{args.spans} spans each, {args.batch} claimed per dequeue", caption=PAIRED_CAPTION)
    for column in ("server", "rollouts/s", "dequeue p50 ms", "dequeue p99 ms", "ratio vs Agent Lightning", "target",
                   "met"):
        table.add_column(column, justify="center" if column == "met" else "right")
    dequeues: dict[str, list[float]] = {}
    inputs = [{"task": n} for n in range(args.rollouts)]  # each rollout's input

    def run_workers(side: str, work: Callable[[int], tuple]) -> None:
        futures = [pool.submit(*work(worker)) for worker in range(args.workers)]
        dequeues.setdefault(side, []).extend(seconds for future in futures for seconds in future.result())

    def agent_lightning() -> float:
        from agentlightning.store.client_server import LightningStoreClient
        from agentlightning.types import EnqueueRolloutRequest

        async def enqueue(base: str) -> None:
            client = LightningStoreClient(base)
            await client.enqueue_many_rollouts([EnqueueRolloutRequest(input=value) for value in inputs])
            await client.close()

        async def finished(base: str) -> int:
            client = LightningStoreClient(base)
            found = await client.query_rollouts(status_in=["succeeded"])
            await client.close()
            return len(found)

        with agl_server() as base:
            elapsed = timed(lambda: (asyncio.run(enqueue(base)), run_workers(
                "agl", lambda worker: (agl_worker, base, worker, args.spans, args.batch))))
            assert asyncio.run(finished(base)) == args.rollouts, "the cycle must finish every rollout"
        return elapsed

    def ours(database: Callable[[], contextlib.AbstractContextManager[str]], side: str,
             processes: int) -> Callable[[], float]:
        def run() -> float:
            project = f"cycle-{uuid.uuid4().hex[:6]}"
            with database() as url, rolloutdb_server(url, project, processes) as (base, _), \
                    rolloutdb.connect(base, project=project) as store:
                elapsed = timed(lambda: (store.rollouts.enqueue_many([{"input": value} for value in inputs]), run_workers(
                    side, lambda worker: (rolloutdb_worker, base, project, worker, args.spans, args.batch))))
                assert store.rollouts.count(status="succeeded") == args.rollouts, "the cycle must finish every rollout"
            return elapsed
        return run

    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(warm_up, range(args.workers)))
        sides = {"agl": agent_lightning}
        for name, database in databases(args).items():
            for processes in args.postgres_server_processes if name == "postgresql" else [1]:
                side = name if processes == 1 else f"{name}, {processes} processes"
                sides[side] = ours(database, side, processes)
        seconds = in_turns(sides, CYCLE_ROUNDS, "rollout cycle")
    for side, times in seconds.items():
        ratio = median_ratio(seconds["agl"], times)
        cuts = quantiles(dequeues[side], n=100, method="inclusive")
        reference = side == "agl"
        table.add_row("Agent Lightning (in-memory)" if reference else f"RolloutDB {side}",
                      f"{args.rollouts / median(times):,.0f}", f"{cuts[49] * 1e3:.1f}", f"{cuts[98] * 1e3:.1f}",
                      f"{ratio:.2f}", "-" if reference else f">= {TARGET_CYCLE:.0f}",
                      met(None if reference else ratio >= TARGET_CYCLE))
    return [table]


# -- server memory ----------------------------------------------------------------------------------

def memory(args: argparse.Namespace) -> list[Table]:
    """Resident memory of a server ingesting ``args.memory_spans`` spans: sampled every tenth of them; the first
    tenth warms the server up (imports, caches, connection pool, allocator arenas) and is not counted."""
    total = args.memory_spans
    step = max(total // 10 // INGEST_BATCH, 1) * INGEST_BATCH
    samples: list[tuple[int, float]] = []  # (spans ingested, RSS in MB)
    project = f"memory-{uuid.uuid4().hex[:6]}"
    with sqlite_database() as url, rolloutdb_server(url, project) as (base, process), \
            rolloutdb.connect(base, project=project) as store:
        server = psutil.Process(process.pid)
        sent = 0
        samples.append((0, server.memory_info().rss / 2 ** 20))  # started, migrated, nothing sent
        with console.status("memory: ingesting") as status:
            while sent < total:
                claim = store.rollouts.start({"memory": sent})  # a rollout per sample's worth, as a training run has
                for _ in range(step // INGEST_BATCH):
                    store.spans.add_many([span_fields(claim.rollout.id, claim.attempt.id, sent + n + 1)
                                          for n in range(INGEST_BATCH)])
                    sent += INGEST_BATCH
                samples.append((sent, server.memory_info().rss / 2 ** 20))
                status.update(f"memory: {sent:,} of {total:,} spans, server RSS {samples[-1][1]:,.1f} MB")
    started_rss = samples.pop(0)[1]
    (warm_spans, warm_rss), (last_spans, last_rss) = samples[0], samples[-1]
    counted = last_spans - warm_spans
    per_100k = (last_rss - warm_rss) / counted * 100_000 if counted else 0.0
    middle = samples[len(samples) // 2]
    first_half = (middle[1] - warm_rss) / max(middle[0] - warm_spans, 1) * 100_000
    second_half = (last_rss - middle[1]) / max(last_spans - middle[0], 1) * 100_000
    measured = last_spans >= MEMORY_SPANS_TARGET
    over_1m = (last_rss - warm_rss) if measured else per_100k * 10
    table = Table(title=f"Server memory: {total:,} spans ingested through HTTP (SQLite), RSS every {step:,}",
                  caption="growth counted from the first sample (the warm-up); flat: the second half grew no faster "
                          "than 1 MB per 100k spans")
    for column in ("RSS idle MB", "RSS after warm-up MB", "RSS at end MB", "growth per 100k MB", "first half per 100k",
                   "second half per 100k", "flat", "growth over 1M MB", "target", "met"):
        table.add_column(column, justify="right")
    table.add_row(f"{started_rss:,.1f}", f"{warm_rss:,.1f}", f"{last_rss:,.1f}", f"{per_100k:.2f}", f"{first_half:.2f}",
                  f"{second_half:.2f}", "yes" if second_half <= 1.0 else "no",
                  f"{over_1m:.1f}" + ("" if measured else " (extrapolated)"), f"< {TARGET_MEMORY_MB:.0f}",
                  met(over_1m < TARGET_MEMORY_MB))
    samples_table = Table(title="Server RSS by spans ingested")
    samples_table.add_column("spans", justify="right")
    samples_table.add_column("RSS MB", justify="right")
    for spans, rss in samples:
        samples_table.add_row(f"{spans:,}", f"{rss:,.1f}")
    return [samples_table, table]


# -- report -----------------------------------------------------------------------------------------

SECTIONS: dict[str, Callable[[argparse.Namespace], list[Table]]] = {"ingest": ingest, "cycle": cycle,
                                                                     "memory": memory}


BACKENDS = ("sqlite", "postgresql")


def databases(args: argparse.Namespace) -> dict[str, Callable[[], contextlib.AbstractContextManager[str]]]:
    made = {"sqlite": sqlite_database, "postgresql": lambda: postgres_database(args.postgres)}
    return {name: made[name] for name in args.backends}


def chosen_names(parser: argparse.ArgumentParser, kind: str, given: str, known) -> list[str]:
    """The names of a comma-separated option, each one of ``known`` (else the parser's usage error)."""
    chosen = [name.strip() for name in given.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown {kind}(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    return chosen


def server_process_counts(parser: argparse.ArgumentParser, given: str) -> list[int]:
    """The distinct positive numbers of a comma-separated option, in order (else the parser's usage error)."""
    try:
        counts = [int(part) for part in given.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        parser.error(f"--postgres-server-processes takes positive whole numbers, comma-separated; got {given!r}")
    return list(dict.fromkeys(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--ingest", type=int, default=4000, help="spans of one side's turn in the ingest comparison")
    parser.add_argument("--rollouts", type=int, default=800, help="rollouts in the cycle")
    parser.add_argument("--workers", type=int, default=8, help="worker processes in the cycle")
    parser.add_argument("--spans", type=int, default=10, help="spans per rollout in the cycle")
    parser.add_argument("--batch", type=int, default=1, help="rollouts claimed per dequeue in the cycle")
    parser.add_argument("--postgres-server-processes", default=f"1,{os.cpu_count()}",
                        help="comma-separated numbers of server processes (serve --workers) of the cycle on "
                             "PostgreSQL, a row each (default: one, and one per core)")
    parser.add_argument("--memory-spans", type=int, default=200_000,
                        help=f"spans the memory section ingests ({MEMORY_SPANS_TARGET:,} to measure the target "
                             "rather than extrapolate it)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated backends of the ingest and the cycle, of {', '.join(BACKENDS)} "
                             "(default: both)")
    add_postgres_option(parser)
    args = parser.parse_args()
    chosen = chosen_names(parser, "section", args.only, SECTIONS)
    args.backends = chosen_names(parser, "backend", args.backends, BACKENDS)
    args.postgres_server_processes = server_process_counts(parser, args.postgres_server_processes)
    console.print(f"load average at start: {load_average()}")
    for name in chosen:
        for table in SECTIONS[name](args):
            console.print(table)
    console.print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
