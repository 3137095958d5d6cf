"""`rolloutdb scripts ls | show | activate | export` and `rolloutdb stats`."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest

import rolloutdb
from cli.clitools import fails, line_containing, succeeds
from store.test_scripts import TAP, TYPE, successful_rollout


@pytest.fixture(scope="module")
def recorded(session_database_url):
    """A project with two versions of a script (the first made active again, and replayed), and a failed rollout."""
    project = f"phone-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(session_database_url, project=project) as store:
        task = store.tasks.save([{"external_id": "wifi-on", "instruction": "turn wifi on"}])[0]
        first = store.scripts.record(successful_rollout(store, task, [TAP]).id, name="main\x1b[31m",
                                     device="pixel-7")
        second = store.scripts.record(successful_rollout(store, task, [TAP, TYPE]).id, name="main\x1b[31m")
        store.scripts.report(second.id, success=True, seconds=4.0)
        failed = store.rollouts.start(1, task_id=task.id).rollout
        store.turns.create(rollout_id=failed.id, turn_index=0, error="ElementNotFound: no 'Wi-Fi' toggle")
        store.rollouts.update(failed.id, status="failed", error="TimeoutError: after 30s")
    return session_database_url, project, first, second


def test_scripts_ls_show_activate(recorded):
    url, project, first, second = recorded
    listed = succeeds(url, "scripts", "ls", "--project", project, "--wide")
    assert "\x1b" not in listed and "main\\x1b[31m" in listed
    assert line_containing(listed, second.id)[2:8] == ["2", "yes", first.task_id, "2", "1", "100.0%"]
    as_json = succeeds(url, "scripts", "ls", "--project", project, "--task", "wifi-on", "--inactive", "--json")
    assert [json.loads(line)["id"] for line in as_json.splitlines()] == [first.id]

    shown = succeeds(url, "scripts", "show", first.id[:-4], "--project", project)
    assert line_containing(shown, "device") == ["device", "pixel-7"] and '"type": "tap"' in shown

    activated = succeeds(url, "scripts", "activate", first.id, "--project", project)
    assert f"version 1 ({first.id}) is the active one" in activated
    with rolloutdb.connect(url, project=project) as store:
        assert store.scripts.get(first.id).active and not store.scripts.get(second.id).active
    assert "not found" in fails(url, "scripts", "show", "nope", "--project", project)


def test_scripts_export_to_stdout_and_to_a_file(recorded, tmp_path):
    url, project, first, _ = recorded
    exported = json.loads(succeeds(url, "scripts", "export", first.id, "--project", project))
    assert (exported["id"], exported["actions"], exported["checksum"]) == (first.id, [TAP], first.checksum)
    path = tmp_path / "script.json"
    succeeds(url, "scripts", "export", first.id, "--project", project, "-o", str(path))
    assert json.loads(path.read_text()) == exported
    assert "already exists" in fails(url, "scripts", "export", first.id, "--project", project, "-o", str(path))


def test_stats_per_task_and_day(recorded):
    url, project, _, _ = recorded
    table = succeeds(url, "stats", "--project", project)
    words = line_containing(table, "wifi-on")  # 1, 2 and 1 turns; the duration is the machine's
    assert words[:5] == ["wifi-on", "3", "3", "66.7%", "1.3"] and words[-4:] == ["TimeoutError", "1",
                                                                                 "ElementNotFound", "1"]
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    rows = [json.loads(line) for line in succeeds(url, "stats", "--project", project, "--by", "day", "--since",
                                                  "1d", "--json").splitlines()]
    assert [(row["key"], row["rollouts"], row["errors"], row["turn_errors"]) for row in rows] == [
        (today, 3, {"TimeoutError": 1}, {"ElementNotFound": 1})]
    assert "a summary is by task or day" in fails(url, "stats", "--project", project, "--by", "week")
