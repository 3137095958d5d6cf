"""`rolloutdb decisions ls`, `rolloutdb flywheel evaluate | stats | import-mem0 | run | advise | policies | activate |
rollback | export-samples`."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

import rolloutdb
from cli.clitools import fails, line_containing, succeeds
from integrations.test_mem0 import write_documented_layout
from store.test_policies import logged_decisions


@pytest.fixture
def logged(session_database_url):
    """A project with memory decisions taken ten days ago, a hit on one of them, and a reason with an escape."""
    project = f"fly-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(session_database_url, project=project) as store:
        then = store.now() - timedelta(days=10)
        kept = store.decisions.log("memory", "mem-1", "insert", reason="new fact\x1b[31m", state={"length": 12},
                                   policy_version="rules", propensity=0.9, at=then)
        store.decisions.log("memory", "mem-2", "delete", policy_version="rules", propensity=0.5, at=then)
        store.decisions.log("memory", "mem-3", "delete", policy_version="rules", propensity=0.5, at=then)
        store.signals.add("mem-1", "hit", at=then + timedelta(days=1))
    return session_database_url, project, kept


def test_decisions_ls_lists_newest_first_and_filters(logged):
    url, project, kept = logged
    listed = succeeds(url, "decisions", "ls", "--project", project, "--wide")
    assert "\x1b" not in listed and "new fact\\x1b[31m" in listed
    assert line_containing(listed, kept.id)[3:6] == ["memory", "mem-1", "insert"]
    as_json = succeeds(url, "decisions", "ls", "--project", project, "--action", "delete", "--json")
    assert sorted(json.loads(line)["subject_id"] for line in as_json.splitlines()) == ["mem-2", "mem-3"]
    assert "No decisions" in succeeds(url, "decisions", "ls", "--project", project, "--evaluated")
    assert "unknown domain 'memry'" in fails(url, "decisions", "ls", "--project", project, "--domain", "memry")


def test_flywheel_evaluate_then_stats(logged, tmp_path):
    url, project, _ = logged
    evaluated = succeeds(url, "flywheel", "evaluate", "--project", project)
    assert "completed: 3 of 3 due memory decisions evaluated" in evaluated
    stats = succeeds(url, "flywheel", "stats", "--project", project, "--domain", "memory")
    assert line_containing(stats, "insert")[1:4] == ["rules", "1", f"{0.95 ** (1 / 7):.3f}"]
    assert line_containing(stats, "delete")[1:5] == ["rules", "2", "0.500", "0.000"]
    rows = [json.loads(line) for line in succeeds(url, "flywheel", "stats", "--project", project, "--json").splitlines()]
    assert {(row["action"], row["count"]) for row in rows} == {("insert", 1), ("delete", 2)}

    rules = tmp_path / "rules.toml"
    rules.write_text("[memory.insert]\nweights = { hit = 2.0 }\ndelay_days = 1\ncolour = 'red'\n")
    assert "rules.toml, line 4" in fails(url, "flywheel", "evaluate", "--project", project, "--rules", str(rules))
    rules.write_text("[memory.insert]\nweights = { hit = 2.0 }\ndecay = 1.0\ndelay_days = 1\n")
    again = succeeds(url, "flywheel", "evaluate", "--project", project, "--rules", str(rules), "--force", "--json")
    assert json.loads(again)["evaluated"] == 1
    assert line_containing(succeeds(url, "flywheel", "stats", "--project", project), "insert")[3] == "2.000"
    assert "unknown domain 'memry'" in fails(url, "flywheel", "stats", "--project", project, "--domain", "memry")


def test_flywheel_import_mem0(session_database_url, tmp_path):
    project = f"mem0-{uuid.uuid4().hex[:8]}"
    path = write_documented_layout(tmp_path / "history.db", [
        ("h1", "m1", None, "fact", "ADD", "2026-11-01T00:00:00+00:00", None, 0, "alice", "user"),
        ("h2", "m1", "fact", "fact!", "UPDATE", "2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00", 0, None, None),
        ("h3", "m1", "fact!", "x", "MERGE", "2026-11-01T00:00:00+00:00", None, 0, None, None),
    ])
    out = succeeds(session_database_url, "flywheel", "import-mem0", str(path), "--project", project)
    assert "Read 3 mem0 history rows" in out and "2 new memory decisions, 1 skipped" in out and "MERGE" in out
    again = json.loads(succeeds(session_database_url, "flywheel", "import-mem0", str(path), "--project", project,
                                "--json"))
    assert (again["read"], again["imported"]) == (3, 0)
    assert "no mem0 history database" in fails(session_database_url, "flywheel", "import-mem0",
                                                str(tmp_path / "nope.db"), "--project", project)


@pytest.fixture
def project(session_database_url):
    """A project with 300 decisions of a random policy ten days old, and their signals."""
    name = f"memory-{uuid.uuid4().hex[:8]}"
    with rolloutdb.connect(session_database_url, project=name) as store:
        logged_decisions(store)
    return session_database_url, name


def test_flywheel_run_trains_and_activates_then_advises(project, tmp_path):
    url, name = project
    evaluated = succeeds(url, "flywheel", "run", "--domain", "memory", "--project", name)
    assert line_containing(evaluated, "decisions evaluated")[-1] == "300"
    assert "not asked to train" in evaluated and "active policy" in evaluated
    trained = succeeds(url, "flywheel", "run", "--train", "--project", name, "--json")
    report = json.loads(trained)
    assert (report["trained"], report["activated"], report["version"]) == (True, True, 1)
    shown = succeeds(url, "flywheel", "run", "--train", "--project", name, "--seed", "3")
    assert "candidate (DR)" in shown and "gain (DR − " in shown and "version 2" in shown

    advice = json.loads(succeeds(url, "flywheel", "advise", '{"kind": "fact", "length": 0.2}', "--project", name,
                                 "--json"))
    assert advice["policy_version"] == "memory/v1" and advice["action"] in advice["probabilities"]
    assert "lacks feature(s) 'length'" in fails(url, "flywheel", "advise", '{"kind": "fact"}', "--project", name)
    assert "not JSON" in fails(url, "flywheel", "advise", "{kind", "--project", name)

    listed = succeeds(url, "flywheel", "policies", "--project", name)
    assert line_containing(listed, report["checkpoint_id"])[:2] == ["1", "yes"]
    assert "is the active one" in succeeds(url, "flywheel", "activate", "2", "--project", name)
    assert "version 1" in succeeds(url, "flywheel", "rollback", "--project", name)
    assert "no version 5" in fails(url, "flywheel", "activate", "5", "--project", name)

    out = tmp_path / "samples.jsonl"
    assert "Wrote 300 samples" in succeeds(url, "flywheel", "export-samples", "--out", str(out), "--project", name)
    assert len(out.read_text().splitlines()) == 300


def test_flywheel_commands_name_the_declared_domains(project):
    url, name = project
    assert "declared domains: memory" in fails(url, "flywheel", "run", "--domain", "chess", "--project", name)
    assert "no active policy" in fails(url, "flywheel", "advise", '{"kind": "fact"}', "--project", name)
    assert "No policy of domain 'memory' yet" in succeeds(url, "flywheel", "policies", "--project", name)
