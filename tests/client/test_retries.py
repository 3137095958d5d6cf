"""The remote client when the server or the network fails: a request safe to repeat is sent again until the
server is back, a write sent again is not written twice, a server that is full is asked again after its
Retry-After, and a network that hangs ends in StoreUnavailableError instead of a hang. Real servers, restarted
for real; the network is tests/netproxy.py's."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import rolloutdb
from netproxy import Proxy
from rolloutdb import StoreUnavailableError
from server.servers import free_port, running_server


@pytest.fixture
def database(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'remote.db'}"


def test_a_read_is_sent_again_until_a_restarted_server_answers(database, tmp_path):
    port = free_port()
    with running_server(database, tmp_path, "p", port=port) as server:
        remote = rolloutdb.connect(server.base, project="p", retry_for=60)
        run = remote.runs.create(name="survives")
    with ThreadPoolExecutor(1) as pool:  # the server is down: the read retries meanwhile
        read = pool.submit(remote.runs.get, run.id)
        time.sleep(0.5)
        assert not read.done()
        with running_server(database, tmp_path, "p", port=port):
            assert read.result(timeout=60) == run
    remote.close()


def test_a_write_whose_answer_was_lost_is_not_written_twice(database, tmp_path):
    with running_server(database, tmp_path, "p") as server, rolloutdb.connect(database, project="p") as local:
        proxy = Proxy("127.0.0.1", int(server.base.rsplit(":", 1)[1]))
        remote = rolloutdb.connect(f"http://127.0.0.1:{proxy.port}", project="p", timeout=1, retry_for=60)
        proxy.hold_answers()  # the enqueue reaches the server; its answer does not come back
        with ThreadPoolExecutor(1) as pool:
            enqueued = pool.submit(remote.rollouts.enqueue_many, [{"input": i} for i in range(5)])
            deadline = time.monotonic() + 30
            while local.rollouts.count() < 5:
                assert time.monotonic() < deadline, "the enqueue never reached the server"
                time.sleep(0.05)
            time.sleep(1.5)  # the client's read timeout passes: it sends the enqueue again
            proxy.restore()
            rollouts = enqueued.result(timeout=60)
        assert [rollout.input for rollout in rollouts] == list(range(5))
        assert local.rollouts.count() == 5  # the second send found them stored: none twice
        assert [rollout.id for rollout in local.rollouts.query(sort="created_at")] == [r.id for r in rollouts]
        remote.close()
        proxy.close()


def test_a_server_that_is_full_is_asked_again_after_its_retry_after(database, tmp_path):
    with running_server(database, tmp_path, "p", "--max-writes-in-flight", "1") as server:
        remote = rolloutdb.connect(server.base, project="p", retry_for=30)
        waiting = remote.rollouts.enqueue(input=1)
        with httpx.Client(base_url=server.base + "/api/v1") as other:
            holder = threading.Thread(target=other.post, args=("/rollouts/wait",),  # the one write allowed
                                      kwargs={"json": {"rollout_ids": [waiting.id], "timeout": 2}, "timeout": 30})
            holder.start()
            time.sleep(0.5)
            started = time.monotonic()
            worker = remote.workers.heartbeat("w-1")  # answered 503, Retry-After: 1, until the wait ends
            assert worker.id == "w-1" and time.monotonic() - started >= 1
            holder.join()
            holder = threading.Thread(target=other.post, args=("/rollouts/wait",),
                                      kwargs={"json": {"rollout_ids": [waiting.id], "timeout": 2}, "timeout": 30})
            holder.start()
            time.sleep(0.5)
            with pytest.raises(StoreUnavailableError, match="503|full|writes"):  # not safe to repeat: at once
                remote.rollouts.cancel(waiting.id)
            holder.join()
        assert remote.rollouts.get(waiting.id).status == "queuing"
        remote.close()


def test_a_network_that_hangs_ends_in_store_unavailable_not_a_hang(database, tmp_path):
    with running_server(database, tmp_path, "p") as server:
        proxy = Proxy("127.0.0.1", int(server.base.rsplit(":", 1)[1]))
        remote = rolloutdb.connect(f"http://127.0.0.1:{proxy.port}", project="p", timeout=1, connect_timeout=1,
                                   retry_for=2)
        remote.runs.query()
        proxy.hang()
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="did not answer GET /runs.*retried for 2 s"):
            remote.runs.query()
        assert time.monotonic() - started < 10
        proxy.restore()
        assert remote.runs.query() == []
        remote.close()
        proxy.close()


def test_a_server_that_is_not_there_is_store_unavailable_at_connect():
    with pytest.raises(StoreUnavailableError, match="did not answer"):
        rolloutdb.connect(f"http://127.0.0.1:{free_port()}", project=f"p-{uuid.uuid4().hex[:6]}", retry_for=0.5)
