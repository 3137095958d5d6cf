"""The dashboard on a server started with --auth: a token logs in (kept in the tab), the browser's own requests
(images, the event stream) carry it as a cookie the server takes for reads only and never logs, and a reader sees
no control buttons while the server refuses a reader's control requests anyway."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

import rolloutdb
from conftest import BACKENDS, new_database_url
from server.servers import Server, running_server

from .conftest import open_page, save_screenshot
from .seeding import screen


@pytest.fixture(scope="module", params=BACKENDS)
def auth_site(request, postgres_databases, tmp_path_factory) -> Iterator[tuple[Server, dict[str, str], dict[str, str]]]:
    directory = tmp_path_factory.mktemp("dashboard-auth")
    url = new_database_url(request.param, postgres_databases, directory)
    project = f"auth-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(url, project=project) as store:
        secrets = {role: store.tokens.create(role, name=f"dashboard {role}").secret for role in ("reader", "writer")}
        job = store.jobs.begin(f"job-{uuid.uuid4().hex[:6]}").run
        claim = store.rollouts.start({"goal": "look"})
        turn = store.turns.create(rollout_id=claim.rollout.id, turn_index=0, action={"type": "tap", "x": 10, "y": 20})
        image = screen((10, 200, 10), "auth")
        sha = store.artifacts.put(image, "image/png", role="screenshot", turn_id=turn.id).sha256
        rows = {"job": job.name, "rollout": claim.rollout.id, "sha": sha, "backend": request.param}
    with running_server(url, directory, project, "--auth", "--access-log") as server:
        yield server, secrets, rows


def log_in(page, base: str, secret: str) -> None:
    page.goto(base + "/#/runs")
    page.wait_for_selector("#login")
    page.fill("#token", secret)
    page.click("#login button")
    page.wait_for_function("document.body.dataset.ready === location.hash")


def test_a_token_logs_in_and_the_pages_read_with_it(auth_site, page):
    server, secrets, rows = auth_site
    page.goto(server.base + "/")
    page.wait_for_selector("#login")
    save_screenshot(page, rows["backend"], "auth-login")
    page.fill("#token", "rdb_not_a_token")
    page.click("#login button")
    page.wait_for_selector("#login-error:not(:empty)")
    assert "AuthenticationError" in page.inner_text("#login-error")
    log_in(page, server.base, secrets["reader"])
    assert page.inner_text("#who .role") == "reader"
    assert page.evaluate("sessionStorage.getItem('rolloutdb.token')") == secrets["reader"]
    # The event stream (EventSource sends no header) and the images (no header either) read with the cookie.
    page.wait_for_selector(".live.on")
    open_page(page, server.base, f"#/rollouts/{rows['rollout']}")
    page.wait_for_function("document.querySelector('figure.shot img').naturalWidth === 360")
    # The secret travelled in headers and a cookie only: the server's log (its access log too) has no trace of it.
    assert secrets["reader"] not in server.log.read_text()
    assert "rdb_" not in server.log.read_text()
    page.click("#logout")
    page.wait_for_selector("#login")
    assert page.evaluate("sessionStorage.getItem('rolloutdb.token')") is None


def test_a_reader_sees_no_controls_and_is_refused_them_a_writer_has_them(auth_site, page):
    server, secrets, rows = auth_site
    log_in(page, server.base, secrets["reader"])
    open_page(page, server.base, f"#/runs/{quote(rows['job'], safe='')}")
    save_screenshot(page, rows["backend"], "auth-run-as-reader")
    assert page.locator("#run-status").inner_text() == "running"
    assert page.locator("#job-controls").count() == 0 and page.locator("button#job-pause").count() == 0
    pause = f"{server.base}/api/v1/jobs/{quote(rows['job'], safe='')}/pause"
    refused = httpx.post(pause, json={}, headers={"Authorization": f"Bearer {secrets['reader']}"})
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "PermissionDeniedError"
    # The cookie is taken for reads only: a write needs the header, so a page elsewhere cannot write with it.
    by_cookie = httpx.post(pause, json={}, cookies={"rolloutdb_token": secrets["writer"]})
    assert by_cookie.status_code == 401
    assert httpx.get(f"{server.base}/api/v1/runs", cookies={"rolloutdb_token": secrets["reader"]}).status_code == 200
    with rolloutdb.connect(server.url, project=server.project) as store:
        assert store.runs.get(rows["job"]).control is None
    page.click("#logout")
    log_in(page, server.base, secrets["writer"])
    open_page(page, server.base, f"#/runs/{quote(rows['job'], safe='')}")
    save_screenshot(page, rows["backend"], "auth-run-as-writer")
    page.click("#job-pause")
    page.wait_for_function("document.getElementById('control-result').textContent === 'pause requested'")
    with rolloutdb.connect(server.url, project=server.project) as store:
        assert store.runs.get(rows["job"]).control == "pause"


def test_the_pages_are_served_with_a_content_security_policy(auth_site):
    server, _, _ = auth_site
    answer = httpx.get(server.base + "/")
    assert answer.status_code == 200 and '<script type="module" src="app.js">' in answer.text
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    assert httpx.get(server.base + "/vendor/uplot/uPlot.esm.js").status_code == 200
    assert httpx.get(server.base + "/api/v1/runs").status_code == 401  # the API still asks for a token
