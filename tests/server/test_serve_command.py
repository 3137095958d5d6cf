"""`rolloutdb serve` itself: it refuses to listen beyond this machine without authentication."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import httpx
import pytest

from rolloutdb.server import is_loopback
from server.servers import error, running_server, serve_command, server_environment


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_host_beyond_loopback_is_refused_without_the_flag(tmp_path, host):
    database = tmp_path / "never.db"
    result = subprocess.run(serve_command(f"sqlite:///{database}", "p", "--host", host, "--port", "1"),
                            capture_output=True, text=True, env=server_environment(), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"refusing to listen on {host} without authentication" in result.stderr
    assert "--auth" in result.stderr and "--allow-unauthenticated-remote" in result.stderr
    assert "Traceback" not in result.stderr
    assert not database.exists()  # refused before anything was opened


def test_auth_and_all_projects_do_not_go_together(tmp_path):
    database = tmp_path / "never.db"
    result = subprocess.run(serve_command(f"sqlite:///{database}", "p", "--auth", "--all-projects", "--port", "1"),
                            capture_output=True, text=True, env=server_environment(), timeout=60)
    assert result.returncode == 1 and "--auth and --all-projects do not go together" in result.stderr
    assert not database.exists()


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True),
                                                ("localhost", True), ("0.0.0.0", False), ("10.0.0.1", False),
                                                ("", False)])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("access_log", [False, True])
def test_requests_are_logged_one_line_each_only_with_access_log(tmp_path, access_log):
    # Off by default (as Agent Lightning's store server): a line per request costs the server a tenth of its time.
    options = ("--access-log",) if access_log else ()
    with running_server(f"sqlite:///{tmp_path / 'logged.db'}", tmp_path, None, *options) as server:
        assert httpx.get(f"{server.base}/api/v1/project").status_code == 200
    assert ("GET /api/v1/project HTTP/1.1\" 200" in server.log.read_text()) is access_log


def test_ctrl_c_stops_the_server_while_a_wait_is_under_way(fresh_database_url, tmp_path):
    """A worker's wait for rollouts (here with no timeout) must not hold a server that is asked to stop (it took a
    minute), and is answered as the store being away, which a client asks again: not as an internal error."""
    with running_server(fresh_database_url, tmp_path, "stop") as server, server.client() as api:
        [rollout] = api.post("/rollouts/enqueue", json=[{"input": 1}]).json()
        answers: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: answers.append(api.post(
            "/rollouts/wait", json={"rollout_ids": [rollout["id"]]}, timeout=120)), daemon=True)
        waiting.start()
        time.sleep(1.0)  # the wait is under way
        asked = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=60)  # a guard against a hang, not a timing assumption
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not stop within 60 s of Ctrl-C while a wait was under way")
        # uvicorn gives requests 3 s to finish; then the store is closed and the wait ends within its poll (5 s on
        # PostgreSQL)
        assert time.monotonic() - asked < 30
        waiting.join(timeout=10)
        assert "the server is shutting down" in error(answers[0], 503, "StoreUnavailableError")
        assert "Traceback" not in server.log.read_text()
