"""Several `rolloutdb serve` processes on one PostgreSQL are interchangeable: clients of any claim every rollout
exactly once."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import Counter

import pytest

from server.servers import ok, running_server

ROLLOUTS = 300
CLIENTS = 6


@pytest.mark.postgresql
def test_dequeue_is_exactly_once_across_two_servers(postgres_databases, tmp_path):
    url = postgres_databases.new()
    project = f"queue-{uuid.uuid4().hex[:6]}"
    with contextlib.ExitStack() as stack:
        # The second runs two uvicorn worker processes: three processes in all claim from one queue.
        servers = [stack.enter_context(running_server(url, tmp_path, project, *options))
                   for options in ((), ("--workers", "2"))]
        with servers[0].client() as api:
            enqueued = [rollout["id"] for start in range(0, ROLLOUTS, 100)
                        for rollout in ok(api.post("/rollouts/enqueue", json=[{"input": i}
                                                                              for i in range(start, start + 100)]), 201)]
        claimed: list[str] = []
        failures: list[BaseException] = []

        def work(number: int) -> None:
            try:
                with servers[number % 2].client() as client:
                    while batch := ok(client.post("/rollouts/dequeue", json={"limit": 1 + number % 3,
                                                                              "worker_id": f"worker-{number}"})):
                        claimed.extend(claim["rollout"]["id"] for claim in batch)  # list.extend: atomic
            except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(number,)) for number in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not failures, failures
        assert [rollout for rollout, times in Counter(claimed).items() if times > 1] == []  # none twice
        assert sorted(claimed) == sorted(enqueued)  # none lost
        with servers[1].client() as api:
            assert ok(api.get("/queue"))["waiting"] == 0
            assert ok(api.get("/attempts", params={"limit": 0}))["total"] == ROLLOUTS
