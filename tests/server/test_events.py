"""``GET /api/v1/events`` on a real server (a subprocess, over SQLite and PostgreSQL), read as raw Server-Sent
Events: events written by other processes reach it, filters, resumption with Last-Event-ID, and streams that
come and go without leaking."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

import rolloutdb
from conftest import new_database_url, postgres_connection
from rolloutdb.errors import FeedTrimmedError
from server.servers import Server, error, running_server, unique

STREAM_TIMEOUT = httpx.Timeout(60, connect=10)


def frames(response: httpx.Response) -> Iterator[dict]:
    """The events of a stream as {"id", "event", "data"} (comments skipped)."""
    frame: dict = {}
    for line in response.iter_lines():
        if not line:
            if "data" in frame:
                yield frame
            frame = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            frame[name] = json.loads(value) if name == "data" else int(value) if name == "id" else value


@contextlib.contextmanager
def stream(server: Server, *, headers: dict | None = None, **params) -> Iterator[Iterator[dict]]:
    with httpx.Client(timeout=STREAM_TIMEOUT) as client, client.stream(
            "GET", server.base + "/api/v1/events", params=params,
            headers={"RolloutDB-Project": server.project, **(headers or {})}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield frames(response)


def checkpoints(url: str, project: str, name: str, count: int) -> None:
    """A job's code in its own process, writing to the database directly (not through the server)."""
    with rolloutdb.connect(url, project=project) as store:
        with store.jobs.start(name, write_interval=0.0) as job:
            for i in range(count):
                job.progress((i + 1) / count)
                job.checkpoint(state={"i": i}, message=f"checkpoint {i}")


def spawn(*args) -> multiprocessing.Process:
    process = multiprocessing.get_context("spawn").Process(target=checkpoints, args=args)
    process.start()
    return process


def test_a_checkpoint_in_another_process_reaches_a_subscriber(server):
    name = unique("job")
    with stream(server, topic=["job", "log"], timeout=120) as events:
        process = spawn(server.url, server.project, name, 3)
        seen = []
        for frame in events:
            seen.append(frame)
            if frame["event"] == "job" and frame["data"]["data"]["status"] == "completed":
                break
    process.join(60)
    assert process.exitcode == 0
    assert [f["data"]["data"]["message"] for f in seen if f["event"] == "log"] == [
        "started", "checkpoint 0", "checkpoint 1", "checkpoint 2", "completed"]
    assert [f["data"]["data"]["progress"] for f in seen if f["event"] == "job"][-1] == 100.0
    assert all(f["id"] == f["data"]["id"] for f in seen)  # the SSE id is the event's


def test_topic_and_run_filters(server):
    a, b = unique("a"), unique("b")
    with rolloutdb.connect(server.url, project=server.project) as store:
        after = store.events.latest_id()
        for name in (a, b):
            with store.jobs.start(name) as job:
                job.log("hello")
        store.rollouts.enqueue("task")
        a_id = store.runs.get(a).id
    with stream(server, topic="log", run=a, after=after, timeout=1) as events:
        got = list(events)
    assert [(f["event"], f["data"]["run_id"], f["data"]["data"]["message"]) for f in got] == [
        ("log", a_id, "started"), ("log", a_id, "hello"), ("log", a_id, "completed")]
    with stream(server, topic=["rollout", "queue"], after=after, timeout=1) as events:
        got = list(events)
    assert [f["event"] for f in got] == ["queue", "rollout"]  # the queue's counts first, then what was missed
    assert "id" not in got[0] and got[0]["data"]["rollouts_by_status"]["queuing"] >= 1


def test_bad_stream_requests_are_refused_before_streaming(server):
    with server.client() as api:
        headers = {"RolloutDB-Project": server.project}
        assert "'nope'" in error(api.get("/events", params={"topic": "nope"}, headers=headers), 422,
                                 "InvalidInputError")
        error(api.get("/events", params={"run": unique("missing")}, headers=headers), 404, "NotFoundError")
        error(api.get("/events", headers={**headers, "Last-Event-ID": "x'; DROP TABLE events"}), 422,
              "InvalidInputError")


def test_last_event_id_resumption_misses_nothing_and_doubles_nothing(server):
    """Writers in other processes and threads write all along, concurrently (on PostgreSQL their ids may commit
    out of order); the subscriber drops its stream twice and comes back with Last-Event-ID."""
    with rolloutdb.connect(server.url, project=server.project) as store:
        after = store.events.latest_id()
    names = [unique("writer") for _ in range(3)]
    writers = [spawn(server.url, server.project, name, 40) for name in names]
    received: list[dict] = []
    last = after
    try:
        for _ in range(3):
            with stream(server, headers={"Last-Event-ID": str(last)}, topic=["job", "log", "run"],
                        timeout=8) as events:
                for count, frame in enumerate(events):
                    received.append(frame)
                    last = frame["id"]
                    if count == 30:
                        break  # drop the connection mid-stream
    finally:
        for writer in writers:
            writer.join(120)
    with stream(server, headers={"Last-Event-ID": str(last)}, topic=["job", "log", "run"], timeout=2) as events:
        received += list(events)
    ids = [frame["id"] for frame in received]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)  # nothing twice, in order
    with rolloutdb.connect(server.url, project=server.project) as store:
        stored = []
        while batch := store.events.query(stored[-1].id if stored else after, limit=1000):
            stored += batch
    assert ids == [event.id for event in stored]  # nothing missed
    assert sum(1 for f in received if f["event"] == "run" and f["data"]["data"]["new_status"] == "completed") == 3


