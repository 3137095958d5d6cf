"""Every page of the dashboard in Chromium, against a real server on SQLite and on PostgreSQL: what each shows is
what the store holds; a live job's progress bar moves and the page pauses it; a rollout's screenshots are the
stored images with the action drawn where it was; names that hold markup are shown as text."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import rolloutdb
from server.servers import server_environment

from .conftest import open_page, save_screenshot
from .seeding import HOSTILE_NAME

JOB_PROCESS = Path(__file__).parent / "job_process.py"


def run_hash(name: str, **params: str) -> str:
    query = "&".join(f"{key}={quote(str(value), safe='')}" for key, value in params.items())
    return f"#/runs/{quote(name, safe='')}" + (f"?{query}" if query else "")


def shown_percent(text: str) -> float:
    """The number a cell shows as "12.5 %" or "+12.5 pp" (rounded by JavaScript, which rounds halves up where
    Python's format may not)."""
    return float(text.split()[0])


def same_percent(text: str, fraction: float) -> bool:
    return abs(shown_percent(text) - 100 * fraction) <= 0.05 + 1e-9


def column(page, selector: str) -> list[str]:
    return [text.strip() for text in page.locator(selector).all_inner_texts()]


def test_the_runs_page_lists_the_stored_runs_newest_first_and_filters_them(site, page):
    open_page(page, site.server.base, "#/runs")
    save_screenshot(page, site.backend, "runs")
    with site.store() as store:
        stored = store.runs.query(sort="created_at", order="desc", limit=50)
        total = store.runs.count()
    assert column(page, "#runs a.run-name") == [run.name for run in stored]
    assert page.inner_text(".pager-where") == f"1–{total} of {total}"
    # Counts are written with their thousands apart (by the pages themselves: the locale's formatter is slow to load).
    assert page.evaluate("import('./dom.js').then((dom) => [1234567, -1000, 999, 0.5].map((n) => dom.number(n)))") \
        == ["1,234,567", "-1,000", "999", "0.500"]
    page.fill("input[name=q]", "eval@")
    page.click("form.filters button")
    page.wait_for_function("location.hash.includes('q=eval')")
    page.wait_for_function("document.body.dataset.ready === location.hash")
    assert column(page, "#runs a.run-name") == [run.name for run in stored if "eval@" in run.name]
    # A stable URL: the same filter opened afresh shows the same rows.
    address = page.url
    page.goto("about:blank")
    page.goto(address)
    page.wait_for_function("document.body.dataset.ready === location.hash")
    assert column(page, "#runs a.run-name") == [run.name for run in stored if "eval@" in run.name]
    # Live: a run created elsewhere that the filter takes shows up first, without reloading the page.
    page.wait_for_selector(".live.on")
    with site.store() as store:
        new = store.runs.create(name=f"eval@live-{uuid.uuid4().hex[:6]}")
    page.wait_for_function(f"document.querySelector('#runs a.run-name')?.textContent === '{new.name}'")


def test_the_run_page_charts_its_steps_and_shows_its_groups_evals_and_config(site, page):
    open_page(page, site.server.base, run_hash(site.seeded.train))
    save_screenshot(page, site.backend, "run")
    with site.store() as store:
        run = store.runs.get(site.seeded.train)
        steps = store.steps.query(run_id=run.id, limit=None)
        last = max(step.number for step in steps)
        groups = store.groups.query(run_id=run.id, step=last, limit=None)
        comparison = store.compare_runs(site.seeded.baseline, site.seeded.final_eval)
    chart = page.locator("#metrics .chart")
    assert chart.get_attribute("data-metric") == "reward_mean"
    assert int(chart.get_attribute("data-points")) == len([s for s in steps if s.metrics.get("reward_mean") is not None])
    assert page.locator("#metrics canvas").count() == 1
    # The chart's stylesheet comes with it (the other pages do not load it).
    page.wait_for_function("getComputedStyle(document.querySelector('#metrics .u-wrap')).position === 'relative'")
    assert page.locator("#groups tbody tr").count() == len(groups)
    assert page.locator("#group-step").input_value() == str(last)
    overall = page.locator("#evals-table tr.overall td").all_inner_texts()
    assert same_percent(overall[1], comparison.overall.a.success_rate)
    assert same_percent(overall[-1], comparison.overall.b.success_rate)
    assert '"algorithm": "grpo"' in page.inner_text("pre.json")
    # Another metric, chosen: its URL says so.
    page.select_option("#metric", "success_rate")
    page.wait_for_function("location.hash.includes('metric=success_rate')")
    page.wait_for_function("document.body.dataset.ready === location.hash")
    assert page.locator("#metrics .chart").get_attribute("data-metric") == "success_rate"


def test_a_long_runs_chart_shows_its_latest_steps(site, page):
    """A run of more steps than the chart draws (10,000) shows the latest ones, where training is now, and says so;
    it stopped at step 9,999 before, however far the run went."""
    name, session, now = f"long-{uuid.uuid4().hex[:6]}", str(uuid.uuid4()), datetime.now(timezone.utc)
    # What a recorder sends, in one batch: its writer would take its time over 10,001 steps on PostgreSQL (25 s),
    # and a recorder's close gives up after 30 s (the rest waits in its journal).
    operations = [{"op": "run.start", "session": session, "id": str(uuid.uuid4()), "name": name, "started_at": now}]
    for number in range(10_001):
        operations += [{"op": "step.start", "session": session, "run": name, "number": number, "started_at": now},
                       {"op": "step.update", "session": session, "run": name, "number": number,
                        "metrics": {"loss": 1.0 / (number + 1)}, "status": "completed", "ended_at": now}]
    with site.store() as store:
        assert not store.recording.apply(operations).rejected
    open_page(page, site.server.base, run_hash(name))
    assert page.locator("#metrics .chart").get_attribute("data-metric") == "loss"
    assert page.locator("#metrics .chart").get_attribute("data-points") == "10000"
    assert page.inner_text("#metrics-shown") == "The last 10,000 of 10,001 steps (from step 1)."


def test_a_run_with_many_evals_shows_its_latest_against_the_baseline(site, page):
    """One column per eval run: a long run's dozens would make a table many screens wide, and as many comparisons
    to load; the latest are shown, and the page says how many there are."""
    name = f"evals-{uuid.uuid4().hex[:6]}"
    with rolloutdb.Recorder(site.server.url, project=site.server.project, run=name, flush_interval=0.2) as recorder:
        for evaluation in [recorder.baseline()] + [recorder.eval(step=step) for step in range(0, 70, 10)]:
            with evaluation:
                with evaluation.group(task="t", size=1).rollout() as rollout:
                    rollout.finish(reward=1.0, success=True)
    open_page(page, site.server.base, run_hash(name))
    headers = column(page, "#evals-table th a")
    assert headers == [f"{name}/baseline"] + [f"{name}/eval@{step}" for step in (20, 30, 40, 50, 60)]
    assert "The latest 5 of 7 eval runs." in page.inner_text("#evals-shown")


def test_the_compare_page_shows_run_b_against_run_a_per_task(site, page):
    open_page(page, site.server.base, f"#/compare?a={quote(site.seeded.baseline, safe='')}"
                                      f"&b={quote(site.seeded.final_eval, safe='')}")
    save_screenshot(page, site.backend, "compare")
    with site.store() as store:
        comparison = store.compare_runs(site.seeded.baseline, site.seeded.final_eval)
    rows = page.locator("#comparison tbody tr")
    assert rows.count() == 1 + len(comparison.tasks)
    assert column(page, "#comparison tbody tr td:first-child") == ["overall", *[row.task for row in comparison.tasks]]
    delta = comparison.overall.success_rate_delta
    assert same_percent(rows.nth(0).locator("td").nth(9).inner_text(), delta)
    # A run's name with a slash in it ("…/eval@2") is one route, to that run's page.
    page.click("#run-b")
    page.wait_for_function("document.body.dataset.ready === location.hash && location.hash.startsWith('#/runs/')")
    assert page.inner_text("h1 .run-name") == site.seeded.final_eval


def test_the_queue_page_counts_rollouts_and_shows_workers_with_their_rollouts(site, page):
    open_page(page, site.server.base, "#/queue")
    save_screenshot(page, site.backend, "queue")
    with site.store() as store:
        summary = store.queue_summary()
    assert page.inner_text("#waiting") == str(summary.waiting) == "1"
    for status, count in summary.rollouts_by_status.items():
        assert page.inner_text(f'#rollouts-by-status td[data-status="{status}"]') == f"{count:,}"
    worker = page.locator(f'#workers-table tr[data-worker="{site.seeded.worker}"]')
    assert site.seeded.held_rollout.endswith(worker.locator("a").inner_text().lstrip("…"))
    page.wait_for_selector(".live.on")
    # Live: a rollout enqueued elsewhere shows up in the counts without reloading.
    with site.store() as store:
        store.rollouts.enqueue({"goal": "live"})
    page.wait_for_function("document.getElementById('waiting').textContent === '2'")
    with site.store() as store:
        store.rollouts.dequeue(worker_id="worker-b")


def test_the_rollout_page_shows_the_turns_and_the_stored_screenshots_with_the_action_on_them(site, page):
    open_page(page, site.server.base, f"#/rollouts/{site.seeded.gui_rollout}")
    page.wait_for_function("[...document.images].every((image) => image.complete && image.naturalWidth > 0)")
    save_screenshot(page, site.backend, "rollout")
    assert page.locator("article.turn").count() == 3
    assert page.locator("article.turn .thinking").first.inner_text() == "step 0: <b>think</b>"
    images = page.locator("figure.shot img")
    assert images.count() == len(site.seeded.screenshots) == 4
    # The bytes the page's images load are the stored ones.
    loaded = page.evaluate("""async () => Promise.all([...document.querySelectorAll('figure.shot img')].map(
        async (image) => {
            const bytes = new Uint8Array(await (await fetch(image.src)).arrayBuffer());
            let text = ''; bytes.forEach((b) => { text += String.fromCharCode(b); });
            return [image.dataset.sha256, btoa(text)];
        }))""")
    assert {sha: base64.b64decode(data) for sha, data in loaded} == site.seeded.screenshots
    # The action's point is drawn where it was, in the image's own pixels; the "after" screen carries none.
    tap, swipe = site.seeded.actions[0], site.seeded.actions[1]
    first = page.locator('article.turn[data-turn="0"] circle.mark-point')
    assert (float(first.get_attribute("cx")), float(first.get_attribute("cy"))) == (tap["x"], tap["y"])
    assert page.locator('article.turn[data-turn="0"] svg.mark').get_attribute("viewBox") == "0 0 360 640"
    line = page.locator('article.turn[data-turn="1"] figure[data-role="before"] line.mark-line')
    assert [float(line.get_attribute(name)) for name in ("x1", "y1", "x2", "y2")] == [
        swipe["x"], swipe["y"], swipe["x2"], swipe["y2"]]
    assert page.locator('article.turn[data-turn="1"] figure[data-role="after"] svg.mark').count() == 0
    # Click to enlarge; Escape closes it.
    page.click('article.turn[data-turn="0"] figure.shot')
    page.wait_for_function("""document.querySelector('#lightbox img').getBoundingClientRect().height >
        1.5 * document.querySelector('article.turn[data-turn="0"] figure.shot img').getBoundingClientRect().height""")
    page.keyboard.press("Escape")
    assert page.locator("#lightbox").count() == 0
    # Spans: the waterfall in tree order, the tree nested by parent.
    assert column(page, "#waterfall .wf-name") == ["episode", "llm.call", "tool.tap"]
    assert page.locator('#span-tree li[data-span="root"] li[data-span="llm-1"]').count() == 1
    with site.store() as store:
        history = store.history("rollout", site.seeded.gui_rollout)
        attempt = store.attempts.latest(site.seeded.gui_rollout)
        history += store.history("attempt", attempt.id)
    assert page.locator("#history-table tbody tr").count() == len(history)
    assert '"checked": "settings"' in page.inner_text("main")


def test_the_scripts_and_resources_pages_show_replays_and_snapshots(site, page):
    open_page(page, site.server.base, "#/scripts")
    save_screenshot(page, site.backend, "scripts")
    row = page.locator(f'#scripts tr[data-script="{site.seeded.script}"] td')
    texts = row.all_inner_texts()
    assert texts[0] == "open-settings-script" and texts[5] == "2" and texts[6] == "50.0 %" and texts[7] == "3.0 s"
    open_page(page, site.server.base, "#/resources")
    save_screenshot(page, site.backend, "resources")
    card = page.locator(f'#resources section[data-id="{site.seeded.resources}"]')
    assert "latest" in card.inner_text() and '"model": "tiny"' in card.inner_text()
    open_page(page, site.server.base, "#/rollouts")
    save_screenshot(page, site.backend, "rollouts")
    with site.store() as store:
        assert page.inner_text(".pager-where").endswith(f" of {store.rollouts.count():,}")


def test_names_that_hold_markup_are_shown_as_text(site, page):
    page.add_init_script("window.__pwned = 0")
    open_page(page, site.server.base, "#/runs?q=" + quote("<img", safe=""))
    assert column(page, "#runs a.run-name") == [HOSTILE_NAME]
    open_page(page, site.server.base, run_hash(HOSTILE_NAME))
    save_screenshot(page, site.backend, "hostile-run")
    assert page.inner_text("h1 .run-name") == HOSTILE_NAME
    assert "<script>window.__pwned=2</script>" in page.inner_text("pre.json")
    assert page.evaluate("window.__pwned") == 0
    assert page.locator("main img").count() == 0


def test_a_live_job_moves_its_progress_bar_and_pauses_from_the_page(site, page):
    name = f"live-job-{uuid.uuid4().hex[:8]}"
    job = subprocess.Popen([sys.executable, str(JOB_PROCESS), site.server.url, site.server.project, name],
                           env=server_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with site.store() as store:
            deadline = time.monotonic() + 30
            while store.runs.count(name=name) == 0 or store.runs.get(name).status != "running":
                assert time.monotonic() < deadline and job.poll() is None, job.stdout.read() if job.poll() else ""
                time.sleep(0.1)
        open_page(page, site.server.base, run_hash(name))
        page.wait_for_selector(".live.on")
        bar = page.locator("#run-progress")
        first = float(bar.get_attribute("aria-valuenow"))
        logged = page.locator("#job-log tr").count()
        page.wait_for_function(f"Number(document.getElementById('run-progress').getAttribute('aria-valuenow')) > {first}",
                               timeout=20_000)
        # The job's log grows on the page as the job writes it.
        page.wait_for_function(f"document.querySelectorAll('#job-log tr').length > {logged}")
        save_screenshot(page, site.backend, "live-job")
        page.click("#job-pause")
        page.wait_for_function("document.getElementById('control-result').textContent === 'pause requested'")
        assert job.wait(30) == 0
        assert b"stopped" in job.stdout.read()
        with site.store() as store:
            run = store.runs.get(name)
        assert run.status == "paused" and run.state["done"] > 0
        # The page hears of it from the event stream.
        page.wait_for_function("document.querySelector('#run-status .badge').textContent === 'paused'")
        assert page.locator("#job-resume").is_enabled() and page.locator("#job-pause").is_disabled()
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def test_the_flywheel_page_shows_decisions_per_action_reward_over_time_and_policy_versions(site, page):
    open_page(page, site.server.base, "#/flywheel")
    save_screenshot(page, site.backend, "flywheel")
    with site.store() as store:
        periods = store.rewards.over_time("memory")
        stats = store.rewards.statistics("memory")
        versions = store.policies.list("memory")
    taken: dict[str, int] = {}
    for row in periods:
        taken[row.action] = taken.get(row.action, 0) + row.decisions
    assert {row.get_attribute("data-action"): int(row.locator(".decisions").inner_text().replace(",", ""))
            for row in page.locator("#actions tbody tr").all()} == taken
    assert len(page.locator("#reward-stats tbody tr").all()) == len(stats)
    chart = page.locator("#reward .chart")
    assert chart.get_attribute("data-points") == str(len({row.period for row in periods}))
    assert chart.get_attribute("data-series") == str(1 + len(taken))  # all actions, then each one
    assert column(page, "#policy-versions tbody tr td:first-child") == [f"v{v.version}" for v in versions]
    assert len(versions) == 2
    newest = page.locator("#policy-versions tbody tr").first
    for estimate in ("logging", "ips", "dr", "gain"):
        assert newest.locator(f"td.{estimate}").inner_text().startswith(f"{versions[0].metrics[estimate]['value']:.3f}")
    active = [v.version for v in versions if v.active]
    assert [int(row.get_attribute("data-version")) for row in page.locator("#policy-versions tr.shown").all()] == active
    # Per hour: a stable URL, more periods.
    open_page(page, site.server.base, "#/flywheel?domain=memory&every=hour")
    with site.store() as store:
        hours = store.rewards.over_time("memory", every="hour")
    assert page.locator("#reward .chart").get_attribute("data-points") == str(len({row.period for row in hours}))
    # A window of the last week holds none of the decisions (taken 9 to 12 days ago): none shown, nor rewards.
    open_page(page, site.server.base, "#/flywheel?days=7")
    assert page.inner_text("#decisions p") == "No decisions taken in this domain in the last 7 d."
    assert page.locator("#reward .chart").count() == 0 and page.locator("#reward-stats").count() == 0
    assert page.locator("#policy-versions tbody tr").count() == 2  # the versions are not of a window
