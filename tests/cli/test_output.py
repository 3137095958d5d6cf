"""Output that fits: tables at 80 columns keep every word whole; --json prints one object per line; nothing
printed carries a control sequence."""

import json
import re

import pytest
from typer.testing import CliRunner

import rolloutdb
from rolloutdb.cli import app
from cli.clitools import RUN, line_with, succeeds

narrow = CliRunner(env={"COLUMNS": "80"})
roomy = CliRunner(env={"COLUMNS": "400"})
AGES = re.compile(r"^\d+(\.\d)?[smhd]$")  # "3s" (ago): may tick between two runs


def words(output: str) -> list[str]:
    """The words printed, the rules under table headers left out."""
    return [AGES.sub("N", word) for word in output.split() if set(word) != {"─"}]


def assert_fits_and_keeps_words_whole(url: str, *args: str) -> str:
    """Run the command at 80 columns and with room to spare: every line fits in 80 columns, and every word
    printed at 80 columns is a word of the roomy output (a word broken across lines would be two strangers),
    or one a text column cut short with "…"."""
    at_80 = narrow.invoke(app, ["--url", url, *args])
    at_400 = roomy.invoke(app, ["--url", url, *args])
    assert at_80.exit_code == 0 and at_400.exit_code == 0, at_80.output + at_400.output
    # but a field whose value is one word longer than the line (a long path): the terminal wraps that
    assert all(len(line) <= 80 or len(line.split()) == 2 for line in at_80.stdout.splitlines()), at_80.stdout
    whole = set(words(at_400.stdout))
    broken = [word for word in words(at_80.stdout) if word not in whole and not word.endswith("…")]
    assert not broken, f"words broken at 80 columns: {broken}\n{at_80.stdout}"
    return at_80.stdout


@pytest.fixture
def learning_url(fresh_database_url) -> str:
    """The demo's recording: steps with long metric names (learning_rate, mean_abs_advantage, ...)."""
    assert narrow.invoke(app, ["--url", fresh_database_url, "demo", "--name", "narrow", "--steps", "2"]).exit_code == 0
    return fresh_database_url


def test_listings_and_shows_at_80_columns_break_no_word(learning_url):
    output = assert_fits_and_keeps_words_whole(learning_url, "runs", "show", "narrow")
    header = line_with(output, "step ").split()
    assert header[:2] == ["step", "status"] and "learning_rate" in header  # whole, not "learning_rat" + "e"
    rollouts = assert_fits_and_keeps_words_whole(learning_url, "rollouts", "ls")
    with rolloutdb.connect(learning_url) as store:
        statuses = {str(status) for status in rolloutdb.RolloutStatus}
        ids = [rollout.id for rollout in store.rollouts.query(sort="created_at", order="desc", limit=20)]
    rows = [line.split() for line in rollouts.splitlines() if line.split() and line.split()[0][:8] in
            {id[:8] for id in ids}]
    assert len(rows) == 20
    for row, id in zip(rows, ids):  # a short id (a start of the id, at least 8 characters) and a whole status
        assert id.startswith(row[0]) and len(row[0]) >= 8 and row[1] in statuses
    shown = assert_fits_and_keeps_words_whole(learning_url, "rollouts", "show", rows[0][0])
    assert line_with(shown, "rollout").split() == ["rollout", ids[0]]
    for command in (["runs", "ls"], ["jobs", "ls"], ["steps", "ls", "narrow"], ["groups", "ls"], ["tasks", "ls"],
                    ["queue"], ["history", "run", "narrow"], ["runs", "compare", "narrow/baseline", "narrow/eval@1"],
                    ["jobs", "logs", "narrow"], ["doctor"]):
        assert_fits_and_keeps_words_whole(learning_url, *command)


def test_wide_shows_whole_ids_and_every_column(learning_url):
    with rolloutdb.connect(learning_url) as store:
        newest = store.rollouts.query(sort="created_at", order="desc", limit=1)[0]
    output = narrow.invoke(app, ["--url", learning_url, "rollouts", "ls", "--wide", "--limit", "1"]).stdout
    assert line_with(output, "id").split() == ["id", "status", "mode", "tries", "reward", "run/step", "created",
                                               "duration"]
    assert line_with(output, newest.id).split()[:2] == [newest.id, newest.status]


def json_lines(url: str, *args: str) -> list[dict]:
    return [json.loads(line) for line in succeeds(url, *args, "--json").splitlines()]


def test_json_prints_the_records_one_per_line(demo_url):
    with rolloutdb.connect(demo_url) as store:
        run = store.runs.get(RUN)
        rollouts = store.rollouts.query(sort="created_at", order="desc", limit=5)
        steps = store.steps.query(run_id=run.id)
        groups = store.groups.query(run_id=run.id, limit=None)
        tasks = store.tasks.load()
    assert json_lines(demo_url, "runs", "ls") == [run.model_dump(mode="json")]
    assert json_lines(demo_url, "runs", "show", RUN) == [run.model_dump(mode="json")]
    assert json_lines(demo_url, "rollouts", "ls", "--limit", "5") == [r.model_dump(mode="json") for r in rollouts]
    assert json_lines(demo_url, "rollouts", "show", rollouts[0].id[:30]) == [rollouts[0].model_dump(mode="json")]
    assert json_lines(demo_url, "steps", "ls", RUN) == [step.model_dump(mode="json") for step in steps]
    assert {line["id"] for line in json_lines(demo_url, "groups", "ls", "--run", RUN, "--limit", "100")} == {
        group.id for group in groups}
    assert [line["external_id"] for line in json_lines(demo_url, "tasks", "ls")] == [task.external_id for task in tasks]
    assert json_lines(demo_url, "jobs", "show", RUN)[0]["run"]["id"] == run.id
    assert [line["new_status"] for line in json_lines(demo_url, "history", "run", RUN)] == [
        "pending", "running", "completed"]
    assert json_lines(demo_url, "queue")[0]["rollouts_by_status"]["succeeded"] > 0
    assert json_lines(demo_url, "runs", "ls", "--status", "failed") == []


def test_nothing_printed_carries_a_control_sequence(fresh_database_url):
    name = "evil\x1b[2J\x9b31m\u202erun"  # clear screen, a C1 CSI, a right-to-left override
    with rolloutdb.connect(fresh_database_url) as store:
        run = store.runs.create(name=name, config={"note": "\x1b]0;title\x07"}, kind="eval")
        store.runs.update(run.id, status="running", reason="\x1b[31mred")
        store.rollouts.create(run_id=run.id, input={"prompt": "\x1b[1mbold\x9b"}, error="\x1b[5mblink")
    outputs = [succeeds(fresh_database_url, *command) for command in (
        ["runs", "ls"], ["runs", "show", run.id], ["history", "run", run.id], ["rollouts", "ls"], ["jobs", "ls"],
        ["jobs", "show", run.id])]
    rollout_id = json_lines(fresh_database_url, "rollouts", "ls")[0]["id"]
    outputs.append(succeeds(fresh_database_url, "rollouts", "show", rollout_id))
    as_json = succeeds(fresh_database_url, "runs", "ls", "--json")
    for output in [*outputs, as_json]:
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", output), repr(output)
    assert "evil\\x1b[2J" in outputs[0]
    assert json.loads(as_json)["name"] == name  # escaped, and read back the same