def server_threads(server: Server) -> int:
    return int(next(line.split()[1] for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines()
                    if line.startswith("Threads:")))


def streams_open(server: Server) -> int:
    """How many event streams the server has open, counting a new one (its first line says)."""
    with httpx.Client(timeout=STREAM_TIMEOUT) as client, client.stream(
            "GET", server.base + "/api/v1/events", params={"timeout": 0.1},
            headers={"RolloutDB-Project": server.project}) as response:
        first = next(response.iter_lines())
    assert first.startswith(": connected; "), first
    return int(first.split()[2])


def test_many_subscribers_and_ones_that_go_away_do_not_leak(server):
    """More subscribers than the server has threads all get every event; those that go away mid-stream are
    forgotten, and so is the follower thread once none is left."""
    name = unique("fanout")
    with rolloutdb.connect(server.url, project=server.project) as store:
        after = store.events.latest_id()
        threads_before = server_threads(server)
        with contextlib.ExitStack() as streams:
            clients = [streams.enter_context(httpx.Client(timeout=STREAM_TIMEOUT)) for _ in range(40)]
            responses = [streams.enter_context(client.stream(
                "GET", server.base + "/api/v1/events", params={"topic": "log", "after": after},
                headers={"RolloutDB-Project": server.project})) for client in clients]
            assert all(response.status_code == 200 for response in responses)
            messages: list[list[str]] = [[] for _ in responses]
            readings = [frames(response) for response in responses]  # one reading of each stream, taken in turns

            def read(index: int, reading: Iterator[dict], until: str) -> None:
                for frame in reading:
                    messages[index].append(frame["data"]["data"]["message"])
                    if frame["data"]["data"]["message"] == until:
                        return

            def everyone_reads(readers: list[tuple[int, Iterator[dict]]], until: str) -> None:
                threads = [threading.Thread(target=read, args=(*pair, until)) for pair in readers]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(60)

            with store.jobs.start(name, write_interval=0.0) as job:
                job.log("to everyone")
                everyone_reads(list(enumerate(readings)), "to everyone")
                assert server_threads(server) < threads_before + 20  # not a thread per subscriber (40)
                for response in responses[20:]:  # half go away mid-stream
                    response.close()
                job.log("to those left")
            everyone_reads(list(enumerate(readings[:20])), "completed")
            assert all(got == ["started", "to everyone", "to those left", "completed"] for got in messages[:20])
            assert all(got == ["started", "to everyone"] for got in messages[20:])
        # One reading per probe: each probe is a stream too, and the last one may still be closing on the server.
        deadline = time.monotonic() + 30
        while (open_streams := streams_open(server)) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert open_streams == 1  # only the one asking


@pytest.mark.parametrize("topics", [["job"], None])
def test_the_remote_client_follows_the_stream(server, topics):
    name = unique("remote")
    with rolloutdb.connect(server.base, project=server.project) as remote:
        follower = remote.events.follow(topics=topics, run=None, timeout=60)
        process = spawn(server.url, server.project, name, 2)
        for event in follower:
            if event.topic == "job" and event.data["status"] == "completed":
                break
        process.join(60)
        assert remote.jobs.get(name).run.status == "completed"


def finished_rollouts(store: rolloutdb.Store, count: int) -> None:
    """``count`` rollouts started and finished: status events for each."""
    for _ in range(count):
        claim = store.rollouts.start("x")
        store.attempts.update(claim.rollout.id, status="succeeded")


def test_a_stream_whose_hub_is_behind_a_purge_is_told_rather_than_skipping_what_it_trimmed(
        postgres_databases, tmp_path):
    """The server's hub follows the feed for its streams; when a purge trims events the hub has not read yet, its
    streams get an error event (FeedTrimmedError through the remote client), as a library follower does, not
    the events after the hole as if nothing were missing.

    On PostgreSQL only: there the test can hold the hub behind, at a hole in the ids that a transaction in flight
    may still fill. On SQLite nothing outside the server can keep its hub from reading each event as it commits
    (writers take turns, so there are no holes), and the hub's code for a trim is the same."""
    url = new_database_url("postgresql", postgres_databases, tmp_path)
    with running_server(url, tmp_path) as server, rolloutdb.connect(url, project=server.project) as store, \
            rolloutdb.connect(server.base, project=server.project) as remote:
        finished_rollouts(store, 1)
        follower = remote.events.follow(timeout=15)
        finished_rollouts(store, 1)
        assert next(follower).topic == "rollout"  # the stream is open and its hub live
        with postgres_connection(url, autocommit=True) as connection:
            with connection.transaction():  # in flight, it holds an event id: the hub waits at the hole it leaves
                # As a writer of events does: a lock for writing to the table, then an id, and a transaction id.
                connection.execute("LOCK TABLE events IN ROW EXCLUSIVE MODE")
                connection.execute("SELECT pg_current_xact_id(), nextval(pg_get_serial_sequence('events', 'id'))")
                finished_rollouts(store, 3)
                assert store.purge(keep_last=1).events > 0
                raise psycopg.Rollback()
        finished_rollouts(store, 1)
        with pytest.raises(FeedTrimmedError, match="purge"):
            for event in follower:
                pass  # the events before the hub's hole, which it had read, may come first
