"""The README's staged-job example: paused from outside, then resumed to completion by running it again."""

import subprocess
import sys
import time
from pathlib import Path

import rolloutdb

EXAMPLE = Path(__file__).parent.parent / "examples" / "staged_job.py"


def run_example(url: str) -> subprocess.Popen:
    # 0.05 s an item leaves the docs and examples stages 6 s between them: the pause below must reach the job
    # before it completes even when a busy machine stalls this process for a second (0.01 s left 1.2 s: too few)
    return subprocess.Popen([sys.executable, str(EXAMPLE), "--url", url, "--item-seconds", "0.05"],
                            stdout=subprocess.PIPE, text=True)


def test_the_example_pauses_and_resumes_where_it_stopped(fresh_database_url):
    first = run_example(fresh_database_url)
    store = rolloutdb.connect(fresh_database_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (store.runs.count(name="build-index")
                                               and store.runs.get("build-index").stage in ("docs", "examples")):
        time.sleep(0.02)
    store.jobs.request_pause("build-index")
    output, _ = first.communicate(timeout=60)
    assert first.returncode == 0 and "build-index: paused" in output
    paused = store.runs.get("build-index")
    assert paused.state["stage"] in ("docs", "examples") and 40 <= paused.progress < 100

    second = run_example(fresh_database_url)
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 0
    assert f"resuming build-index at stage {paused.stage}" in output and "build-index: completed" in output
    messages = [event.message for event in store.jobs.logs("build-index", limit=1000)]
    assert sorted(m for m in messages if m.startswith("docs ")) == sorted(f"docs {i}/80" for i in range(1, 81))
