"""Agent Lightning's two micro-benchmark flows through its own LightningStore API: RolloutDBLightningStore
(SQLite file, PostgreSQL) against Agent Lightning's InMemoryLightningStore, in the same run, sides taking
turns, each with concurrent coroutines in one process.

rollout: start_rollout, 4 x add_span, update_attempt(succeeded).
dequeue: (rollouts enqueued up front with enqueue_many_rollouts, not timed) dequeue_rollout,
get_many_span_sequence_ids(4), add_many_spans(4 spans of 32 attributes), update_attempt(succeeded).

With --per-call: the rollout flow one at a time (one coroutine), and what each side spends on it: CPU per
flow (the whole process, every thread: robust to a busy machine, unlike rates) and each call's median time; then
the statements (and transactions) each call of both flows sends the database.

Usage: .venv/bin/python benchmarks/agentlightning_flows.py [--tasks 400] [--concurrency 8] [--rounds 3] [--per-call]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from statistics import median

from rich.table import Table
from sqlalchemy import event
from sqlalchemy.pool import Pool

from common import add_postgres_option, met, postgres_database, sqlite_database
from queue_workload import console, in_turns, median_ratio

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # agentlightning imports litellm: stay offline

from agentlightning.store.base import LightningStore  # noqa: E402
from agentlightning.store.memory import InMemoryLightningStore  # noqa: E402
from agentlightning.types import EnqueueRolloutRequest, OtelResource, Span, SpanContext, TraceStatus  # noqa: E402

from rolloutdb.integrations.agentlightning import RolloutDBLightningStore  # noqa: E402

SPANS_PER_ATTEMPT = 4
TARGETS = {"sqlite": 1.5, "postgresql": 1.0}  # times the in-memory store's rate (issue 14)


def make_span(rollout_id: str, attempt_id: str, sequence_id: int, attributes: int) -> Span:
    trace_id, span_id = f"{sequence_id:032x}", f"{sequence_id:016x}"
    return Span(rollout_id=rollout_id, attempt_id=attempt_id, sequence_id=sequence_id, trace_id=trace_id,
                span_id=span_id, parent_id=None, name=f"micro-span-{sequence_id}", status=TraceStatus(status_code="OK"),
                attributes={f"attribute.{n}": "v" * (5 + 37 * n % 296) for n in range(attributes)},
                events=[], links=[], start_time=None, end_time=None,
                context=SpanContext(trace_id=trace_id, span_id=span_id, is_remote=False, trace_state={}),
                parent=None, resource=OtelResource(attributes={}, schema_url=""))


async def rollout_flow(store: LightningStore, task: int) -> None:
    attempted = await store.start_rollout(input={"task": task})
    for sequence_id in range(1, SPANS_PER_ATTEMPT + 1):
        await store.add_span(make_span(attempted.rollout_id, attempted.attempt.attempt_id, sequence_id, 1))
    await store.update_attempt(attempted.rollout_id, attempted.attempt.attempt_id, status="succeeded")


async def dequeue_flow(store: LightningStore, task: int) -> None:
    attempted = await store.dequeue_rollout(worker_id=f"worker-{task % 8}")
    assert attempted is not None, "the queue ran dry"
    pair = (attempted.rollout_id, attempted.attempt.attempt_id)
    sequence_ids = await store.get_many_span_sequence_ids([pair] * SPANS_PER_ATTEMPT)
    stored = await store.add_many_spans([make_span(*pair, sequence_id, 32) for sequence_id in sequence_ids])
    assert len(stored) == SPANS_PER_ATTEMPT
    await store.update_attempt(*pair, status="succeeded")


async def timed_flows(store: LightningStore, flow: str, tasks: int, concurrency: int) -> float:
    """Seconds for ``tasks`` runs of the flow, ``concurrency`` at a time."""
    if flow == "dequeue":
        await store.enqueue_many_rollouts([EnqueueRolloutRequest(input={"task": n}) for n in range(tasks)])
    run = rollout_flow if flow == "rollout" else dequeue_flow
    remaining = iter(range(tasks))

    async def worker() -> None:
        for task in remaining:
            await run(store, task)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def timed_calls(store: LightningStore, tasks: int) -> tuple[float, dict[str, list[float]]]:
    """The rollout flow ``tasks`` times, one at a time: CPU seconds per flow (the whole process's), and the
    seconds each call took, by call."""
    calls: dict[str, list[float]] = defaultdict(list)

    async def timed(call: str, awaitable):
        started = time.perf_counter()
        result = await awaitable
        calls[call].append(time.perf_counter() - started)
        return result

    cpu = time.process_time()
    for task in range(tasks):
        attempted = await timed("start_rollout", store.start_rollout(input={"task": task}))
        pair = (attempted.rollout_id, attempted.attempt.attempt_id)
        for sequence_id in range(1, SPANS_PER_ATTEMPT + 1):
            await timed("add_span", store.add_span(make_span(*pair, sequence_id, 1)))
        await timed("update_attempt", store.update_attempt(*pair, status="succeeded"))
    return (time.process_time() - cpu) / tasks, calls


class StatementCounter:
    """The statements a store sends its database, from the connections it opens while this is entered: SQLite's
    statements run (its trace callback: BEGIN and COMMIT included, each row of an executemany once), PostgreSQL's
    sent through psycopg's cursors (an executemany once; its BEGIN and COMMIT are the transactions counted apart,
    a round trip each)."""

    def __init__(self) -> None:
        self.statements = self.transactions = 0

    def __enter__(self) -> StatementCounter:
        event.listen(Pool, "connect", self._connected)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(Pool, "connect", self._connected)

    def count_commits(self, engine) -> None:
        event.listen(engine, "commit", self._committed)

    def _committed(self, _connection) -> None:
        self.transactions += 1

    def _counted(self, *_: object) -> None:
        self.statements += 1

    def _connected(self, driver_connection, _record) -> None:
        if isinstance(driver_connection, sqlite3.Connection):
            driver_connection.set_trace_callback(self._counted)
            return
        counter = self

        class CountingCursor(type(driver_connection.cursor())):
            def execute(self, *args, **kwargs):
                counter._counted()
                return super().execute(*args, **kwargs)

            def executemany(self, *args, **kwargs):
                counter._counted()
                return super().executemany(*args, **kwargs)

            def copy(self, *args, **kwargs):
                counter._counted()
                return super().copy(*args, **kwargs)

        driver_connection.cursor_factory = CountingCursor


def statements_per_call(url: str, flows: int = 5) -> dict[str, tuple[float, float]]:
    """Statements and transactions of each Agent Lightning call of both flows (medians over ``flows`` runs)."""
    counts: dict[str, list[tuple[int, int]]] = defaultdict(list)
    with StatementCounter() as counter:
        store = RolloutDBLightningStore(url, project=f"count-{uuid.uuid4().hex[:8]}")
        counter.count_commits(store.store.engine)

        async def counted(call: str, awaitable):
            before = counter.statements, counter.transactions
            result = await awaitable
            counts[call].append((counter.statements - before[0], counter.transactions - before[1]))
            return result

        async def flows_counted() -> None:
            await store.enqueue_many_rollouts([EnqueueRolloutRequest(input={"task": n}) for n in range(flows + 1)])
            for task in range(flows + 1):  # the first of each is a warm-up: connections, first statements
                attempted = await counted("start_rollout", store.start_rollout(input={"task": task}))
                pair = (attempted.rollout_id, attempted.attempt.attempt_id)
                for sequence_id in range(1, SPANS_PER_ATTEMPT + 1):
                    await counted("add_span", store.add_span(make_span(*pair, sequence_id, 1)))
                await counted("update_attempt", store.update_attempt(*pair, status="succeeded"))
                attempted = await counted("dequeue_rollout", store.dequeue_rollout(worker_id="worker-0"))
                pair = (attempted.rollout_id, attempted.attempt.attempt_id)
                sequence_ids = await counted("get_many_span_sequence_ids",
                                             store.get_many_span_sequence_ids([pair] * SPANS_PER_ATTEMPT))
                await counted("add_many_spans", store.add_many_spans([make_span(*pair, sequence_id, 32)
                                                                      for sequence_id in sequence_ids]))
                await counted("update_attempt", store.update_attempt(*pair, status="succeeded"))

        try:
            asyncio.run(flows_counted())
        finally:
            store.store.close()
    return {call: (median(s for s, _ in runs[1:]), median(t for _, t in runs[1:])) for call, runs in counts.items()}


def per_call(args: argparse.Namespace) -> None:
    """``timed_calls`` for each backend and the in-memory store, sides taking turns; prints medians."""
    columns = ("start_rollout", "add_span", "update_attempt")
    table = Table(title=f"Agent Lightning rollout flow, one at a time: {args.tasks} per run, {args.rounds} rounds",
                  caption="CPU: the whole process's per flow; calls: median wall time of each (ms)")
    for column in ("store", "CPU ms/flow", *(f"{call} ms" for call in columns)):
        table.add_column(column, justify="right")
    results: dict[str, list[tuple[float, dict[str, list[float]]]]] = defaultdict(list)

    def run(make_store: Callable[[], LightningStore], name: str) -> Callable[[], float]:
        def measure() -> float:
            store = make_store()
            try:
                asyncio.run(timed_calls(store, 20))  # warm: connections, prepared statements
                results[name].append(asyncio.run(timed_calls(store, args.tasks)))
            finally:
                if isinstance(store, RolloutDBLightningStore):
                    store.store.close()
            return results[name][-1][0]
        return measure

    with sqlite_database() as sqlite_url, postgres_database(args.postgres) as postgres_url:
        urls = {"sqlite": sqlite_url, "postgresql": postgres_url}
        sides = {"in-memory": run(InMemoryLightningStore, "in-memory")}
        for backend in args.backends.split(","):
            sides[backend] = run(lambda url=urls[backend]: RolloutDBLightningStore(
                url, project=f"bench-{uuid.uuid4().hex[:8]}"), backend)
        in_turns(sides, args.rounds, "rollout flow, one at a time")
        counted = {backend: statements_per_call(urls[backend]) for backend in args.backends.split(",")}
    for name, runs in results.items():
        table.add_row(name, f"{median(cpu for cpu, _ in runs) * 1000:.2f}",
                      *(f"{median(median(calls[call]) for _, calls in runs) * 1000:.2f}" for call in columns))
    console.print(table)
    statements = Table(title="Statements per Agent Lightning call (transactions)",
                       caption=" ".join(StatementCounter.__doc__.split(": ", 1)[1].split()))
    statements.add_column("call")
    for backend in counted:
        statements.add_column(backend, justify="right")
    for call in next(iter(counted.values())):
        statements.add_row(call, *(f"{by_call[call][0]:g} ({by_call[call][1]:g})" for by_call in counted.values()))
    console.print(statements)


# CPU seconds per flow of each side's runs (this process's, every thread), by (flow, side): the figure that a
# busy machine distorts least (on PostgreSQL the database server's share is not in it).
cpu_per_flow: dict[tuple[str, str], list[float]] = defaultdict(list)


def side(make_store: Callable[[], LightningStore], flow: str, tasks: int, concurrency: int) -> Callable[[], float]:
    def measure() -> float:
        store = make_store()
        try:
            cpu = time.process_time()
            seconds = asyncio.run(timed_flows(store, flow, tasks, concurrency))
            name = "in-memory" if isinstance(store, InMemoryLightningStore) else store.store.backend
            cpu_per_flow[(flow, name)].append((time.process_time() - cpu) / tasks)
            return seconds
        finally:
            if isinstance(store, RolloutDBLightningStore):
                store.store.close()
    return measure


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", type=int, default=400, help="flows per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgresql")
    add_postgres_option(parser)


def compare(args: argparse.Namespace, title: str, measure: Callable[[Callable[[], LightningStore], str], Callable[[], float]],
            targets: dict[str, float | None], how: str = "") -> None:
    """Each flow on each backend against the in-memory store, sides taking turns (``measure(make_store, flow)``
    gives a side's run, returning its seconds); prints the table of rates, ratios and targets."""
    table = Table(title=title, caption="flows/s: each side's median; ratio: median of the rounds' own ratios; CPU: "
                                       "this process's per flow, median (RolloutDB / in-memory; PostgreSQL's own not in it)")
    for column in ("flow", "backend", "RolloutDB flows/s", "in-memory flows/s", "CPU ms/flow", "ratio", "target",
                   "met"):
        table.add_column(column, justify="center" if column == "met" else "right")
    with sqlite_database() as sqlite_url, postgres_database(args.postgres) as postgres_url:
        urls = {"sqlite": sqlite_url, "postgresql": postgres_url}
        for flow in ("rollout", "dequeue"):
            for backend in args.backends.split(","):
                def ours(url: str = urls[backend]) -> LightningStore:
                    return RolloutDBLightningStore(url, project=f"bench-{uuid.uuid4().hex[:8]}")

                seconds = in_turns({"in-memory": measure(InMemoryLightningStore, flow), backend: measure(ours, flow)},
                                   args.rounds, f"{flow} flow{how} on {backend}")
                ratio = median_ratio(seconds["in-memory"], seconds[backend])
                target = targets[backend]
                cpu = " / ".join(f"{median(cpu_per_flow[(flow, name)]) * 1000:.2f}" if cpu_per_flow[(flow, name)]
                                 else "-" for name in (backend, "in-memory"))  # "-": not run in this process
                cpu_per_flow.clear()
                table.add_row(flow, backend, f"{args.tasks / median(seconds[backend]):,.0f}",
                              f"{args.tasks / median(seconds['in-memory']):,.0f}", cpu,
                              f"{ratio:.2f}x",
                              "-" if target is None else f"≥ {target}x", met(None if target is None else ratio >= target))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8, help="coroutines running flows at once")
    parser.add_argument("--per-call", action="store_true", help="CPU per flow and time per call, one flow at a time")
    add_common_options(parser)
    args = parser.parse_args()
    if args.per_call:
        per_call(args)
        return
    compare(args, f"Agent Lightning flows: {args.tasks} per run, {args.concurrency} coroutines, {args.rounds} rounds",
            lambda make_store, flow: side(make_store, flow, args.tasks, args.concurrency), TARGETS)


if __name__ == "__main__":
    main()
