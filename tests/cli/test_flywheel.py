"""`rolloutdb flywheel run | advise | policies | activate | rollback | export-samples`."""

from __future__ import annotations

import json
import uuid

import pytest

import rolloutdb
from cli.clitools import fails, line_containing, succeeds
from store.test_policies import logged_decisions


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
