"""`rolloutdb ui`: a server on loopback with the dashboard at /, and the browser opened on it (webbrowser: the
BROWSER variable names the program here, one that writes down the address it is given)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from server.servers import free_port, server_environment, stop, wait_until_answering


def default_database_environment() -> dict[str, str]:
    """The server's environment without the variables that would name a database other than the default."""
    return {name: value for name, value in server_environment().items()
            if name not in ("ROLLOUTDB_URL", "DATABASE_URL") and not name.startswith("POSTGRES")}


def start_ui(tmp_path, *options: str, url: bool = True) -> tuple[subprocess.Popen, str, object]:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "rolloutdb.cli", *(["--url", f"sqlite:///{tmp_path / 'ui.db'}"] if url else []),
             "ui", "--port", str(port), *options], stdout=output, stderr=subprocess.STDOUT,
            env={**default_database_environment(), "BROWSER": f"{browser} %s"}, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    wait_until_answering(process, base + "/healthz", log.read_text)
    return process, base, opened


def test_ui_serves_the_default_database_on_loopback_and_opens_the_browser_on_it(tmp_path):
    process, base, opened = start_ui(tmp_path, url=False)
    try:
        deadline = time.monotonic() + 20
        while not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert opened.read_text().split() == [base + "/"]
        page = httpx.get(base + "/")
        assert page.status_code == 200 and "RolloutDB" in page.text
        assert httpx.get(base + "/api/v1/project").json()["name"] == "default"
        assert f"RolloutDB dashboard at {base}/" in (tmp_path / "ui.log").read_text()
    finally:
        stop(process)
    assert (tmp_path / "rolloutdb.db").exists()  # the default database: ./rolloutdb.db


def test_ui_no_open_leaves_the_browser_closed(tmp_path):
    process, base, opened = start_ui(tmp_path, "--no-open")
    try:
        assert httpx.get(base + "/").status_code == 200
        time.sleep(1)
        assert not opened.exists()
    finally:
        stop(process)
    assert os.path.exists(tmp_path / "ui.db")
