"""``rolloutdb ui``: a server on loopback for one person's browser, opened once it answers."""

from __future__ import annotations

import socket
import threading
import time
import webbrowser
from collections.abc import Callable

import httpx

from ..config import DEFAULT_PROJECT
from ..server import serve

LOOPBACK = "127.0.0.1"
OPEN_WITHIN_SECONDS = 60  # the server is given this long to answer before the browser is opened


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def run_ui(url: str | None, *, project: str | None, port: int, open_browser: bool,
           on_ready: Callable[[str], None] | None) -> None:
    address = f"http://{LOOPBACK}:{port or free_port()}"
    if open_browser:
        threading.Thread(target=open_when_answering, args=(address,), name="rolloutdb-ui-browser",
                         daemon=True).start()
    serve(url, project=project or DEFAULT_PROJECT, host=LOOPBACK, port=int(address.rsplit(":", 1)[1]),
          on_ready=None if on_ready is None else lambda where: on_ready(f"{address}/ (server: {where})"))


def open_when_answering(address: str) -> None:
    """Open the dashboard in the browser (``webbrowser``: the BROWSER variable, else the system's) once the
    server at ``address`` answers."""
    deadline = time.monotonic() + OPEN_WITHIN_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{address}/healthz", timeout=2).status_code == 200:
                webbrowser.open(f"{address}/")
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
