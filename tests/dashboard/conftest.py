"""The dashboard's tests: Chromium (Debian's, /usr/bin/chromium) driven by Playwright, one browser per module, on
real `rolloutdb serve` processes over seeded SQLite and PostgreSQL databases. Each page a test opens is saved as a
screenshot under tests/dashboard/screenshots/ (not in git) for people to look at."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import rolloutdb
from conftest import BACKENDS, IN_CI, new_database_url
from server.servers import Server, running_server

from .seeding import Seeded, seed

CHROMIUM = os.environ.get("ROLLOUTDB_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
WAIT_MS = 15_000


@dataclass
class Site:
    server: Server
    seeded: Seeded
    backend: str

    def store(self) -> rolloutdb.Store:
        return rolloutdb.connect(self.server.url, project=self.server.project)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set ROLLOUTDB_TEST_CHROMIUM)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module", params=BACKENDS)
def site(request, postgres_databases, tmp_path_factory) -> Iterator[Site]:
    """A server over a database of ``backend`` seeded with every kind of row the pages show."""
    directory = tmp_path_factory.mktemp("dashboard")
    url = new_database_url(request.param, postgres_databases, directory)
    project = f"dash-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(url, project=project) as store:
        seeded = seed(store)
    with running_server(url, directory, project) as server:
        yield Site(server, seeded, request.param)


@pytest.fixture
def page(browser, request):
    # Without the pages' Content-Security-Policy: the tests wait on expressions (which it forbids to evaluate),
    # and the pages must show hostile names as text by themselves (the policy is a second line, tested apart).
    context = browser.new_context(viewport={"width": 1300, "height": 900}, bypass_csp=True)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()
    assert not problems, f"errors in the page: {problems}"


def open_page(page, base: str, hash: str) -> None:
    """Go to the dashboard's route ``hash`` and wait until it has shown what it loaded."""
    page.goto(f"{base}/{hash}")
    page.wait_for_function("document.body.dataset.ready !== undefined && document.body.dataset.ready === location.hash")


def save_screenshot(page, backend: str, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{backend}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
