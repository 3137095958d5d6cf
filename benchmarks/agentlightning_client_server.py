"""Agent Lightning's two micro-benchmark flows in its client-server mode: its LightningStoreServer (a thread of
this process) over RolloutDBLightningStore (SQLite file, PostgreSQL) against the same server over its
InMemoryLightningStore, with runners in 4 processes talking to it through its LightningStoreClient. The sides
take turns in the same run.

rollout: start_rollout, 4 x add_span, update_attempt(succeeded).
dequeue: (rollouts enqueued up front through the client, not timed) dequeue_rollout,
get_many_span_sequence_ids(4), add_many_spans(4 spans of 32 attributes), update_attempt(succeeded).
Timed from the moment the runners (started and connected beforehand) are told to go until the last finishes.

Usage: .venv/bin/python benchmarks/agentlightning_client_server.py [--tasks 400] [--runners 4]
       [--concurrency 2] [--rounds 3] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import time
from collections.abc import Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # agentlightning imports litellm: stay offline

from agentlightning.store.base import LightningStore  # noqa: E402
from agentlightning.store.client_server import LightningStoreClient, LightningStoreServer  # noqa: E402
from agentlightning.types import EnqueueRolloutRequest  # noqa: E402

from agentlightning_flows import add_common_options, compare, dequeue_flow, rollout_flow  # noqa: E402
from rolloutdb.integrations.agentlightning import RolloutDBLightningStore  # noqa: E402

TARGETS = {"sqlite": 1.0, "postgresql": None}  # times the in-memory store's rate (issue 14, item 4)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def runner(endpoint: str, flow: str, tasks: list[int], concurrency: int, ready, go, done) -> None:
    """One runner process: connect, say so, wait for the go, run its share of the flows ``concurrency`` at a time."""
    async def run() -> None:
        client = LightningStoreClient(endpoint)
        await client.get_latest_resources()  # connected before the clock starts
        ready.put(os.getpid())
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        remaining = iter(tasks)
        run_flow = rollout_flow if flow == "rollout" else dequeue_flow

        async def worker() -> None:
            for task in remaining:
                await run_flow(client, task)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await client.close()

    try:
        asyncio.run(run())
        done.put(None)
    except BaseException as exc:  # the parent reports it
        done.put(repr(exc))


def side(make_store: Callable[[], LightningStore], flow: str, tasks: int, runners: int,
         concurrency: int) -> Callable[[], float]:
    def measure() -> float:
        return asyncio.run(timed(make_store, flow, tasks, runners, concurrency))
    return measure


async def timed(make_store: Callable[[], LightningStore], flow: str, tasks: int, runners: int,
                concurrency: int) -> float:
    """Seconds for ``tasks`` flows run by ``runners`` processes through a server over a new store."""
    store = make_store()
    server = LightningStoreServer(store, host="127.0.0.1", port=free_port())
    await server.start()
    context = multiprocessing.get_context("forkserver")
    # Runners fork from a server process that has imported this module (and Agent Lightning) once.
    context.set_forkserver_preload(["__main__"])
    ready, done, go = context.Queue(), context.Queue(), context.Event()
    processes = []
    try:
        if flow == "dequeue":
            client = LightningStoreClient(server.endpoint)
            await client.enqueue_many_rollouts([EnqueueRolloutRequest(input={"task": n}) for n in range(tasks)])
            await client.close()
        processes = [context.Process(target=runner, args=(server.endpoint, flow, list(range(tasks))[n::runners],
                                                          concurrency, ready, go, done))
                     for n in range(runners)]
        for process in processes:
            process.start()
        loop = asyncio.get_running_loop()
        for _ in processes:
            await loop.run_in_executor(None, ready.get, True, 600)
        started = time.perf_counter()
        go.set()
        failures = [failure for failure in [await loop.run_in_executor(None, done.get, True, 600)
                                            for _ in processes] if failure]
        seconds = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"a runner failed: {failures[0]}")
        return seconds
    finally:
        for process in processes:
            process.join(timeout=30)
        await server.stop()
        if isinstance(store, RolloutDBLightningStore):
            store.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runners", type=int, default=4, help="runner processes")
    parser.add_argument("--concurrency", type=int, default=2, help="coroutines running flows in each runner")
    add_common_options(parser)
    args = parser.parse_args()
    compare(args, f"Agent Lightning client-server: {args.tasks} flows per run, {args.runners} runner processes x "
                  f"{args.concurrency} coroutines, {args.rounds} rounds",
            lambda make_store, flow: side(make_store, flow, args.tasks, args.runners, args.concurrency), TARGETS,
            " through the server")


if __name__ == "__main__":
    main()
