"""The dashboard in a browser, at scale: how soon the runs page shows its content with 10,000 runs in the
database, and a 100-turn trajectory with its screenshots, among 1M turns — measured by the browser itself
(Chromium through Playwright, the Performance API: from the navigation's start to the page's "content shown" mark;
for the trajectory, until the screenshots in view are decoded too).

    python benchmarks/dashboard.py [--runs 10000] [--turns 1000000] [--samples 7] [--backends sqlite]
                                   [--cache ~/.cache/rolloutdb-benchmarks] [--postgres URL]

The data is built once by the store's batch insert (runs as records, rollouts and turns as benchmarks/trajectory.py
builds them; screenshots real PNGs linked with artifacts.link) and kept outside git: a SQLite file in --cache, a
PostgreSQL database named after the sizes (dropped with --rebuild). The reference, in the same run and taking
turns with it, is the same pages over a project with 10 runs and the one 100-turn rollout: what a page costs
on this machine without the scale. Targets: runs page < 500 ms, trajectory < 1 s, marked met (✓) or not (✗).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

import rolloutdb
from rolloutdb.records import Run
from rolloutdb.schema import runs as runs_table
from rolloutdb.store._bulk import bulk_insert
from common import add_postgres_option, met
from trajectory import build as build_rollouts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from server.servers import running_server  # noqa: E402

TARGETS = {"runs page": 0.5, "100-turn trajectory": 1.0}
TURNS_PER_ROLLOUT = 100
LINKED_ROLLOUTS = 5
SCREENSHOTS = 6
CHROMIUM = os.environ.get("ROLLOUTDB_TEST_CHROMIUM", "/usr/bin/chromium")
console = Console()

RUNS_PAGE = """async () => {
    const [mark] = performance.getEntriesByName('rolloutdb:ready');
    return mark.startTime / 1000;
}"""
# The trajectory is shown once its turns are and the screenshots in view are decoded.
TRAJECTORY_PAGE = """async () => {
    const [mark] = performance.getEntriesByName('rolloutdb:ready');
    const inView = [...document.querySelectorAll('figure.shot img')].filter((image) => {
        const box = image.getBoundingClientRect();
        return box.top < innerHeight && box.bottom > 0;
    });
    await Promise.all(inView.map((image) => image.decode()));
    return [Math.max(mark.startTime, performance.now()) / 1000, inView.length,
            document.querySelectorAll('article.turn').length];
}"""


def screenshot_png(seed: int) -> bytes:
    """A phone-sized screen (1080 x 2400, about what a phone agent stores) with some structure to compress."""
    image = Image.new("RGB", (1080, 2400), (240, 240, 245))
    draw = ImageDraw.Draw(image)
    rng = random.Random(seed)
    for row in range(40):
        draw.rectangle((40, 60 * row + 20, 1040, 60 * row + 70),
                       fill=tuple(rng.randrange(120, 255) for _ in range(3)))
        draw.text((60, 60 * row + 35), f"item {seed}-{row}", fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def build(store: rolloutdb.Store, run_count: int, turns: int) -> dict:
    started = time.perf_counter()
    now = store.now()
    for first in range(0, run_count, 2000):
        rows = []
        for n in range(first, min(first + 2000, run_count)):
            status = "running" if n % 50 == 0 else "completed"
            record = Run(name=f"run-{n:06d}", kind="train" if n % 3 else "eval", status=status,
                         progress=37.5 if status == "running" else 100.0, stage="rollouts", started_at=now,
                         created_at=now, updated_at=now, config={"lr": 1e-5, "group_size": 8, "n": n})
            rows.append({**record.model_dump(), "project_id": store.project_id})
        with store.engine.begin() as connection:
            bulk_insert(connection, runs_table, rows)
    console.print(f"  {run_count:,} runs in {time.perf_counter() - started:.0f} s", highlight=False)
    built = build_rollouts(store, turns, 0, TURNS_PER_ROLLOUT, 0)
    images = [store.artifacts.put(screenshot_png(n), "image/png") for n in range(SCREENSHOTS)]
    linked = random.sample(built.rollouts, LINKED_ROLLOUTS)
    for rollout_id in linked:
        for turn in store.turns.query(rollout_id=rollout_id, limit=None):
            store.artifacts.link(images[turn.turn_index % SCREENSHOTS], turn_id=turn.id, role="screenshot")
    return {"linked": linked}


def small_project(store: rolloutdb.Store) -> dict:
    """The reference: 10 runs and one 100-turn rollout with the same screenshots."""
    for n in range(10):
        store.runs.create(name=f"small-{n}", config={"n": n})
    built = build_rollouts(store, TURNS_PER_ROLLOUT, 0, TURNS_PER_ROLLOUT, 0)
    images = [store.artifacts.put(screenshot_png(n), "image/png") for n in range(SCREENSHOTS)]
    for turn in store.turns.query(rollout_id=built.rollouts[0], limit=None):
        store.artifacts.link(images[turn.turn_index % SCREENSHOTS], turn_id=turn.id, role="screenshot")
    return {"linked": built.rollouts[:1]}


def cached_database(backend: str, arguments: argparse.Namespace) -> str:
    tag = f"dashboard-{arguments.runs}-runs-{arguments.turns}-turns"
    if backend == "sqlite":
        path = Path(arguments.cache).expanduser() / f"{tag}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        if arguments.rebuild and path.exists():
            path.unlink()
        return f"sqlite:///{path}"
    server = make_url(arguments.postgres)
    name = "rolloutdb_bench_" + tag.replace("-", "_")
    admin = dict(host=server.host, port=server.port or 5432, user=server.username, password=server.password,
                 dbname=server.database or "postgres", autocommit=True)
    with psycopg.connect(**admin) as connection:
        if arguments.rebuild:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')
    return server.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def prepared(url: str, project: str, make) -> dict:
    """The project's data, built on first use; what was built is kept in the project's settings."""
    with rolloutdb.connect(url, project=project) as store:
        marker = store.runs.query(name="__built__", limit=1)
        if marker:
            return marker[0].config
        console.print(f"[bold]{project}[/]: building ...")
        started = time.perf_counter()
        facts = make(store)
        store.runs.create(name="__built__", kind="job", status="completed", config=facts)
        console.print(f"  built in {time.perf_counter() - started:.0f} s", highlight=False)
        return facts


def measure(browser, base: str, facts: dict, samples: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"runs page": [], "100-turn trajectory": []}
    for _ in range(samples):
        for what in times:
            context = browser.new_context(viewport={"width": 1300, "height": 900})
            page = context.new_page()
            hash = "#/runs" if what == "runs page" else f"#/rollouts/{random.choice(facts['linked'])}"
            page.goto(f"{base}/{hash}")
            page.wait_for_selector("body[data-ready]", timeout=60_000)
            if what == "runs page":
                assert page.locator("#runs tbody tr").count() > 0
                times[what].append(page.evaluate(RUNS_PAGE))
            else:
                seconds, shown, turns = page.evaluate(TRAJECTORY_PAGE)
                assert turns == TURNS_PER_ROLLOUT and shown > 0, (turns, shown)
                times[what].append(seconds)
            context.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--cache", default=os.environ.get("ROLLOUTDB_BENCHMARK_CACHE", "~/.cache/rolloutdb-benchmarks"))
    parser.add_argument("--rebuild", action="store_true", help="build the data again")
    add_postgres_option(parser)
    arguments = parser.parse_args()
    from playwright.sync_api import sync_playwright

    table = Table(title=f"The dashboard in Chromium, {arguments.runs:,} runs and {arguments.turns:,} turns (load "
                        f"average {os.getloadavg()[0]:.1f} at the start)")
    for column in ("backend", "page", "project", "median ms", "max ms", "target", "met"):
        table.add_column(column)
    for backend in arguments.backends.split(","):
        url = cached_database(backend, arguments)
        big = prepared(url, "dashboard-bench", lambda store: build(store, arguments.runs, arguments.turns))
        small = prepared(url, "dashboard-reference", small_project)
        with ExitStack() as stack, sync_playwright() as playwright:
            directory = Path(stack.enter_context(__import__("tempfile").TemporaryDirectory()))
            servers = {name: stack.enter_context(running_server(url, directory, name))
                       for name in ("dashboard-bench", "dashboard-reference")}
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            measure(browser, servers["dashboard-bench"].base, big, 1)  # warm: the server's statements, the disk
            results = {"dashboard-bench": {}, "dashboard-reference": {}}
            for _ in range(arguments.samples):  # the sides take turns
                for name, facts in (("dashboard-bench", big), ("dashboard-reference", small)):
                    for what, values in measure(browser, servers[name].base, facts, 1).items():
                        results[name].setdefault(what, []).extend(values)
            browser.close()
        for what, target in TARGETS.items():
            for name in ("dashboard-bench", "dashboard-reference"):
                values = results[name][what]
                median = statistics.median(values)
                label = f"{arguments.runs:,} runs, {arguments.turns:,} turns" if name == "dashboard-bench" \
                    else "reference: 10 runs, 1 rollout"
                table.add_row(backend, what, label, f"{median * 1e3:.0f}", f"{max(values) * 1e3:.0f}",
                              f"< {target * 1e3:.0f} ms", met(median < target) if name == "dashboard-bench" else "-")
    console.print(table)
    console.print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
