"""Real servers for the server tests: `rolloutdb serve` in a subprocess on 127.0.0.1, talked to with httpx; and
how the tests read its answers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import rolloutdb

SOURCE = Path(rolloutdb.__file__).resolve().parents[1]  # the code under test, for the server's process too
TEST_MAX_BODY_BYTES = 2 ** 20  # small, so that a body over it is quick to send


@dataclass
class Server:
    url: str  # the database's
    project: str
    base: str  # http://127.0.0.1:PORT
    log: Path  # what the server printed: its log
    process: subprocess.Popen

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base + "/api/v1", timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(url: str, project: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "rolloutdb.cli", "serve", "--url", url, "--project", project, *options]


def server_environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))}


@contextlib.contextmanager
def running_server(url: str, log_dir: Path, project: str | None = None, *options: str,
                   port: int | None = None) -> Iterator[Server]:
    """`rolloutdb serve` on ``port`` (default: a free one), once /healthz answers; stopped (SIGTERM) at the end."""
    project = project or f"server-{uuid.uuid4().hex[:8]}"
    port = port or free_port()
    log = log_dir / f"server-{port}-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            serve_command(url, project, "--port", str(port), "--max-body-bytes", str(TEST_MAX_BODY_BYTES), *options),
            stdout=output, stderr=subprocess.STDOUT, env=server_environment())
    server = Server(url, project, f"http://127.0.0.1:{port}", log, process)
    try:
        wait_until_answering(process, server.base + "/healthz", log.read_text)
        yield server
    finally:
        stop(process)


def wait_until_answering(process: subprocess.Popen, health_url: str, log: Callable[[], str],
                         fail: Callable[[str], object] = pytest.fail, within: float = 60) -> None:
    """Return once ``health_url`` answers 200; ``fail`` (with the server's log) if the process exits first or
    ``within`` seconds pass. The benchmarks start their servers with it too."""
    deadline = time.monotonic() + within
    while True:
        if process.poll() is not None:
            fail(f"the server exited with {process.returncode}:\n{log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(health_url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            fail(f"the server did not answer within {within:g} s:\n{log()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def unique(prefix: str) -> str:
    """A name no other test uses: tests share their backend's server and its project."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ok(response: httpx.Response, status: int = 200):
    """The response's JSON, once its status is ``status``."""
    assert response.status_code == status, f"{response.request.method} {response.request.url}: " \
                                           f"{response.status_code} {response.text[:2000]}"
    return response.json() if response.content else None


def error(response: httpx.Response, status: int, type_name: str) -> str:
    """The message of an error answer, once its status and type are these."""
    assert response.status_code == status, f"{response.status_code} {response.text[:2000]}"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["type"] == type_name, body
    assert "Traceback" not in response.text
    return body["error"]["message"]
