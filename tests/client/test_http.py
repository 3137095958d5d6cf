"""The remote client's requests (``client._http.Transport``): work that a request's answer needs (the records of a
batch of spans, say) is done while the server works on it, once, whatever the network does. A real server behind
tests/netproxy.py, which holds the server's answers back while the test looks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from netproxy import Proxy
from rolloutdb.client._http import Transport, json_bytes
from server.servers import running_server


@pytest.fixture
def proxied(tmp_path) -> Iterator[tuple[Proxy, str]]:
    with running_server(f"sqlite:///{tmp_path / 'remote.db'}", tmp_path, "p") as server:
        proxy = Proxy("127.0.0.1", int(server.base.rsplit(":", 1)[1]))
        yield proxy, f"http://127.0.0.1:{proxy.port}"
        proxy.close()


def transport(base: str, *, timeout: float = 30) -> Transport:
    return Transport(base, "p", token=None, timeout=timeout, connect_timeout=5, retry_for=60)


def test_work_the_answer_needs_is_done_while_the_server_answers(proxied):
    proxy, base = proxied
    client, done = transport(base), threading.Event()
    runs: list[int] = []

    def work() -> None:
        runs.append(1)
        done.set()

    proxy.hold_answers()  # the request reaches the server; its answer waits
    with ThreadPoolExecutor(1) as pool:
        answered = pool.submit(client.request, "POST", "/runs", body=json_bytes({"name": "meanwhile"}),
                               repeatable=False, while_waiting=work)
        assert done.wait(10), "the work waited for the answer"
        assert not answered.done()
        proxy.restore()
        assert b'"meanwhile"' in answered.result(timeout=30)
    assert runs == [1]
    client.close()


def test_the_work_is_done_once_when_the_request_is_sent_again(proxied):
    proxy, base = proxied
    client, runs = transport(base, timeout=1), []
    proxy.hold_answers()
    with ThreadPoolExecutor(1) as pool:  # the first answer is lost (read timeout): the read is sent again
        answered = pool.submit(client.request, "GET", "/runs", repeatable=True, while_waiting=lambda: runs.append(1))
        threading.Event().wait(1.5)
        proxy.restore()
        assert answered.result(timeout=60).startswith(b"{")
    assert runs == [1]
    client.close()


def test_an_error_of_the_work_is_raised_after_the_answer(proxied):
    _, base = proxied
    client = transport(base)

    def work() -> None:
        raise ValueError("the work failed")

    with pytest.raises(ValueError, match="the work failed"):
        client.request("POST", "/runs", body=json_bytes({"name": "written"}), repeatable=False, while_waiting=work)
    # The request was answered (the run is there) and the connection is fine for the next one.
    assert b'"written"' in client.request("GET", "/runs", repeatable=True)
    client.close()
